"""``rsajax info FILE``: what a structure file holds, as the data pipeline sees it."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from rsajax.data.batching import GraphDataset
from rsajax.data.graphs import atoms_to_record
from rsajax.data.io import read_structures
from rsajax.data.labels import LABELS, get_labels
from rsajax.data.statistics import compute_statistics
from rsajax.errors import InputError


def summarize(structures: Sequence[Atoms], cutoff: float, batch_size: int = 8) -> str:
    """A human-readable summary: sizes, elements, labels, statistics, padding buckets."""
    sizes = np.array([len(a) for a in structures])
    elements = Counter(chemical_symbols[z] for a in structures for z in a.numbers)
    labels = {name: sum(get_labels(a)[name] is not None for a in structures) for name in LABELS}
    periodic = sum(bool(a.pbc.any()) for a in structures)
    start = time.perf_counter()
    records = [atoms_to_record(a, cutoff) for a in structures]
    elapsed = time.perf_counter() - start
    stats = compute_statistics(records)
    dataset = GraphDataset(records, batch_size=batch_size)
    lines = [
        f"structures: {len(structures)} ({periodic} periodic), atoms per structure "
        f"{sizes.min()}-{sizes.max()} (mean {sizes.mean():.1f})",
        "elements: " + ", ".join(f"{k} {v}" for k, v in sorted(elements.items())),
        "labels: " + ", ".join(f"{k} {v}/{len(structures)}" for k, v in labels.items()),
        f"graphs at cutoff {cutoff} A: {sum(r.n_edge for r in records)} edges, built in "
        f"{elapsed:.2f} s ({len(records) / max(elapsed, 1e-9):.0f} graphs/s)",
        stats.summary(),
        f"batches of {batch_size}: {len(dataset)} per epoch, padding buckets "
        + ", ".join(f"({c.n_node} nodes, {c.n_edge} edges)" for c in dataset.buckets),
    ]
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info", help="summarise a structure file (extxyz or any ASE format)"
    )
    parser.add_argument("path", help="structure file")
    parser.add_argument(
        "--cutoff", type=float, default=5.0, help="neighbour cutoff in A (default 5)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--stress-key", default="stress")
    parser.add_argument(
        "--skip-invalid", action="store_true", help="drop bad structures, report them"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.cutoff > 0:
        raise InputError(f"--cutoff must be positive, got {args.cutoff}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    structures, report = read_structures(
        args.path,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        stress_key=args.stress_key,
        skip_invalid=args.skip_invalid,
        return_report=True,
    )
    print(report.summary())
    print(summarize(structures, args.cutoff, args.batch_size))
    return 0
