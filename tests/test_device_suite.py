"""benchmarks/device_suite.py: the RSA evaluation rule, and the --quick CPU run end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_suite.py"


def load_suite():
    spec = importlib.util.spec_from_file_location("device_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rsa_runs_on_the_mesh_only_for_large_boxes_and_failures_are_listed():
    suite = load_suite()
    args = suite.parse_args([])
    assert args.sizes == [1536, 6000, 24000, 100000]
    assert [suite.evaluation_for(n, args.mesh_from) for n in args.sizes] == [
        "direct",
        "direct",
        "mesh",
        "mesh",
    ]
    assert "--quick" not in args.forwarded and "--md-steps=100" in args.forwarded
    cell = {"model": "RSA-MACE", "atoms": 100000, "error": "timed out after 120 s"}
    assert suite.row(cell).endswith("timed out after 120 s")
    failed = {
        "model": "SR-MACE",
        "atoms": 24000,
        "evaluation": None,
        "energy_forces": {"ms": 2.0, "atom_steps_per_s": 1.2e7, "xla_peak_mb": 5.0},
        "md": {"error": "XlaRuntimeError: RESOURCE_EXHAUSTED"},
        "train": {"error": "above --train-max"},
        "device_peak_mb": None,
    }
    assert "error" in suite.row(failed) and "1.20e+07" in suite.row(failed)
    assert suite.errors(failed) == ["SR-MACE 24000 md: XlaRuntimeError: RESOURCE_EXHAUSTED"]


@pytest.mark.slow  # two cells, each compiling energy+forces, MD and a train step: ~90 s CPU
def test_quick_run_measures_every_figure(tmp_path):
    out = tmp_path / "suite.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [(c["model"], c["atoms"], c["evaluation"]) for c in result["cells"]] == [
        ("SR-MACE", 96, None),
        ("RSA-MACE", 96, "mesh"),
    ]
    for cell in result["cells"]:
        assert cell["energy_forces"]["atom_steps_per_s"] > 0, cell
        assert cell["md"]["atom_steps_per_s"] > 0, cell
        assert cell["train"]["structures_per_s"] > 0 and cell["train"]["batch"] == 2, cell
        assert cell["energy_forces"]["xla_peak_mb"] > 0
    assert result["cells"][1]["energy_forces"]["k_points"] > 0  # the mesh grid was used
    assert "RSA-MACE" in proc.stdout and "mesh" in proc.stdout
