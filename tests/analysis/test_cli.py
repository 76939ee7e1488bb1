"""`rsajax analyze` end to end on a tiny trajectory, and the frame helpers."""

import json

import ase.io
import numpy as np
import pytest

from rsajax.analysis.cli import main
from rsajax.analysis.frames import atoms_from_arrays, read_frames, structure_factor_frames
from rsajax.analysis.fsdp import band_mean
from rsajax.analysis.structure_factor import combine, structure_factor
from tests.analysis.structures import NIMROD, beta_cristobalite


def _write_traj(path, n_frames=2):
    frames = []
    for k in range(n_frames):
        a = beta_cristobalite() * (2, 2, 2)
        a.rattle(0.1, seed=k)
        frames.append(a)
    ase.io.write(path, frames)
    return frames


@pytest.mark.parametrize(("fmt", "engine"), [("extxyz", "python"), ("traj", "matscipy")])
def test_analyze_writes_figure_and_tables(tmp_path, capsys, fmt, engine):
    traj = tmp_path / f"run.{fmt}"
    _write_traj(traj)
    argv = [
        "analyze",
        str(traj),
        "--out",
        str(tmp_path / "out"),
        "--q-max",
        "6",
        "--max-ring",
        "8",
        "--ring-frames",
        "1",
        "--ring-engine",
        engine,
        "--no-progress",
    ]
    if NIMROD.is_file():
        argv += ["--compare", "experiment", "--exp-path", str(NIMROD)]
    in_report_only = engine == "matscipy"  # one case each way
    assert main(argv + ["--warnings-in-report"] * in_report_only) == 0
    printed = capsys.readouterr()
    out = tmp_path / "out"
    assert (out / "comparison.png").stat().st_size > 10_000
    table = json.loads((out / "summary.json").read_text())
    rows = {r["quantity"]: r for r in table["rows"]}
    assert rows["coordination Si(O)"]["runs"][0] == pytest.approx(4.0, abs=1e-6)
    assert rows["coordination O(Si)"]["runs"][0] == pytest.approx(2.0, abs=1e-6)
    assert rows["ring fraction n=6 Si"]["runs"][0] == pytest.approx(1.0)
    assert rows["density (g/cm3)"]["runs"][0] == pytest.approx(2.18, abs=0.01)
    if NIMROD.is_file():
        assert rows["FSDP neutron position (1/A)"]["experiment"] == pytest.approx(1.47, abs=0.02)
    md = (out / "summary.md").read_text()
    assert "| coordination Si(O) |" in md
    # two rattled frames of a small crystal cannot resolve the FSDP: the report says so first
    assert any("neutron" in w for w in table["warnings"]), table["warnings"]
    assert md.startswith("**WARNING**")
    if in_report_only:  # one line says how many and where; no warning per curve
        assert "WARNING" not in printed.err
        assert f"{len(table['warnings'])} FSDP fit(s) not resolved: listed at" in printed.out
    else:
        assert printed.err.count("WARNING: ") == len(table["warnings"])
    assert "FSDP neutron position error (1/A)" in rows
    curve = np.loadtxt(next(out.glob("sq_0_*.csv")), delimiter=",", skiprows=1)
    assert curve.shape[1] == 3 and curve[:, 0].max() <= 6.0
    # the band mean is the written curve's (None where the small box leaves the band bare)
    band = rows["FSDP neutron band mean, S_N over 1.0-2.2 1/A (needs no resolved peak)"]
    try:
        assert band["runs"][0] == pytest.approx(band_mean(curve[:, 0], curve[:, 1]), abs=1e-4)
    except ValueError:
        assert band["runs"][0] is None
    if NIMROD.is_file():
        assert band["experiment"] == pytest.approx(0.917, abs=0.002)


def test_compare_experiment_needs_path(tmp_path, capsys):
    traj = tmp_path / "run.extxyz"
    _write_traj(traj, 1)
    assert main(["analyze", str(traj), "--out", str(tmp_path), "--compare", "experiment"]) == 2
    assert "needs --exp-path" in capsys.readouterr().err


def test_frames_with_different_cells_are_merged_by_shell(tmp_path):
    """An NPT-like trajectory: each cell gets its own q-grid; the merge is count-weighted."""
    a = beta_cristobalite() * (2, 2, 2)
    a.rattle(0.1, seed=0)
    b = a.copy()
    b.set_cell(a.cell[:] * 1.03, scale_atoms=True)
    pos = np.stack([a.positions, b.positions])
    cells = np.stack([a.cell[:], b.cell[:]])
    merged = structure_factor_frames(atoms_from_arrays(pos, cells, a.numbers), 5.0, progress=False)
    parts = [structure_factor(x.positions, x.cell[:], x.numbers, q_max=5.0) for x in (a, b)]
    np.testing.assert_allclose(merged.partials, combine(parts).partials, rtol=1e-12)
    # a shell present in both runs is the count-weighted mean of the two
    common = np.intersect1d(parts[0].shell_index, parts[1].shell_index)[5]
    pa, pb = (p.shell_index.tolist().index(common) for p in parts)
    wa, wb = parts[0].n_vectors[pa], parts[1].n_vectors[pb]
    expected = (wa * parts[0].partials[pa] + wb * parts[1].partials[pb]) / (wa + wb)
    k = merged.shell_index.tolist().index(common)
    np.testing.assert_allclose(merged.partials[k], expected, rtol=1e-12)


def test_read_frames_rejects_open_boundaries(tmp_path):
    a = beta_cristobalite()
    a.pbc = False
    path = tmp_path / "open.extxyz"
    ase.io.write(path, a)
    with pytest.raises(ValueError, match="periodic"):
        read_frames(path)


def test_run_labels_are_the_shortest_unique_suffixes(tmp_path):
    from rsajax.analysis.cli import run_labels

    paths = [tmp_path / "md_sr" / "trajectory.extxyz", tmp_path / "md_lr" / "trajectory.extxyz"]
    assert run_labels(paths) == ["md_sr/trajectory.extxyz", "md_lr/trajectory.extxyz"]
    assert run_labels([tmp_path / "a.xyz", tmp_path / "b.xyz"]) == ["a.xyz", "b.xyz"]


def test_importing_the_library_leaves_the_matplotlib_backend_alone():
    """Notebooks show figures with their own backend: rsajax's report and training plots draw on
    bare Figures and never call ``matplotlib.use``."""
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import rsajax.cli, rsajax.analysis.report, rsajax.train.loop; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
