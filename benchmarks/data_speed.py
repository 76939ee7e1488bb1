"""Graphs per second for the host-side data pipeline (neighbour list + padding + collation).

Prints a table for random silica boxes, so later work can check data loading is no bottleneck:

    python benchmarks/data_speed.py            # 64- and 648-atom boxes
    python benchmarks/data_speed.py --quick
"""

from __future__ import annotations

import argparse
import time

from rsajax.data import GraphDataset, atoms_to_record, random_silica_box


def measure(n_atoms: int, n_structures: int, cutoff: float, batch_size: int) -> dict:
    structures = [random_silica_box(n_atoms, seed=s) for s in range(n_structures)]
    start = time.perf_counter()
    records = [atoms_to_record(a, cutoff) for a in structures]
    build = time.perf_counter() - start
    dataset = GraphDataset(records, batch_size=batch_size, seed=0)
    start = time.perf_counter()
    batches = sum(1 for _ in dataset.batches(0))
    collate = time.perf_counter() - start
    return {
        "atoms": n_atoms,
        "edges/graph": sum(r.n_edge for r in records) / n_structures,
        "neighbour lists (graphs/s)": n_structures / build,
        "batching (graphs/s)": n_structures / collate,
        "batches": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer structures")
    parser.add_argument("--cutoff", type=float, default=5.0)
    args = parser.parse_args()
    count = 20 if args.quick else 200
    rows = [measure(64, count, args.cutoff, 16), measure(648, count // 4, args.cutoff, 4)]
    header = list(rows[0])
    print(" | ".join(f"{h:>26}" for h in header))
    for row in rows:
        print(
            " | ".join(
                f"{row[h]:>26.1f}" if isinstance(row[h], float) else f"{row[h]:>26}" for h in header
            )
        )


if __name__ == "__main__":
    main()
