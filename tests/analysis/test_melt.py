"""Melt check: unwrapped MSD of the hot stage and ring change, on cases with a known answer."""

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from rsajax.analysis.melt import (
    MSD_THRESHOLD_A2,
    hottest_stage,
    mean_square_displacement,
    melt_check,
    read_stage_log,
    ring_distance,
    unwrapped_positions,
)
from rsajax.demo import default_dataset
from rsajax.md.output import RunOutput
from tests.analysis.structures import beta_cristobalite

STAGES = (("heat", 4, 3000.0), ("hot", 10, 6000.0), ("quench", 4, 1000.0), ("glass", 4, 300.0))


def _frames(start: Atoms, moves: np.ndarray) -> list[Atoms]:
    """Frames of ``start`` displaced by ``moves`` (F, N, 3), wrapped back into the cell, with
    ``info['step']`` = 10, 20, ... as ``rsajax md`` writes them (one frame per record)."""
    frames = []
    for k, d in enumerate(moves):
        a = start.copy()
        a.positions = a.positions + d
        a.wrap()
        a.info["step"] = 10 * (k + 1)
        frames.append(a)
    return frames


def _write_run(directory, frames) -> None:
    """A run directory as ``rsajax md`` leaves it: thermo log with stages, trajectory."""
    rows, step = [], 0
    for stage, n, temperature in STAGES:
        for _ in range(n):
            step += 10
            rows.append(
                {"step": step, "time_ps": step * 1e-3, "stage": stage, "T_target_K": temperature}
            )
    assert step == 10 * len(frames)
    out = RunOutput(directory)
    out.write_thermo(rows)
    out.write_frames(frames)


def _crystal() -> Atoms:
    return beta_cristobalite() * (2, 2, 2)  # 192 atoms, 14.3 A, every ring has 6 Si


def test_unwrapping_follows_an_atom_across_the_boundary():
    """0.3 A per frame in a 5 A box: wrapped, the atom jumps back; unwrapped it went 11.7 A."""
    box = Atoms("Si2", positions=[[4.0, 1.0, 1.0], [2.0, 2.0, 2.0]], cell=[5, 5, 5], pbc=True)
    moves = np.zeros((40, 2, 3))
    moves[:, 0, 0] = 0.3 * np.arange(40)
    frames = _frames(box, moves)
    assert frames[-1].positions[0, 0] < 5.0  # really wrapped
    x = unwrapped_positions(frames)
    np.testing.assert_allclose(x[:, 0, 0] - x[0, 0, 0], 0.3 * np.arange(40), atol=1e-9)
    msd = mean_square_displacement(frames, remove_drift=False)
    np.testing.assert_allclose(msd["Si"][-1], 11.7**2 / 2, rtol=1e-9)


def test_uniform_drift_is_removed():
    crystal = _crystal()
    moves = (
        np.zeros((20, len(crystal), 3)) + np.array([0.4, -0.2, 0.1]) * np.arange(20)[:, None, None]
    )
    msd = mean_square_displacement(_frames(crystal, moves))
    np.testing.assert_allclose(msd["all"], 0.0, atol=1e-18)
    assert mean_square_displacement(_frames(crystal, moves), remove_drift=False)["O"][-1] > 50


def test_frames_too_far_apart_are_refused():
    box = Atoms("Si2", positions=[[1, 1, 1], [3, 3, 3]], cell=[5, 5, 5], pbc=True)
    moves = np.zeros((2, 2, 3))
    moves[1, 0, 0] = 2.2  # 0.44 of the cell: ambiguous
    with pytest.raises(ValueError, match="too far to unwrap"):
        unwrapped_positions(_frames(box, moves))


def test_vibrating_crystal_is_not_melted(tmp_path):
    """Thermal-like noise (0.1 A) around the crystal: tiny MSD, the same rings: not melted."""
    crystal = _crystal()
    rng = np.random.default_rng(0)
    moves = rng.normal(0.0, 0.1, (22, len(crystal), 3))
    _write_run(tmp_path, _frames(crystal, moves))
    check = melt_check(tmp_path / "trajectory.extxyz", crystal)
    assert check.hot_stage == "hot"  # the hottest stage, found from the log
    assert (check.start_step, check.end_step) == (40, 140)  # the frame before the stage, its last
    np.testing.assert_allclose(check.times_ps, 0.01 * np.arange(11), atol=1e-12)
    assert check.msd["O"] < 0.1 and not check.diffused
    np.testing.assert_array_equal(check.rings_start, check.rings_end)
    assert check.rings_start[6] == check.rings_start.sum() > 0
    assert check.ring_distance == 0.0 and not check.rings_changed
    assert not check.melted
    assert check.lines()[0].startswith("NOT MELTED")
    assert check.to_dict()["melted"] is False


def test_random_walk_melts(tmp_path):
    """Steps of 0.6 A rms per axis per frame: MSD ~ 1.08 A^2 per frame, past the threshold
    over the 10-frame hot stage; the network is gone at the end."""
    crystal = _crystal()
    rng = np.random.default_rng(1)
    moves = np.cumsum(rng.normal(0.0, 0.6, (22, len(crystal), 3)), axis=0)
    _write_run(tmp_path, _frames(crystal, moves))
    check = melt_check(tmp_path / "trajectory.extxyz", crystal, log=tmp_path / "thermo.csv")
    assert check.msd["O"] == pytest.approx(10 * 1.08, rel=0.15)
    assert check.msd["O"] > MSD_THRESHOLD_A2 and check.diffused
    assert check.ring_distance > 0.3 and check.rings_changed
    assert check.melted and check.to_dict()["melted"] is True
    assert check.lines()[0].startswith("MELTED")
    # a threshold above the MSD turns the verdict round
    strict = melt_check(tmp_path / "trajectory.extxyz", crystal, msd_threshold=100.0)
    assert not strict.melted


def test_teacher_melt_diffuses_and_its_glass_does_not():
    """The shipped BKS data: the 6000 K melt frames (0.1 ps apart, 2.9 ps) pass the MSD
    threshold; the 300 K glass frames (1.9 ps) vibrate at ~0.05 A^2."""
    frames = read(default_dataset(), index=":")

    def run(stage):
        return [a for a in frames if a.info.get("stage") == stage and len(a) == 192]

    melt, glass = run("melt"), run("anneal")
    assert len(melt) > 10 and len(glass) > 10
    assert mean_square_displacement(melt)["O"][-1] > 2 * MSD_THRESHOLD_A2
    assert mean_square_displacement(glass)["O"][-1] < 0.02 * MSD_THRESHOLD_A2


def test_ring_distance():
    assert ring_distance(np.array([0, 0, 0, 5]), np.array([0, 0, 0, 2])) == 0.0
    assert ring_distance(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 2, 2])) == pytest.approx(0.5)
    assert ring_distance(np.array([0, 3]), np.zeros(2)) == pytest.approx(0.5)


def test_unusable_input_gives_clear_errors(tmp_path):
    crystal = _crystal()
    frames = _frames(crystal, np.zeros((22, len(crystal), 3)))
    _write_run(tmp_path, frames)
    log = read_stage_log(tmp_path / "thermo.jsonl")
    assert hottest_stage(log) == "hot"
    with pytest.raises(ValueError, match="no stage 'melt'"):
        melt_check(frames, crystal, log=log, hot_stage="melt")
    with pytest.raises(ValueError, match="1 frame"):
        melt_check(frames[:1], crystal, log=log)
    with pytest.raises(ValueError, match="needs at least 2"):
        melt_check(frames[:4] + frames[14:], crystal, log=log)  # no frame in the hot stage
    with pytest.raises(ValueError, match="needs the thermo log"):
        melt_check(frames, crystal)
    with pytest.raises(FileNotFoundError, match="trajectory not found"):
        melt_check(tmp_path / "missing.extxyz", crystal)
    with pytest.raises(FileNotFoundError, match="thermo log not found"):
        read_stage_log(tmp_path / "nothing.jsonl")
