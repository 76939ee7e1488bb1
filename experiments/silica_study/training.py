"""Stage 2: train SR-MACE and RSA-MACE (and, for the ablation, both again without the
supercooled frames) with one backbone and budget; test errors and the long-range split.

Per model, ``OUT/train/<model>/`` holds what ``rsajax.train.train`` writes (``metrics.jsonl``:
the learning curve; ``model/``: the exported model), ``test_eval.json`` (energy, force and stress
errors on the held-out teacher frames) and ``stage_errors.json`` (energy error per phase and box
size on every frame, with the mean long-range energy per atom of the RSA branch next to the
teacher's far Coulomb part in ``OUT/data/data.json``). A finished model is skipped; an
interrupted one continues from its checkpoints only with ``resume``.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments.silica_study.presets import Preset, base_model, train_config, training_seed
from experiments.silica_study.reuse import long_range_silica

#: model -> (training file in OUT/data, long range)
RUNS = {
    "sr": ("train.xyz", False),
    "rsa": ("train.xyz", True),
    "sr_no_supercooled": ("train_no_supercooled.xyz", False),
    "rsa_no_supercooled": ("train_no_supercooled.xyz", True),
}


def run_spec(model: str) -> tuple[str, bool, int]:
    """``(training file, long range, seed offset)`` of a trained model (``sr_seed1`` repeats
    ``sr`` with seed offset 1)."""
    base = base_model(model)
    if base not in RUNS:
        raise ValueError(f"unknown trained model {model!r}; known: {sorted(RUNS)} and seeds")
    return (*RUNS[base], training_seed(model))


class ResumeNeeded(RuntimeError):
    """A stage was interrupted: continue it with --resume, or delete its folder."""


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file() and (run_dir / "model" / "config.json").is_file()


def train_model(preset: Preset, model: str, data: Path, run_dir: Path, resume: bool) -> dict:
    """Train one model (or skip it when finished) and evaluate it on ``data/test.xyz``."""
    from rsajax.train import Checkpoints, load_config

    lr = long_range_silica()
    train_file, long_range, seed_offset = run_spec(model)
    if not is_finished(run_dir):
        started = (run_dir / "checkpoints").is_dir() and Checkpoints(
            run_dir / "checkpoints"
        ).latest()
        if started and not resume:
            raise ResumeNeeded(
                f"{run_dir} holds an unfinished training; pass --resume to continue it or "
                "delete the folder to start again"
            )
        if not (data / train_file).is_file():
            raise FileNotFoundError(
                f"{data / train_file}: no training frames to train {model} on (a work folder "
                "restored by state.py holds them only beside an unfinished training); delete "
                "data/data.json there to make them again"
            )
        config = train_config(preset, str(data / train_file), str(run_dir), long_range, seed_offset)
        lr.train_one(load_config(config))
    result = lr.evaluate(run_dir, data / "test.xyz")
    if not (run_dir / "stage_errors.json").is_file():
        lr.stage_errors(run_dir, data)
    result["stage_errors"] = json.loads((run_dir / "stage_errors.json").read_text())
    return result


def learning_curve(run_dir: Path) -> dict[str, list[float]]:
    """``{"epoch", "energy_rmse", "forces_rmse"}`` (validation, meV/atom and meV/A) per epoch."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    return {
        "epoch": [r["epoch"] + 1 for r in rows],
        "energy_rmse": [r.get("energy_rmse") for r in rows],
        "forces_rmse": [r.get("forces_rmse") for r in rows],
    }
