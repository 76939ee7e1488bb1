"""Speed of the silica structure analysis: frames per second for S(Q) and SP rings.

Structures: rattled beta-cristobalite supercells with 648 (3x3x3) and 3000 (5x5x5) atoms, every
ring search up to 10 Si (20 atoms). S(Q): all partials on the box's reciprocal lattice up to
q_max = 12 1/A in 0.05 1/A shells, at most 200 vectors per shell, frames batched 4 at a time,
float32 and float64. Rings: this package's Python engine and matscipy's C engine on the same
Si-O graph.

    .venv/bin/python benchmarks/analysis_speed.py [--frames 8]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from ase.spacegroup import crystal

from rsajax.analysis.rings import ring_statistics
from rsajax.analysis.structure_factor import reciprocal_grid, shell_sums, species_onehot


def cristobalite(reps: int, rattle: float = 0.1, seed: int = 0):
    a = crystal(
        ["Si", "O"],
        basis=[(0, 0, 0), (0.125, 0.125, 0.125)],
        spacegroup=227,
        cellpar=[7.16, 7.16, 7.16, 90, 90, 90],
    ) * (reps, reps, reps)
    a.rattle(rattle, seed=seed)
    return a


def sq_rate(atoms, n_frames: int, dtype, batch: int = 4) -> tuple[float, int]:
    """Frames per second of the partial S(Q) sums (after compilation) and the q-vector count."""
    rng = np.random.default_rng(0)
    frames = atoms.positions[None] + rng.normal(0, 0.05, (n_frames, len(atoms), 3))
    grid = reciprocal_grid(atoms.cell[:], 12.0, 0.05, 200)
    _, onehot = species_onehot(atoms.numbers)
    args = (atoms.cell[:].astype(dtype), onehot, grid.hkl, grid.shell, grid.n_shells)
    shell_sums(frames[:batch].astype(dtype), *args).block_until_ready()  # compile
    t = time.perf_counter()
    for start in range(0, n_frames, batch):
        shell_sums(frames[start : start + batch].astype(dtype), *args).block_until_ready()
    return n_frames / (time.perf_counter() - t), len(grid.vectors)


def ring_rate(atoms, engine: str, n_frames: int) -> float:
    t = time.perf_counter()
    for k in range(n_frames):
        a = atoms.copy()
        a.rattle(0.05, seed=k)
        ring_statistics(a.positions, a.cell[:], a.numbers, cutoff=2.0, max_si=10, engine=engine)
    return n_frames / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per S(Q) measurement")
    parser.add_argument("--ring-frames", type=int, default=2, help="frames per ring measurement")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print(
        "| atoms | q-vectors | S(Q) f32 frames/s | S(Q) f64 frames/s "
        "| rings (python) frames/s | rings (matscipy) frames/s |"
    )
    print("|---|---|---|---|---|---|")
    for reps in (3, 5):
        atoms = cristobalite(reps)
        r32, m = sq_rate(atoms, args.frames, np.float32)
        r64, _ = sq_rate(atoms, args.frames, np.float64)
        rp = ring_rate(atoms, "python", args.ring_frames)
        rm = ring_rate(atoms, "matscipy", args.ring_frames)
        print(f"| {len(atoms)} | {m} | {r32:.2f} | {r64:.2f} | {rp:.2f} | {rm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
