# Two commands do all set-up on a fresh clone:
#   make demo   -- virtual environment, install, run the pipeline on the embedded silica data
#   make test   -- virtual environment, install with test and parity extras, lint, run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo study test test-slow test-distributed test-parity test-notebooks strip-notebooks lint bench clean

$(VENV)/.created:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rsajax needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.base: $(VENV)/.created pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

# torch==2.13.0 (CPU) is pinned in the [torch] extra: parity tests against mace-torch run too.
$(VENV)/.test: $(VENV)/.base
	$(PY) -m pip install --quiet -e ".[test,torch]"
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/rsajax demo

# The silica study's quick preset (experiments/silica_study): teacher data at three densities,
# SR and RSA-MACE, melt-quench of all three with melt checks, the report; about 20 minutes on
# 2 cores. Work and report go to demo_out/silica_study (the committed results stay untouched).
study: $(VENV)/.base
	PYTHONPATH=. $(PY) experiments/silica_study/run.py --preset quick --resume \
		--out demo_out/silica_study --results demo_out/silica_study/results

lint: $(VENV)/.test
	$(VENV)/bin/ruff check rsajax tests benchmarks

test: lint
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-slow: $(VENV)/.test
	$(PY) -m pytest -n 2 --dist loadfile -m slow

# The full mace-torch parity matrix (the default run checks a subset); about 10 min on 2 cores.
test-parity: $(VENV)/.test
	$(PY) -m pytest -n 2 -m slow tests/convert/test_parity.py

# Multi-host training for real (two processes, jax.distributed on 127.0.0.1, checkpoint from one
# process and resume) and the device benchmark suite's --quick CPU mode: marked slow for the
# default run, run by CI; about 2 minutes on 2 cores.
test-distributed: $(VENV)/.test
	$(PY) -m pytest -n 2 -m slow tests/train/test_multihost.py tests/test_device_suite.py

# Execute every notebook in notebooks/ (nbmake; each runs in its own folder, in the venv's
# "python3" kernel); about 1-2 minutes each on 2 cores. 05 needs the [torch] extra.
test-notebooks: $(VENV)/.test
	$(PY) -m pytest --nbmake --nbmake-timeout=600 -n 2 notebooks

# Notebooks are committed without outputs (tests/test_notebooks_stripped.py checks it).
strip-notebooks:
	$(PYTHON) tests/test_notebooks_stripped.py --fix

bench: $(VENV)/.base
	for script in benchmarks/*.py; do $(PY) $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) demo_out .pytest_cache
