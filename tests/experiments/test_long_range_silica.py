"""experiments/long_range/silica.py: the ``densities`` preset and its extra teacher frames."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.silica_study.reuse import long_range_silica  # noqa: E402


@pytest.fixture(scope="module")
def silica():
    return long_range_silica()


def test_densities_preset_is_full_plus_glasses_at_other_densities(silica):
    full, dens = silica.PRESETS["full"], silica.PRESETS["densities"]
    # same shipped frames and held-out boxes: only the training data grows
    assert (dens.train_stride, dens.test_boxes) == (full.train_stride, full.test_boxes)
    assert full.density_runs == ()
    densities = [d for d, _ in dens.density_runs]
    assert len(densities) >= 3 and 2.2 not in densities  # the shipped glasses are at 2.2
    assert min(densities) < 2.2 < max(densities)
    assert dens.epochs["silica_bks"] == dens.epochs["silica_far"] == 60


def test_density_runs_give_labelled_frames_at_their_density(silica):
    from rsajax.analysis.frames import density_g_cm3
    from rsajax.teachers.generate import MeltQuenchRun

    tiny = MeltQuenchRun(8, melt_frames=1, quench_frames=1, anneal_frames=1, strained_frames=1,
                         quench_ps=0.05)  # fmt: skip
    preset = dataclasses.replace(silica.PRESETS["densities"], density_runs=((2.6, tiny),))
    with jax.enable_x64(True):
        frames = list(
            silica.density_run_frames(preset, equilibrate_ps=0.05, melt_ps=0.05, anneal_ps=0.05)
        )
    assert len(frames) == 4 and all(len(a) == 24 for a in frames)
    for atoms in frames:
        wanted = atoms.info["density_g_cm3"]
        assert wanted == 2.6  # above 2.3 g/cm3 the start is placed at 2.2 and compressed
        # strained copies move the density by at most the generator's 4% strain per axis
        tolerance = 0.13 if atoms.info["stage"] == "strained" else 1e-3
        assert abs(density_g_cm3([atoms]) / wanted - 1.0) < tolerance
        forces = atoms.get_forces()
        assert forces.shape == (24, 3) and np.isfinite(forces).all()
        assert np.isfinite(atoms.get_potential_energy()) and atoms.get_stress().shape == (6,)


def _stage(mean: float) -> dict:
    return {"frames": 2, "energy_error_mean": mean, "energy_error_std": 0.1}


def test_study_entry_reads_both_models_and_refuses_an_unfinished_one(silica, tmp_path):
    import json

    (tmp_path / "data").mkdir()
    data = {"teacher": "bks-glass", "seed": 0, "train_frames": 7, "test_frames": 3,
            "densities_g_cm3": [2.0]}  # fmt: skip
    (tmp_path / "data" / "data.json").write_text(json.dumps(data))
    for k, model in enumerate(("sr", "rsa")):
        run = tmp_path / "train" / model
        run.mkdir(parents=True)
        errors = dict(energy_rmse=1.0 + k, energy_rmse_centered=0.5 + k, force_rmse=100.0 - 70 * k,
                      stress_rmse_GPa=0.04, valid_energy_rmse=2.0, valid_force_rmse=300.0,
                      epochs=60, train_seconds=10.0)  # fmt: skip
        (run / "test_eval.json").write_text(json.dumps(errors))
        if model == "sr":  # only the 192-atom quench frames count, by density
            stages = {
                "train:quench:192@2.0": _stage(-2.08),
                "train:quench:192@2.4": _stage(0.17),
                "train:quench:96@2.0": _stage(9.0),
                "test:quench:192@2.4": _stage(9.0),
            }
            (run / "stage_errors.json").write_text(json.dumps(stages))
    entry = silica.study_entry(tmp_path)
    assert entry["teacher"] == "bks-glass" and entry["train_frames"] == 7
    assert (entry["sr_inside_rmse"], entry["rsa_inside_rmse"]) == (1.0, 2.0)
    assert (entry["sr_force_inside_rmse"], entry["rsa_force_inside_rmse"]) == (100.0, 30.0)
    assert entry["sr_quench192_energy_error_by_density"] == {"2.0": -2.08, "2.4": 0.17}
    assert "rsa_quench192_energy_error_by_density" not in entry
    (tmp_path / "train" / "rsa" / "test_eval.json").unlink()
    with pytest.raises(FileNotFoundError, match="rsa has not finished training"):
        silica.study_entry(tmp_path)


def test_training_seconds_leave_out_the_pauses_between_sittings(silica):
    # a run resumed after an hour's pause: its rows' own seconds sum to 30, the stamps span 3630
    rows = [{"time": 0.0, "seconds": 5.0}, {"time": 10.0, "seconds": 10.0},
            {"time": 3630.0, "seconds": 15.0}]  # fmt: skip
    assert silica.training_seconds(rows) == 30.0
    # a log from before rows carried their seconds: first to last stamp, pauses included
    assert silica.training_seconds([{"time": 0.0}, {"time": 3630.0}]) == 3630.0
    assert silica.training_seconds([{"time": 0.0, "seconds": 1.0}]) is None
