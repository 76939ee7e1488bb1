"""Carry a study run between machines that share no disk: the finished (and the resumable) pieces
of a work folder, small enough to commit, and back.

    python experiments/silica_study/state.py save --preset cpu      # OUT -> state/cpu/
    python experiments/silica_study/state.py restore --preset cpu   # state/cpu/ -> OUT
    python experiments/silica_study/state.py show --preset cpu      # what state/cpu/ holds

``run.py --from-state`` restores before it runs. A work folder (``runs/``) is not kept by git;
the ``cpu`` preset needs hours of 2-core time per model, more than one sitting of a machine
without a GPU. ``state/<preset>/`` mirrors the work folder's layout and holds:

- ``timings.json`` (wall time per stage) and ``data/``: ``data.json``, ``start.extxyz`` (the start
  glass) and ``test.xyz`` (the held-out frames); the training frames only beside an unfinished
  training (below);
- ``train/<model>/`` of every finished training: the exported ``model/``, ``metrics.jsonl`` (the
  learning curve), ``summary.json``, ``config.yaml``, ``test_eval.json``, ``stage_errors.json``;
- ``md/<model>/`` of every finished melt-quench: ``done.json``, ``melt.json`` and the phases'
  ``done.json``, with its analysis ``analysis/<model>.json`` and ``.pkl`` (``run.py``'s
  per-model cache) in place of the trajectories;
- ``md/<model>/`` of a melt-quench that stopped after a checkpoint: what ``--resume`` needs (the
  phase checkpoints and finished phases, each replica's ``thermo.jsonl`` and
  ``trajectory.extxyz``, gzipped);
- ``train/<model>/`` of a training that stopped after a checkpoint: the whole folder (its orbax
  checkpoints, learning curve and config, ~1.5 MB), with its training frames
  (``data/train.xyz``, gzipped, ~2.6 MB) so that ``--resume`` continues it elsewhere;
- ``manifest.json``: what each model has reached, and the files with their sizes.

Restoring copies only files the work folder lacks, so it never overwrites newer work.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``experiments.silica_study`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.silica_study.presets import (
    ABLATION_MODELS,
    MAX_SEEDS,
    MODELS,
    PRESETS,
    seed_models,
)
from experiments.silica_study.reuse import REPO
from experiments.silica_study.training import is_finished, run_spec

STATE = REPO / "experiments" / "silica_study" / "state"
KEPT_FILES = ("timings.json", "data/data.json", "data/start.extxyz", "data/test.xyz")
TRAIN_FILES = (
    "summary.json",
    "config.yaml",
    "metrics.jsonl",
    "test_eval.json",
    "stage_errors.json",
)
#: Files of an unfinished melt-quench that ``--resume`` reads (per replica) and that are gzipped.
REPLICA_FILES = ("thermo.jsonl", "trajectory.extxyz")
PHASE_FILES = ("checkpoint.npz", "final.npz", "done.json")
GZIP_SUFFIX = ".gz"


def collect(out: Path, unfinished: bool = True) -> tuple[list[tuple[str, bool]], dict[str, str]]:
    """The files of work folder ``out`` to keep, as ``(relative path, gzip it)``, and the stage
    each model has reached (``trained``, ``melt-quench at step N``, ``analysed``, ...);
    ``unfinished=False`` leaves out checkpointed melt-quenches (their frames are the bulk)."""
    files: list[tuple[str, bool]] = [(f, False) for f in KEPT_FILES if (out / f).is_file()]
    status: dict[str, str] = {}
    for model in MODELS + ABLATION_MODELS + seed_models(MAX_SEEDS):
        reached = []
        run_dir = out / "train" / model
        if model != "teacher" and is_finished(run_dir):
            reached.append("trained")
            for f in TRAIN_FILES:
                if (run_dir / f).is_file():
                    files.append((f"train/{model}/{f}", False))
            for f in sorted((run_dir / "model").iterdir()):
                files.append((f"train/{model}/model/{f.name}", False))
        elif model != "teacher" and (run_dir / "checkpoints").is_dir():
            epochs = _epochs_done(run_dir)
            if unfinished:
                reached.append(f"training unfinished after {epochs} epochs (kept: --resume)")
                files += [
                    (str(f.relative_to(out)), False)
                    for f in sorted(run_dir.rglob("*"))
                    if f.is_file()
                ]
                frames = f"data/{run_spec(model)[0]}"
                if (out / frames).is_file() and (frames, True) not in files:
                    files.append((frames, True))
            else:
                reached.append(f"training unfinished after {epochs} epochs (not kept)")
        md_dir = out / "md" / model
        if (md_dir / "failed.json").is_file():
            reached.append("melt-quench failed")
            files.append((f"md/{model}/failed.json", False))
        elif (md_dir / "done.json").is_file():
            cache = [f"analysis/{model}.json", f"analysis/{model}.pkl"]
            if all((out / f).is_file() for f in cache):
                reached.append("melt-quenched and analysed")
                files += [(f, False) for f in cache]
                files += [(f"md/{model}/{f}", False) for f in ("done.json", "melt.json")]
                files += [(f"md/{model}/{p}/done.json", False) for p in ("melt", "quench")]
            else:
                reached.append("melt-quenched, not analysed (not kept: run --stages analyze)")
        elif any((md_dir / p / "checkpoint.npz").is_file() for p in ("melt", "quench")):
            step = _checkpoint_step(md_dir)
            if not unfinished:
                reached.append(f"melt-quench unfinished at step {step} (not kept)")
                status[model] = "; ".join(reached)
                continue
            reached.append(f"melt-quench unfinished, checkpoint at step {step}")
            for phase in ("melt", "quench"):
                files += [
                    (f"md/{model}/{phase}/{f}", False)
                    for f in PHASE_FILES
                    if (md_dir / phase / f).is_file()
                ]
            for rep in sorted(md_dir.glob("rep*")):
                files += [
                    (f"md/{model}/{rep.name}/{f}", True)
                    for f in REPLICA_FILES
                    if (rep / f).is_file()
                ]
        if reached:
            status[model] = "; ".join(reached)
    return files, status


def _epochs_done(run_dir: Path) -> int:
    """Epochs an unfinished training has validated (its ``metrics.jsonl`` rows past epoch -1)."""
    path = run_dir / "metrics.jsonl"
    rows = path.read_text().splitlines() if path.is_file() else []
    return sum(1 for row in rows if row.strip() and json.loads(row).get("epoch", -1) >= 0)


def _checkpoint_step(md_dir: Path) -> int:
    """The global step of an unfinished melt-quench's last checkpoint."""
    import numpy as np

    step = 0
    for phase in ("melt", "quench"):
        path = md_dir / phase / "checkpoint.npz"
        if path.is_file():
            with np.load(path) as f:
                offset = json.loads(str(f["meta"])).get("offset", 0)
                step = max(step, offset + int(f["step"]))
    return step


def save(out: Path, state: Path, unfinished: bool = True) -> dict:
    """Replace ``state`` with the keepable files of ``out`` (:func:`collect`); the manifest."""
    if not out.is_dir():
        raise SystemExit(f"state save: no work folder {out}")
    files, status = collect(out, unfinished)
    if not files:
        raise SystemExit(f"state save: {out} holds nothing finished or resumable to keep")
    fresh = state.with_name(state.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    sizes = {}
    for rel, zipped in files:
        target = fresh / (rel + GZIP_SUFFIX if zipped else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if zipped:
            with open(out / rel, "rb") as src, gzip.GzipFile(target, "wb", mtime=0) as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy2(out / rel, target)
        sizes[str(target.relative_to(fresh))] = target.stat().st_size
    from experiments.silica_study.data import teacher_of

    manifest = {
        "saved": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "from": str(out),
        "teacher": teacher_of(out / "data"),
        "models": status,
        "bytes": sum(sizes.values()),
        "files": sizes,
    }
    (fresh / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(state, ignore_errors=True)  # swap in the new state only once it is complete
    fresh.rename(state)
    return manifest


def restore(state: Path, out: Path, log=print) -> int:
    """Copy the files of ``state`` that ``out`` lacks (gzipped ones unpacked); returns how many."""
    manifest_path = state / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"state restore: {state} holds no saved state (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    # an unfinished training is restored whole or not at all: mixing its checkpoints into a
    # training the work folder already holds would mix two runs
    present = {
        model
        for model in manifest["models"]
        if (out / "train" / model / "checkpoints").is_dir() or is_finished(out / "train" / model)
    }
    copied = 0
    for rel in manifest["files"]:
        zipped = rel.endswith(GZIP_SUFFIX)
        target = out / (rel[: -len(GZIP_SUFFIX)] if zipped else rel)
        parts = rel.split("/")
        if target.exists() or (
            parts[0] == "train" and "checkpoints" in parts and parts[1] in present
        ):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if zipped:
            with gzip.open(state / rel, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy2(state / rel, target)
        copied += 1
    log(f"state: {copied} files from {state} (saved {manifest['saved']}) into {out}")
    for model, reached in manifest["models"].items():
        log(f"state:   {model}: {reached}")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("save", "restore", "show"))
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--out", type=Path, default=None, help="work folder (run.py's --out)")
    parser.add_argument("--state", type=Path, default=STATE, help="parent of <preset>/")
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="save: leave out melt-quenches that are still running (their frames are the bulk)",
    )
    args = parser.parse_args(argv)
    out = args.out or REPO / "runs" / "silica_study" / args.preset
    state = args.state / args.preset
    if args.action == "save":
        manifest = save(out, state, unfinished=not args.finished_only)
        print(f"state: {len(manifest['files'])} files, {manifest['bytes'] / 1e6:.2f} MB in {state}")
        print(f"state:   data made by the teacher {manifest['teacher']}")
        for model, reached in manifest["models"].items():
            print(f"state:   {model}: {reached}")
    elif args.action == "restore":
        restore(state, out)
    else:
        if not (state / "manifest.json").is_file():
            raise SystemExit(f"state show: {state} holds no saved state")
        print((state / "manifest.json").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
