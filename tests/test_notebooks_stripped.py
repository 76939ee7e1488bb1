"""Notebooks in notebooks/ are stored without outputs, so their diffs stay readable.

CI executes them (``make test-notebooks``); this fast check only reads the files. Strip outputs
with ``python tests/test_notebooks_stripped.py --fix`` (or ``make strip-notebooks``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: nbmake starts the kernel the notebook names; "python3" is the current interpreter's.
KERNEL = "python3"


def problems(notebook: dict) -> list[str]:
    """What keeps a notebook (parsed .ipynb JSON) from being stored: outputs, execution counts,
    a kernel other than :data:`KERNEL`."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index} has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index} has execution_count {cell['execution_count']}")
    kernel = notebook.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != KERNEL:
        found.append(f"kernelspec name is {kernel!r}, not {KERNEL!r}")
    return found


def strip(notebook: dict) -> dict:
    """The notebook without outputs and execution counts (in place; also returned)."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)  # nbclient's timing record
    metadata = notebook.setdefault("metadata", {})
    metadata.pop("widgets", None)
    # the kernel fills in its Python version on every run: keep only the language
    metadata["language_info"] = {"name": metadata.get("language_info", {}).get("name", "python")}
    return notebook


def test_notebooks_are_stored_stripped():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert paths, f"no notebooks found in {NOTEBOOKS}"
    bad = {p.name: problems(json.loads(p.read_text())) for p in paths}
    bad = {name: found for name, found in bad.items() if found}
    assert not bad, "notebooks stored with outputs (run `make strip-notebooks`): " + "; ".join(
        f"{name}: {', '.join(found)}" for name, found in bad.items()
    )


def test_problems_sees_outputs_and_counts():
    cell = {"cell_type": "code", "source": "1", "outputs": [{"output_type": "stream"}]}
    notebook = {"cells": [{**cell, "execution_count": 3}], "metadata": {}}
    found = problems(notebook)
    assert len(found) == 3 and "output" in found[0] and "execution_count 3" in found[1]
    notebook["metadata"]["kernelspec"] = {"name": KERNEL}
    assert problems(strip(notebook)) == []


if __name__ == "__main__":
    if sys.argv[1:] != ["--fix"]:
        raise SystemExit("usage: python tests/test_notebooks_stripped.py --fix")
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        if problems(notebook):
            # nbformat's own layout, so a stripped file diffs cleanly against a saved one
            text = json.dumps(strip(notebook), indent=1, sort_keys=True, ensure_ascii=False)
            path.write_text(text + "\n")
            print(f"stripped {path}")
