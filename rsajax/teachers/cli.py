"""``rsajax teach silica [--config small|large] [--teacher bks|bks-glass] [--out P] [--seed N]``."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``teach`` on the top-level ``rsajax`` sub-command parser."""
    parser = subparsers.add_parser(
        "teach", help="label data with a reference potential (BKS silica)"
    )
    parser.add_argument("system", choices=["silica"], help="what to generate")
    parser.add_argument(
        "--config",
        choices=["small", "large"],
        default="small",
        help="small: ~300 frames of 48-192 atoms, minutes on a CPU; large: for a GPU",
    )
    parser.add_argument(
        "--teacher",
        choices=["bks", "bks-glass"],
        default="bks",
        help="BKS with its short-range part cut at 10 A (bks) or at 5.5 A as in the glass studies "
        "(bks-glass, whose 0 GPa glass is near the experiment's density)",
    )
    parser.add_argument("--out", default=None, help="extxyz path (default silica_<config>.xyz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Generate the data set; writes the extxyz file and a JSON file describing it."""
    import jax

    jax.config.update("jax_enable_x64", True)  # labels are float64; MD dtype is set per config
    import dataclasses

    from rsajax.teachers.generate import CONFIGS, build_dataset

    out = args.out or f"silica_{args.config}.xyz"
    config = dataclasses.replace(CONFIGS[args.config], teacher=args.teacher)
    summary = build_dataset(config, out, seed=args.seed)
    print(
        f"wrote {summary['frames']} frames ({summary['stages']}) to {out} in {summary['seconds']} s"
    )
    return 0
