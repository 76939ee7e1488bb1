"""Device benchmark suite: SR-MACE and RSA-MACE at ~1.5k, 6k, 24k and 100k atoms in one command.

For each model and size, on random silica boxes at glass density, float32:

- energy+forces: best of ``--repeats`` calls, as atom-steps/s (atoms / seconds per call);
- jax-md Langevin MD at 300 K, 1 fs (``md_speed.time_rsajax``: chunked scan, neighbour list,
  thermo every 50 steps), as atom-steps/s;
- training: rsajax's train step (``train_speed.train_step_seconds``) on a batch of about
  ``--train-atoms`` atoms of such boxes, as structures/s (sizes up to ``--train-max``: by default
  1536 atoms only, 4 boxes per batch, to keep the whole run within about 5 minutes);
- peak device memory: ``memory_stats()["peak_bytes_in_use"]`` of the cell's process (GPU, TPU),
  and XLA's own estimate for the compiled energy+forces call (temporaries + arguments + outputs),
  the only figure on a CPU, where ``memory_stats()`` is not available.

SR-MACE is ``rsa_scaling.MODEL`` (32 channels, L <= 1, max_ell 2, correlation 3, 2 layers);
RSA-MACE adds ``RSAConfig.preset("default")``, evaluated ``direct`` below ``--mesh-from`` atoms
and on the mesh (smooth PME) from there, where the direct lattice sum (O(N^2)) is slower.

Each (model, size) runs in its own process, so its peak memory is its own and running out of
memory at 100k atoms costs one cell. Cells run smallest first until ``--budget`` seconds are
used; a cell that would start later is listed as not run, never estimated.

    python benchmarks/device_suite.py                # GPU: the four sizes, about 5 min
    python benchmarks/device_suite.py --quick        # CPU check: 96 atoms, a small model
    python benchmarks/device_suite.py --json out.json --sizes 1536 6000

Prints one row per cell as it finishes and writes every figure to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SIZES = (1536, 6000, 24000, 100000)
MODELS = ("SR-MACE", "RSA-MACE")
#: --quick: a small SR-MACE (compiles in seconds on a CPU); the RSA part is the same preset.
QUICK_MODEL = dict(
    num_channels=8, max_L=0, max_ell=1, correlation=2, num_interactions=1, radial_MLP=(16,)
)


def evaluation_for(atoms: int, mesh_from: int) -> str:
    """RSA evaluation at a size: ``direct`` below ``mesh_from`` atoms, ``mesh`` from there."""
    return "mesh" if atoms >= mesh_from else "direct"


def peak_device_mb() -> float | None:
    """Peak bytes in use on the first device since the process started (None on a CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use", 0) / 2**20


def guarded(fn, *args) -> dict:
    """``fn(*args)``, or ``{"error": ...}`` (e.g. out of device memory) so the cell goes on."""
    try:
        return fn(*args)
    except Exception as err:  # an XLA runtime error is as good a result as a time here
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}


def measure_cell(name: str, atoms: int, args: argparse.Namespace) -> dict:
    """Every figure of one (model, size) cell; runs inside the cell's own process."""
    import jax
    import numpy as np
    from md_speed import time_rsajax
    from rsa_scaling import MODEL, model_call
    from train_speed import train_step_seconds

    from rsajax.data import atoms_to_record, attach_labels, random_silica_box
    from rsajax.nn.model import MACEConfig, init_model
    from rsajax.nn.rsa import RSAConfig, make_kset_fn

    model_fields = dict(MODEL, **QUICK_MODEL) if args.quick else MODEL
    evaluation = evaluation_for(atoms, args.mesh_from) if name == "RSA-MACE" else None
    long_range = None if evaluation is None else RSAConfig.preset("default", evaluation=evaluation)
    config = MACEConfig(**model_fields, dtype="float32", long_range=long_range)
    box = random_silica_box(atoms, seed=0)
    device = jax.devices()[0]
    out: dict = {"model": name, "atoms": atoms, "evaluation": evaluation,
                 "device": device.device_kind}  # fmt: skip

    def energy_forces() -> dict:
        start = time.perf_counter()
        compiled, call_args, xla_bytes, m = model_call(
            long_range, box, np.float32, model=model_fields
        )
        first = time.perf_counter() - start
        best = np.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(*call_args))
            best = min(best, time.perf_counter() - start)
        return {
            "ms": 1e3 * best,
            "atom_steps_per_s": atoms / best,
            "first_s": first,
            "xla_peak_mb": xla_bytes / 2**20,
            "k_points": m,  # RSA: k-vectors (direct) or grid points (mesh)
        }

    def md() -> dict:
        model, variables = init_model(config)
        variables = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), variables)
        options = dict(skin=0.3, strain_skin=0.0, capacity_multiplier=1.1)
        start = time.perf_counter()
        _, steps_per_s = time_rsajax(model, variables, box, args.md_steps, options)
        return {
            "steps": args.md_steps,
            "steps_per_s": steps_per_s,
            "atom_steps_per_s": atoms * steps_per_s,
            "total_s": time.perf_counter() - start,  # compile, warm-up run and timed run
        }

    def train() -> dict:
        count = max(1, args.train_atoms // atoms)
        rng = np.random.default_rng(0)
        records = []
        for i in range(count):  # labels only need to exist: the step's cost does not depend on them
            b = random_silica_box(atoms, seed=i)
            attach_labels(b, energy=float(rng.normal()), forces=rng.normal(size=(atoms, 3)))
            records.append(atoms_to_record(b, config.r_max))
        kset_fn = None if long_range is None else make_kset_fn(config.long_range, records)
        first, step = train_step_seconds(config, init_model(config)[1], records, 2, 3, kset_fn)
        return {"batch": count, "structures_per_s": count / step, "ms": 1e3 * step,
                "first_s": first}  # fmt: skip

    out["energy_forces"] = guarded(energy_forces)
    out["md"] = guarded(md) if args.md_steps > 0 else {"error": "not asked for"}
    out["train"] = guarded(train) if atoms <= args.train_max else {"error": "above --train-max"}
    out["device_peak_mb"] = peak_device_mb()
    return out


def run_cell(name: str, atoms: int, args: argparse.Namespace, timeout: float) -> dict:
    """One cell in a fresh process; an error record if it fails or runs out of time."""
    cmd = [sys.executable, __file__, "--cell", name, str(atoms), *args.forwarded]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "atoms": atoms, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": name, "atoms": atoms, "error": f"exit {proc.returncode}: {tail[:160]}"}
    return json.loads(lines[-1])


def fmt(record: dict, key: str, spec: str) -> str:
    """``record[key]`` formatted, or a short reason why it is missing."""
    if not isinstance(record, dict):
        return "-"
    if record.get(key) is not None:
        return format(record[key], spec)
    return "n/a" if "error" not in record else "error"


HEADER = (
    f"{'model':<9} {'atoms':>7} {'RSA':>6} | {'E+F ms':>9} {'E+F atom-steps/s':>16} | "
    f"{'MD atom-steps/s':>15} | {'train struct/s':>14} {'batch':>5} | {'device MB':>9} "
    f"{'XLA E+F MB':>10}"
)


def row(cell: dict) -> str:
    if "energy_forces" not in cell:
        return f"{cell['model']:<9} {cell['atoms']:>7} {'':>6} | {cell['error']}"
    ef, md, train = cell["energy_forces"], cell["md"], cell["train"]
    device = "n/a" if cell["device_peak_mb"] is None else f"{cell['device_peak_mb']:.0f}"
    return (
        f"{cell['model']:<9} {cell['atoms']:>7} {cell['evaluation'] or '-':>6} | "
        f"{fmt(ef, 'ms', '.1f'):>9} {fmt(ef, 'atom_steps_per_s', '.2e'):>16} | "
        f"{fmt(md, 'atom_steps_per_s', '.2e'):>15} | {fmt(train, 'structures_per_s', '.3g'):>14} "
        f"{fmt(train, 'batch', 'd'):>5} | {device:>9} {fmt(ef, 'xla_peak_mb', '.0f'):>10}"
    )


def errors(cell: dict) -> list[str]:
    """'what: error' for every measurement of a cell that failed (printed under the table)."""
    found = [f"{cell['model']} {cell['atoms']}: {cell['error']}"] if "error" in cell else []
    for what in ("energy_forces", "md", "train"):
        error = cell.get(what, {}).get("error")
        if error and error not in ("not asked for", "above --train-max"):
            found.append(f"{cell['model']} {cell['atoms']} {what}: {error}")
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU check: 96 atoms, small model")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--mesh-from", type=int, default=12000, help="RSA on the mesh from here")
    parser.add_argument("--repeats", type=int, default=5, help="energy+forces calls timed")
    parser.add_argument("--md-steps", type=int, default=100, help="timed MD steps (0: no MD)")
    parser.add_argument("--train-atoms", type=int, default=6000, help="atoms per training batch")
    parser.add_argument("--train-max", type=int, default=1536, help="largest size trained")
    parser.add_argument("--budget", type=float, default=290.0, help="seconds for all cells")
    parser.add_argument("--cell-timeout", type=float, default=120.0, help="seconds per cell")
    parser.add_argument("--json", default="runs/device_suite.json", help="where figures go")
    parser.add_argument("--cell", nargs=2, metavar=("MODEL", "ATOMS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:  # every code path once (RSA on the mesh), at CPU-sized cost; no timing goal
        args.sizes, args.mesh_from, args.md_steps = [96], 96, 50
        args.train_atoms, args.train_max, args.repeats = 192, 96, 3
        args.budget, args.cell_timeout = 1200.0, 600.0
    # what a cell's process needs to know (its own --cell comes first)
    args.forwarded = [
        *(["--quick"] if args.quick else []),
        f"--mesh-from={args.mesh_from}",
        f"--repeats={args.repeats}",
        f"--md-steps={args.md_steps}",
        f"--train-atoms={args.train_atoms}",
        f"--train-max={args.train_max}",
    ]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        print(json.dumps(measure_cell(args.cell[0], int(args.cell[1]), args)))
        return
    # The parent never starts a backend: on a GPU that would hold memory the cells need.
    from importlib.metadata import version

    print(f"# jax {version('jax')}, float32; RSA on the mesh from {args.mesh_from} atoms; MD "
          f"{args.md_steps} steps; training batch ~{args.train_atoms} atoms; budget "
          f"{args.budget:.0f} s")  # fmt: skip
    print(HEADER, flush=True)
    cells, start = [], time.perf_counter()
    for atoms in sorted(args.sizes):
        for name in args.models:
            left = args.budget - (time.perf_counter() - start)
            if left < 10:
                cell = {"model": name, "atoms": atoms, "error": "not run: --budget used up"}
            else:
                cell = run_cell(name, atoms, args, min(args.cell_timeout, left))
            cells.append(cell)
            print(row(cell), flush=True)
    elapsed = time.perf_counter() - start
    for line in [e for cell in cells for e in errors(cell)]:
        print(f"  {line}")
    devices = sorted({cell["device"] for cell in cells if "device" in cell})
    print(f"# device: {', '.join(devices) or 'unknown (no cell ran)'}; {elapsed:.0f} s in all")
    summary = {
        "devices": devices,
        "jax": version("jax"),
        "dtype": "float32",
        "quick": args.quick,
        "command": " ".join(sys.argv),
        "seconds": elapsed,
        "cells": cells,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1))
    print(f"# figures written to {args.json}")


if __name__ == "__main__":
    main()
