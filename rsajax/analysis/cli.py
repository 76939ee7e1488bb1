"""``rsajax analyze TRAJ [TRAJ ...] --compare experiment --exp-path FILE --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsajax.analysis.experiment import read_nimrod_mint01
from rsajax.analysis.frames import read_frames
from rsajax.analysis.report import analyze_run, write_report
from rsajax.errors import InputError, run_command


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``analyze`` sub-command on an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "analyze",
        help="silica glass structure: S(Q), FSDP, rings, angles, compared with experiment",
        description="Analyse silica trajectories (extxyz, ASE .traj, anything ase.io reads): "
        "neutron and X-ray S(Q) on the box's reciprocal lattice, FSDP fit, coordination, "
        "Si-O-Si / O-Si-O angles, shortest-path rings; writes comparison.png, summary.json, "
        "summary.md and S(Q) curves to --out.",
    )
    p.add_argument("traj", nargs="+", type=Path, help="trajectory file(s); each is one run")
    p.add_argument(
        "--compare",
        choices=["experiment", "none"],
        default="none",
        help="overlay the experimental neutron S(Q) (needs --exp-path)",
    )
    p.add_argument(
        "--exp-path",
        type=Path,
        default=None,
        help="NIMROD .mint01 file of vitreous SiO2 (Q, F(Q), error)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--index", default=":", help="ase.io.read frame selection, e.g. '-20:'")
    p.add_argument(
        "--merge",
        action="store_true",
        help="treat all trajectories as one run (e.g. independent quenches)",
    )
    p.add_argument("--q-max", type=float, default=12.0, help="largest Q, 1/A (default 12)")
    p.add_argument("--shell-width", type=float, default=0.05, help="Q shell width, 1/A")
    p.add_argument("--max-ring", type=int, default=10, help="largest ring, Si atoms")
    p.add_argument(
        "--ring-frames",
        type=int,
        default=10,
        help="rings on at most this many evenly spaced frames per run",
    )
    p.add_argument(
        "--ring-engine",
        choices=["python", "matscipy"],
        default="python",
        help="SP-ring search: this package's (exact on the periodic network) or matscipy's "
        "(about 10x faster; equal once the box is about twice the largest ring)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--warnings-in-report",
        action="store_true",
        help="write unresolved-FSDP warnings to summary.md/json only and print their count "
        "(for boxes known to be too small to resolve the FSDP, e.g. the demo's)",
    )
    p.set_defaults(func=run)
    return p


def run_labels(paths: list[Path]) -> list[str]:
    """Short names for runs: the fewest trailing path parts that tell the files apart.

    ``[a/md_sr/trajectory.extxyz, a/md_lr/trajectory.extxyz]`` -> ``[md_sr/trajectory.extxyz,
    md_lr/trajectory.extxyz]``; distinct file names stay bare.
    """
    parts = [Path(p).resolve().parts for p in paths]
    for depth in range(1, max(len(x) for x in parts) + 1):
        labels = ["/".join(x[-depth:]) for x in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def run(args: argparse.Namespace) -> int:
    """Run the analysis described by ``args``; returns a process exit code."""
    if args.compare == "experiment" and args.exp_path is None:
        raise InputError("--compare experiment needs --exp-path FILE")
    exp = read_nimrod_mint01(args.exp_path) if args.compare == "experiment" else None
    labels = run_labels(list(args.traj))
    runs_frames = [
        (name, read_frames(p, args.index)) for name, p in zip(labels, args.traj, strict=True)
    ]
    if args.merge:
        runs_frames = [
            (" + ".join(n for n, _ in runs_frames), [f for _, fs in runs_frames for f in fs])
        ]
    runs = [
        analyze_run(
            name,
            frames,
            q_max=args.q_max,
            shell_width=args.shell_width,
            max_si=args.max_ring,
            ring_frames=args.ring_frames,
            ring_engine=args.ring_engine,
            progress=not args.no_progress,
        )
        for name, frames in runs_frames
    ]
    paths = write_report(runs, exp, args.out, echo_warnings=not args.warnings_in_report)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m rsajax.analysis.cli``); errors as ``rsajax analyze``."""
    parser = argparse.ArgumentParser(prog="rsajax")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run_command("analyze", run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
