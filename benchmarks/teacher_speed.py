"""BKS teacher speed: Langevin MD steps per second for 192, 648 and 1536 atoms (silica, 2.2 g/cm3).

    python benchmarks/teacher_speed.py [--sizes 192 648 1536] [--steps 200] [--dtype float32]

Prints one row per size: supercell replication, neighbour slots per atom, k-vectors, compile time,
steps/s and rebuilds. Liquid at 3000 K after a short FIRE relaxation of a random start. Float32 is
what the data generator uses for MD (labels are float64).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from rsajax.teachers import dynamics, structures  # noqa: E402
from rsajax.teachers.bks import BKS, bks_silica  # noqa: E402
from rsajax.teachers.ewald import reciprocal_integer_vectors  # noqa: E402


def measure(n_atoms: int, steps: int, dtype, chunk: int = 50) -> dict:
    rng = np.random.default_rng(0)
    atoms = structures.random_silica(n_atoms // 3, 2.2, rng)
    box = atoms.cell.array.T
    system = bks_silica(atoms.numbers, box, skin=1.0)
    R = dynamics.relax(system, atoms.get_scaled_positions(), steps=100)
    traj = dynamics.start(
        system, R, 3000.0, jax.random.PRNGKey(0), steps_per_chunk=chunk, dtype=dtype
    )
    began = time.perf_counter()
    traj.run(np.full(chunk, 3000.0))  # compiles
    jax.block_until_ready(traj.state.position)
    compile_s = time.perf_counter() - began
    rebuilds0 = int(traj.neighbors.rebuilds)
    began = time.perf_counter()
    traj.run(np.full(steps, 3000.0))
    jax.block_until_ready(traj.state.position)
    seconds = time.perf_counter() - began
    return dict(
        atoms=n_atoms,
        reps="x".join(map(str, system.reps)),
        slots=traj.neighbors.idx.shape[1],
        kvec=len(reciprocal_integer_vectors(box, BKS.ewald.k_cut)),
        compile_s=compile_s,
        steps_per_s=steps / seconds,
        ns_per_day=steps / seconds * 86400 * 1e-6,
        rebuilds=int(traj.neighbors.rebuilds) - rebuilds0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 648, 1536])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)
    print(f"BKS + Ewald Langevin MD, dt 1 fs, {args.dtype}, device {jax.devices()[0]}")
    header = f"{'atoms':>6} {'reps':>6} {'slots':>6} {'k-vec':>6} {'compile s':>10} "
    header += f"{'steps/s':>9} {'ns/day':>8} {'rebuilds':>9}"
    print(header)
    for n in args.sizes:
        r = measure(n, args.steps, dtype)
        print(
            f"{r['atoms']:>6} {r['reps']:>6} {r['slots']:>6} {r['kvec']:>6} "
            f"{r['compile_s']:>10.1f} {r['steps_per_s']:>9.1f} {r['ns_per_day']:>8.3f} "
            f"{r['rebuilds']:>9}"
        )


if __name__ == "__main__":
    main()
