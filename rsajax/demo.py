"""``rsajax demo``: the flagship study in miniature, on the embedded BKS silica dataset.

Every stage is the real command a user would type, run on settings small enough for a laptop CPU
(about 14 minutes on 2 cores shared with other jobs):

1. ``rsajax info``: read, validate and summarise the shipped BKS silica data.
2. ``rsajax train``: a short-range MACE and a long-range RSA-MACE with the same hyperparameters.
3. ``rsajax md``: melt the teacher's 192-atom glass and quench it with each model in jax-md:
   heat to 6000 K in 0.5 ps, hold 3 ps, quench to 300 K in 1 ps, hold 0.5 ps (NVT Langevin,
   1 fs steps, float32), with a pair wall (:data:`CORE_REPULSION`) below the closest pairs of the
   data. A blow-up is reported, and what the run wrote is still analysed.
4. Melt check (:mod:`rsajax.analysis.melt`) of each run: the O mean square displacement over the
   6000 K hold must reach 7 A^2 (every O has moved a neighbour distance) and the final ring
   histogram must differ from the start's; a run that did not melt is flagged, not hidden.
5. ``rsajax analyze``: neutron/X-ray S(Q), FSDP, coordination, angles and rings of the teacher's
   glass and both quenches, against experiment when the NIMROD file is found (``--exp-path``).

Why this protocol: BKS silica only diffuses fast at very high temperature; 6000 K is the
teacher's own melt temperature, so its liquid is in the training data. The shipped melt frames
reach an O MSD of 10 A^2 in 1.4 ps; at the old demo's 2000 K nothing moved and the "quenched
glasses" were the starting glass, relaxed. The tiny models have holes at O-O and Si-Si distances
closer than anything in their data, and hot atoms fall into them: without the wall, both 6-epoch
models blew up within 0.15 ps of reaching 6000 K (the RSA one even at 4000 K), and models trained
20 epochs still did within 0.9-2.4 ps at 4500-6000 K. The wall closes the holes without touching
the distances the data covers; with it the 6-epoch models run the whole protocol and their O MSD
over the 3 ps hold is 15-19 A^2. ``--md-scale`` stretches every stage, ``--md-temperature`` sets
the hold's temperature (at 5000 K the O MSD grows by only about 1.6-2.6 A^2/ps: expect the melt
check to fail in 3 ps).

The models are tiny and barely trained, so the quenched structures are a smoke test of the
pipeline, not a result; ``experiments/`` holds the real study's configs.
"""

from __future__ import annotations

import argparse
import json
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


#: The demo's protocol at ``--md-scale 1``: (stage, time in ps). Heat from 300 K, hold at the top
#: temperature (the melt), quench to 300 K, hold (the glass the analysis reads).
MD_STAGES_PS = (("heat", 0.5), ("hot", 3.0), ("quench", 1.0), ("glass", 0.5))

#: Pair wall (``rsajax md``'s ``core_repulsion``) just inside the closest pairs of the shipped
#: data (Si-O 1.18 A, O-O 1.77 A, Si-Si 2.19 A, in strained and 6000 K frames): zero wherever the
#: data says anything, and what keeps hot atoms out of the tiny models' short-range holes.
CORE_REPULSION = {"radii": {"Si-O": 1.1, "O-O": 1.6, "Si-Si": 2.0}, "strength_eV": 10.0}


def md_config(model_dir: Path, start: Path, out: Path, scale: float, t_max: float) -> dict:
    """Heat to ``t_max``, hold (the melt), quench to 300 K, hold: ``scale`` stretches every stage
    of :data:`MD_STAGES_PS`."""
    times = {name: t * scale for name, t in MD_STAGES_PS}
    return {
        "model": str(model_dir),
        "structure": str(start),
        "dtype": "float32",
        "seed": 0,
        "initial_temperature_K": 300,
        "ensemble": {"kind": "nvt_langevin", "dt_fs": 1.0, "friction_per_fs": 0.02},
        "core_repulsion": CORE_REPULSION,
        "stages": [
            {"kind": "heat", "T_end": t_max, "time_ps": times["heat"]},
            {"kind": "hold", "time_ps": times["hot"], "name": "hot"},
            {"kind": "quench", "T_end": 300, "time_ps": times["quench"]},
            {"kind": "hold", "time_ps": times["glass"], "name": "glass"},
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


def melt_verdict(name: str, md_dir: Path, start, stopped: str | None) -> dict:
    """Melt check of one model's run (:func:`rsajax.analysis.melt.melt_check`), printed; a run
    that could not be checked counts as not melted."""
    from rsajax.analysis.melt import melt_check

    entry: dict = {"run": name, "stopped": stopped}
    try:
        check = melt_check(md_dir / "trajectory.extxyz", start, hot_stage="hot")
    except (ValueError, FileNotFoundError) as error:
        entry.update(melted=False, error=str(error))
        print(f"!! {name.upper()}: NOT MELTED: the melt check failed: {error}", flush=True)
        return entry
    entry.update(check.to_dict())
    lines = check.lines()
    prefix = "" if check.melted else "!! "
    print(f"{prefix}{name.upper()} {lines[0]}", *lines[1:], sep="\n", flush=True)
    if stopped:
        print(f"!! {name.upper()}: the run stopped early ({stopped}); the end frame is no glass")
    return entry


def write_melt_report(report: Path, verdicts: list[dict]) -> Path:
    """``melt.json`` and a melt-check section at the end of ``summary.md`` in ``report``."""
    report.mkdir(parents=True, exist_ok=True)
    path = report / "melt.json"
    path.write_text(json.dumps(verdicts, indent=1))
    rows = [
        "",
        "## Melt check",
        "",
        "Melted = the O mean square displacement over the hot hold reaches the threshold and the "
        "ring histogram of the final frame differs from the start's (total variation distance "
        "of the ring-size fractions at least the threshold); `rsajax.analysis.melt`.",
        "",
        "| run | melted | O MSD (A^2) | Si MSD (A^2) | MSD threshold | ring distance | "
        "ring threshold | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        if "msd_A2" in v:
            msd = v["msd_A2"]
            rows.append(
                f"| {v['run']} | {'yes' if v['melted'] else '**NO**'} | "
                f"{msd.get('O', float('nan')):.2f} | {msd.get('Si', float('nan')):.2f} | "
                f"{v['msd_threshold_A2']} | {v['ring_distance']:.3f} | {v['ring_threshold']} | "
                f"{v['stopped'] or ''} |"
            )
        else:
            rows.append(f"| {v['run']} | **NO** | | | | | | {v.get('error', '')} |")
    summary = report / "summary.md"
    with open(summary, "a") as f:
        f.write("\n".join(rows) + "\n")
    return path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="the flagship study in miniature on the embedded silica dataset",
        description="Train a tiny MACE and RSA-MACE on the shipped BKS silica data, melt the "
        "teacher's glass at --md-temperature and quench it with each in jax-md, check that each "
        "run melted (hot-stage MSD, ring change: report/melt.json), and analyse the glasses.",
    )
    parser.add_argument("--data", default=None, help="structure file (default: shipped silica set)")
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=6,
        help="training epochs per model (default 6)",
    )
    parser.add_argument(
        "--md-scale",
        type=float,
        default=1.0,
        help="stretch every MD stage (default 1: heat 0.5 ps, hold 3 ps, quench 1 ps, hold 0.5 ps)",
    )
    parser.add_argument(
        "--md-temperature",
        type=float,
        default=6000.0,
        help="temperature of the melt hold, K (default 6000; the melt check needs the O atoms to "
        "diffuse 7 A^2 in the hold)",
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
    if not data.is_file():
        raise FileNotFoundError(f"--data {data}: no such structure file")
    experiment = find_experiment(args.exp_path)  # before the long stages: a typo fails at once
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
    verdicts = []
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
        stopped = None
        try:
            _stage(f"3. melt and quench with the {name.upper()} model", ["md", str(config)])
        except BlowUpError as error:  # a barely trained model may fail; keep what it wrote
            stopped = str(error)
            print(f"!! the {name.upper()} model's run stopped: {error}")
        if (md_dir / "trajectory.extxyz").is_file():
            trajectories.append(md_dir / "trajectory.extxyz")
        print(f"\n== 4. melt check of the {name.upper()} run", flush=True)
        verdicts.append(melt_verdict(name, md_dir, glass[-1], stopped))

    compare = ["--compare", "experiment", "--exp-path", str(experiment)] if experiment else []
    if experiment is None:
        print("\n(no experimental data found: pass --exp-path SiO2_NIMROD.mint01 to compare)")
    _stage(
        "5. structure analysis",
        [
            "analyze",
            *map(str, trajectories),
            "--out",
            str(out / "report"),
            "--index=-4:",
            # A 192-atom box over 4 frames cannot resolve the FSDP (too few q-vectors per
            # shell), and a demo user cannot change that: the report lists it, the console
            # gets one line instead of a warning per curve.
            "--warnings-in-report",
            *compare,
        ],
    )
    melt = write_melt_report(out / "report", verdicts)
    print("\n== melt check (every quench must start from a melt)")
    for v in verdicts:
        if v["melted"]:
            species = v["msd_species"]
            print(
                f"{v['run'].upper()}: melted ({species} MSD {v['msd_A2'][species]:.1f} A^2, "
                f"ring distance {v['ring_distance']:.2f})"
            )
        else:
            print(f"!! {v['run'].upper()}: NOT MELTED: its quench is no new glass")
    print(
        f"\nreport: {out / 'report' / 'summary.md'}, {out / 'report' / 'comparison.png'} and {melt}"
    )
    return 0
