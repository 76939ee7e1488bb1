"""Which frames carry a study training's validation force error.

    python experiments/silica_study/validation_frames.py --preset cpu --models sr rsa [--top 3]

For each trained model: the validation frames its training held out (the split ``rsajax.train``
made from the training's own ``config.yaml``: file, fraction, seed), each frame's share of the
summed squared force error, its force RMSE, closest atom pair and largest reference force, and
the validation force RMSE with and without the frames listed. One frame far from the rest (a
crystal rattled into a close contact, say) can set a whole validation curve; this says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``experiments.silica_study`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.silica_study.presets import PRESETS
from experiments.silica_study.reuse import REPO


def frame_errors(forces: list[np.ndarray], reference: list[np.ndarray]) -> np.ndarray:
    """Summed squared force error of each frame (eV^2/A^2): (F,) from F pairs of (n_f, 3)."""
    return np.array([np.sum((f - r) ** 2) for f, r in zip(forces, reference, strict=True)])


def closest_pair(atoms) -> float:
    """The shortest interatomic distance of ``atoms`` (A, minimum image)."""
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def report(run_dir: Path, top: int) -> list[str]:
    """Markdown lines for the training in ``run_dir``."""
    import ase.io

    from rsajax.calculator import RsajaxCalculator
    from rsajax.train import load_config
    from rsajax.train.setup import validation_split

    cfg = load_config(run_dir / "config.yaml")
    if cfg.data.valid_file:
        frames, index = ase.io.read(cfg.data.valid_file, ":"), None
    else:
        every = ase.io.read(cfg.data.train_file, ":")
        index = validation_split(len(every), cfg.data.valid_fraction, cfg.seed)[0]
        frames = [every[i] for i in index]
    calc = RsajaxCalculator(str(run_dir / "model"))
    predicted, reference = [], []
    for atoms in frames:
        reference.append(atoms.get_forces().copy())
        copy = atoms.copy()
        copy.calc = calc
        predicted.append(copy.get_forces())
    errors = frame_errors(predicted, reference)
    counts = np.array([3 * len(a) for a in frames])
    worst = np.argsort(errors)[::-1][:top]
    rest = np.setdiff1d(np.arange(len(frames)), worst)
    rmse = 1e3 * np.sqrt(errors.sum() / counts.sum())
    rmse_rest = 1e3 * np.sqrt(errors[rest].sum() / counts[rest].sum())
    lines = [
        f"### {run_dir.name}: {len(frames)} validation frames (seed {cfg.seed}), force RMSE "
        f"{rmse:.1f} meV/A, {rmse_rest:.1f} without the {top} below",
        "",
        "| frame in the file | share of the squared error | force RMSE (meV/A) | atoms | stage |"
        " closest pair (A) | largest reference force (eV/A) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in worst:
        atoms = frames[k]
        lines.append(
            f"| {k if index is None else int(index[k])} | {errors[k] / errors.sum():.3f} | "
            f"{1e3 * np.sqrt(errors[k] / counts[k]):.0f} | {len(atoms)} | "
            f"{atoms.info.get('stage', '-')} ({atoms.info.get('source', '-')}) | "
            f"{closest_pair(atoms):.3f} | {np.abs(reference[k]).max():.1f} |"
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--models", nargs="+", default=["sr", "rsa"])
    parser.add_argument("--top", type=int, default=3, help="frames listed per model")
    parser.add_argument("--out", type=Path, default=None, help="work folder (run.py's --out)")
    args = parser.parse_args(argv)
    out = args.out or REPO / "runs" / "silica_study" / args.preset
    for model in args.models:
        run_dir = out / "train" / model
        if not (run_dir / "model" / "config.json").is_file():
            raise SystemExit(f"{run_dir}: no finished training of {model}")
        print("\n".join(report(run_dir, args.top)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
