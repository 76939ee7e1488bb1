"""``rsajax demo``: the flagship study in miniature, on the embedded BKS silica dataset.

Every stage is the real command a user would type, run on settings small enough for a laptop CPU
(about 10-20 minutes on 2 cores):

1. ``rsajax info``: read, validate and summarise the shipped BKS silica data.
2. ``rsajax train``: a short-range MACE and a long-range RSA-MACE with the same hyperparameters.
3. ``rsajax md``: heat the teacher's glass to 2000 K and quench it with each model in jax-md
   (a blow-up of a barely trained model is reported, and what it wrote is still analysed).
4. ``rsajax analyze``: neutron/X-ray S(Q), FSDP, coordination, angles and rings of the teacher's
   glass and both quenches, against experiment when the NIMROD file is found (``--exp-path``).

The models are tiny and barely trained, so the quenched structures are a smoke test of the
pipeline, not a result; ``experiments/`` holds the real study's configs.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

import yaml

#: Where the NIMROD neutron data of vitreous silica is looked for when --exp-path is not given.
EXPERIMENT_CANDIDATES = ("../shared/silica_exp/SiO2_NIMROD.mint01",)


def default_dataset() -> Path:
    """Path of the silica dataset shipped inside the package."""
    path = Path(str(resources.files("rsajax.data") / "default" / "silica_small.xyz"))
    if not path.exists():
        raise FileNotFoundError(
            f"the default dataset {path} is missing from this install; regenerate it with "
            "`rsajax teach silica --config small`"
        )
    return path


def train_config(data: Path, out: Path, epochs: int, long_range: bool) -> dict:
    """A tiny MACE (or RSA-MACE) training config on ``data``."""
    model = {
        "r_max": 5.0,
        "max_ell": 2,
        "hidden_irreps": "8x0e+8x1o",
        "correlation": 2,
        "num_interactions": 2,
        "MLP_irreps": "8x0e",
        "radial_MLP": [16, 16],
        "long_range": "default" if long_range else None,
    }
    return {
        "output_dir": str(out),
        "seed": 0,
        "epochs": epochs,
        "dtype": "float32",
        "data": {
            "train_file": str(data),
            "valid_fraction": 0.1,
            "batch_size": 8,
            "valid_batch_size": 16,
            "num_buckets": 2,
        },
        "model": model,
        "loss": {"energy_weight": 1.0, "forces_weight": 10.0, "stress_weight": 1.0},
        "optimizer": {"name": "adam", "lr": 0.01, "clip_norm": 10.0, "ema_decay": 0.99},
        "schedule": {"kind": "cosine", "warmup_steps": 10, "final_lr_factor": 0.1},
        "checkpoint": {"every_steps": 100},
    }


def md_config(model_dir: Path, start: Path, out: Path, scale: float, t_max: float) -> dict:
    """Heat to ``t_max``, hold, quench to 300 K, hold: ``scale`` stretches every stage."""
    return {
        "model": str(model_dir),
        "structure": str(start),
        "dtype": "float32",
        "seed": 0,
        "initial_temperature_K": 300,
        "ensemble": {"kind": "nvt_langevin", "dt_fs": 1.0, "friction_per_fs": 0.02},
        "stages": [
            {"kind": "heat", "T_end": t_max, "time_ps": 0.4 * scale},
            {"kind": "hold", "time_ps": 0.4 * scale, "name": "hot"},
            {"kind": "quench", "T_end": 300, "rate_K_per_ps": (t_max - 300) / (0.6 * scale)},
            {"kind": "hold", "time_ps": 0.4 * scale, "name": "glass"},
        ],
        "output": {
            "dir": str(out),
            "log_every": 10,
            "records_per_chunk": 10,
            "frame_every": 50,
            "checkpoint_every": 10,
        },
    }


def find_experiment(explicit: str | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"--exp-path {path}: no such file")
        return path
    for candidate in EXPERIMENT_CANDIDATES:
        for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
            if (base / candidate).is_file():
                return (base / candidate).resolve()
    return None


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="the flagship study in miniature on the embedded silica dataset"
    )
    parser.add_argument("--data", default=None, help="structure file (default: shipped silica set)")
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per model")
    parser.add_argument("--md-scale", type=float, default=1.0, help="stretch the MD protocol")
    parser.add_argument(
        "--md-temperature", type=float, default=2000.0, help="highest MD temperature, K"
    )
    parser.add_argument("--exp-path", default=None, help="NIMROD .mint01 file of v-SiO2")
    parser.add_argument("--skip-lr", action="store_true", help="short-range model only")
    return parser


def _stage(title: str, argv: list[str]) -> None:
    from rsajax.cli import main

    print(f"\n== {title}\n$ rsajax {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    if code:
        raise SystemExit(f"demo stage failed ({title}): rsajax {' '.join(argv)} -> {code}")
    print(f"-- {title}: {time.perf_counter() - start:.0f} s", flush=True)


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(args: argparse.Namespace) -> int:
    from ase.io import read, write

    from rsajax.md.simulation import BlowUpError

    data = Path(args.data) if args.data else default_dataset()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _stage("1. data", ["info", str(data), "--cutoff", "5.0"])

    frames = read(data, index=":")
    glass = [a for a in frames if a.info.get("stage") == "anneal" and len(a) == 192]
    if not glass:  # a user dataset without teacher stage tags: use the largest structures
        size = max(len(a) for a in frames)
        glass = [a for a in frames if len(a) == size]
    teacher = out / "teacher_glass.extxyz"
    write(teacher, glass)
    start = out / "start.extxyz"
    write(start, glass[-1])

    kinds = [("sr", False)] + ([] if args.skip_lr else [("lr", True)])
    trajectories = [teacher]
    for name, long_range in kinds:
        run_dir = out / f"train_{name}"
        if (run_dir / "checkpoints").exists():
            print(f"\n== {run_dir} exists: reusing its model (delete it to retrain)")
        else:
            config = _write(
                out / f"train_{name}.yaml", train_config(data, run_dir, args.epochs, long_range)
            )
            _stage(f"2. train {name.upper()} model", ["train", str(config)])
        md_dir = out / f"md_{name}"
        config = _write(
            out / f"md_{name}.yaml",
            md_config(run_dir / "model", start, md_dir, args.md_scale, args.md_temperature),
        )
        try:
            _stage(f"3. heat-quench with the {name.upper()} model", ["md", str(config)])
        except BlowUpError as error:  # a barely trained model may fail; keep what it wrote
            print(f"!! the {name.upper()} model's run stopped: {error}")
        if (md_dir / "trajectory.extxyz").is_file():
            trajectories.append(md_dir / "trajectory.extxyz")

    experiment = find_experiment(args.exp_path)
    compare = ["--compare", "experiment", "--exp-path", str(experiment)] if experiment else []
    if experiment is None:
        print("\n(no experimental data found: pass --exp-path SiO2_NIMROD.mint01 to compare)")
    _stage(
        "4. structure analysis",
        [
            "analyze",
            *map(str, trajectories),
            "--out",
            str(out / "report"),
            "--index=-4:",
            *compare,
        ],
    )
    print(f"\nreport: {out / 'report' / 'summary.md'} and {out / 'report' / 'comparison.png'}")
    return 0
