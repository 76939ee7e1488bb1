"""``rsajax demo``: the pipeline end to end on the embedded default silica dataset.

Runs every stage that rsajax has, on data small enough for a laptop CPU, and prints what each
stage measured. Stages: read and validate the shipped BKS silica data, build graphs and padding
buckets, dataset statistics.
"""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

from rsajax.data.io import read_structures
from rsajax.data.summary import summarize


def default_dataset() -> Path:
    """Path of the silica dataset shipped inside the package."""
    path = Path(str(resources.files("rsajax.data") / "default" / "silica_small.xyz"))
    if not path.exists():
        raise FileNotFoundError(
            f"the default dataset {path} is missing from this install; regenerate it with "
            "`rsajax teach silica --config small`"
        )
    return path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="run the pipeline on the embedded silica dataset")
    parser.add_argument("--data", default=None, help="structure file (default: shipped silica set)")
    parser.add_argument("--cutoff", type=float, default=5.0, help="model cutoff in A")
    parser.add_argument("--out", default="demo_out", help="output folder")
    return parser


def run(args: argparse.Namespace) -> int:
    path = Path(args.data) if args.data else default_dataset()
    os.makedirs(args.out, exist_ok=True)
    print(f"== 1. data: {path}")
    structures = read_structures(path, require=("energy", "forces"))
    print(summarize(structures, args.cutoff))
    return 0
