"""rsajax MACE vs mace-torch: ms per energy+forces call, compile time and peak memory.

Identical hyperparameters on both sides (max_ell 3, correlation 3, 2 interactions, r_max 5,
8 Bessel, radial MLP 64x3, MLP 16x0e); the torch model is converted with ``rsajax convert`` so
both evaluate the same weights. Each measurement runs in a fresh subprocess, so "peak RSS" is
that process's own high-water mark (Python + libraries included, about 0.3-0.5 GB).

    python benchmarks/mace_speed.py --quick       # 192 atoms, 64x0e+64x1o
    python benchmarks/mace_speed.py               # 192/648/1536 atoms, 64 and 128 channels
    python benchmarks/mace_speed.py --sizes 1536 --channels 128 --dtypes float64 --skip-torch

Needs the [torch] extra for the mace-torch column and for conversion.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

R_MAX = 5.0


def hyperparameters(channels: int) -> dict:
    return dict(
        r_max=R_MAX,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=3,
        hidden=f"{channels}x0e+{channels}x1o",
        correlation=3,
        num_interactions=2,
    )


def build_torch_model(channels: int, dtype: str):
    from rsajax.convert.mace_torch import import_torch

    torch = import_torch()
    torch.set_default_dtype(getattr(torch, dtype))
    import numpy as np
    from e3nn import o3
    from mace import modules

    hp = hyperparameters(channels)
    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return modules.ScaleShiftMACE(
        r_max=hp["r_max"],
        num_bessel=hp["num_bessel"],
        num_polynomial_cutoff=hp["num_polynomial_cutoff"],
        max_ell=hp["max_ell"],
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=hp["num_interactions"],
        num_elements=2,
        hidden_irreps=o3.Irreps(hp["hidden"]),
        MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.array([-4.0, -8.0]),
        avg_num_neighbors=30.0,
        atomic_numbers=[8, 14],
        correlation=hp["correlation"],
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_rsajax(model_dir: str, n_atoms: int, dtype: str, repeats: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    from rsajax.data import atoms_to_graph, random_silica_box
    from rsajax.nn.model import MACE, MACEConfig, load_model
    from rsajax.potential import energy_fn_from_model, make_potential

    model, variables = load_model(model_dir)
    config = MACEConfig.from_dict({**model.config.to_dict(), "dtype": dtype})
    variables = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype), variables)
    graph = atoms_to_graph(random_silica_box(n_atoms, seed=0), R_MAX, dtype=np.dtype(dtype))
    potential = make_potential(energy_fn_from_model(MACE(config)), compute_stress=False)
    start = time.perf_counter()
    jax.block_until_ready(potential(variables, graph))
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(potential(variables, graph))
    per_call = (time.perf_counter() - start) / repeats
    compiled = potential.lower(variables, graph).compile()
    mem = compiled.memory_analysis()
    xla_mb = None
    if mem is not None:
        xla_mb = (
            mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
        ) / 2**20
    return {
        "ms": per_call * 1e3,
        "first_s": first,
        "rss_mb": peak_rss_mb(),
        "xla_mb": xla_mb,
        "edges": int(graph.n_edge[0]),
    }


def worker_torch(channels: int, n_atoms: int, dtype: str, repeats: int) -> dict:
    import numpy as np

    from rsajax.data import neighbor_list, random_silica_box

    model = build_torch_model(channels, dtype)
    torch = sys.modules["torch"]
    atoms = random_silica_box(n_atoms, seed=0)
    senders, receivers, offsets = neighbor_list(atoms, R_MAX)
    index = (atoms.numbers == 14).astype(np.int64)
    tdt = getattr(torch, dtype)
    cell = np.asarray(atoms.cell.array)
    data = {
        "positions": torch.tensor(atoms.positions, dtype=tdt),
        "edge_index": torch.tensor(np.stack([senders, receivers]), dtype=torch.int64),
        "shifts": torch.tensor(offsets @ cell, dtype=tdt),
        "unit_shifts": torch.tensor(offsets, dtype=tdt),
        "cell": torch.tensor(cell, dtype=tdt),
        "node_attrs": torch.nn.functional.one_hot(torch.tensor(index), 2).to(tdt),
        "batch": torch.zeros(len(atoms), dtype=torch.int64),
        "ptr": torch.tensor([0, len(atoms)], dtype=torch.int64),
        "head": torch.zeros(1, dtype=torch.int64),
    }

    def call():
        out = model(dict(data), compute_force=True)
        return out["forces"].detach()

    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    per_call = (time.perf_counter() - start) / repeats
    return {
        "ms": per_call * 1e3,
        "first_s": first,
        "rss_mb": peak_rss_mb(),
        "xla_mb": None,
        "edges": len(senders),
    }


def run_worker(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"rc={proc.returncode}: {tail[:80]}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="192 atoms, 64 channels only")
    parser.add_argument("--sizes", type=int, nargs="*", default=[192, 648, 1536])
    parser.add_argument("--channels", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--dtypes", nargs="*", default=["float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, first, n_atoms, dtype, repeats = args.worker
        if kind == "rsajax":
            out = worker_rsajax(first, int(n_atoms), dtype, int(repeats))
        else:
            out = worker_torch(int(first), int(n_atoms), dtype, int(repeats))
        print(json.dumps(out))
        return
    if args.quick:
        args.sizes, args.channels, args.repeats = [192], [64], 2

    from rsajax.convert.mace_torch import config_from_torch, variables_from_torch
    from rsajax.nn.model import save_model

    header = (
        f"{'channels':>8} {'dtype':>7} {'atoms':>6} {'edges':>7} {'rsajax ms':>10} "
        f"{'torch ms':>10} {'speedup':>8} {'rsajax 1st s':>12} {'rsajax RSS MB':>13} "
        f"{'XLA MB':>8} {'torch RSS MB':>12}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for channels in args.channels:
            for dtype in args.dtypes:
                model_dir = Path(tmp) / f"m{channels}"
                if not model_dir.exists():
                    torch_model = build_torch_model(channels, "float64")
                    config = config_from_torch(torch_model)
                    save_model(model_dir, config, variables_from_torch(torch_model, config))
                for n in args.sizes:
                    rs = run_worker(
                        ["rsajax", str(model_dir), str(n), dtype, str(args.repeats)], args.timeout
                    )
                    th = (
                        {"error": "skipped"}
                        if args.skip_torch
                        else run_worker(
                            ["torch", str(channels), str(n), dtype, str(args.repeats)], args.timeout
                        )
                    )
                    speed = f"{th['ms'] / rs['ms']:.2f}x" if "ms" in rs and "ms" in th else "-"

                    def f(d, key, fmt):
                        return (
                            format(d[key], fmt)
                            if d.get(key) is not None
                            else d.get("error", "-")[:10]
                        )

                    print(
                        f"{channels:>8} {dtype:>7} {n:>6} {rs.get('edges', '-'):>7} "
                        f"{f(rs, 'ms', '.1f'):>10} {f(th, 'ms', '.1f'):>10} {speed:>8} "
                        f"{f(rs, 'first_s', '.1f'):>12} {f(rs, 'rss_mb', '.0f'):>13} "
                        f"{f(rs, 'xla_mb', '.0f'):>8} {f(th, 'rss_mb', '.0f'):>12}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
