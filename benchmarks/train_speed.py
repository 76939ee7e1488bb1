"""Training throughput: rsajax's sharded train step vs mace-torch's own training step.

Both frameworks train the *same* model (a mace-torch ScaleShiftMACE converted to rsajax with
``rsajax.convert``) on the *same* batch of periodic SiO2 boxes labelled by a Lennard-Jones
calculator, with Adam, gradient clipping and an energy + forces loss. mace-torch's step is its
own model forward with ``training=True`` and forces, ``WeightedEnergyForcesLoss``, backward,
clipping and ``optimizer.step()``. Prints the median step time and structures per second side by
side (medians because a shared CPU is noisy).

Usage: python benchmarks/train_speed.py [--quick] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def make_structures(count: int, atoms: int, seed: int) -> list:
    """Random SiO2 boxes with Lennard-Jones energies and forces (labels only need to exist)."""
    from ase.calculators.lj import LennardJones

    from rsajax.data import attach_labels, random_silica_box

    out = []
    for i in range(count):
        box = random_silica_box(atoms, seed=seed + i)
        box.calc = LennardJones(sigma=2.0, epsilon=0.01, rc=5.0, smooth=True)
        energy, forces = box.get_potential_energy(), box.get_forces()
        attach_labels(box, energy=energy, forces=forces)
        box.info["REF_energy"] = energy
        box.arrays["REF_forces"] = forces
        out.append(box)
    return out


def torch_model(args, dtype: str):
    """A default-initialised mace-torch ScaleShiftMACE for Si and O."""
    from rsajax.convert.mace_torch import import_torch

    torch = import_torch()
    torch.set_default_dtype(getattr(torch, dtype))
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=args.r_max,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=args.max_ell,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=2,
        num_elements=2,
        hidden_irreps=o3.Irreps(args.hidden),
        MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.array([-1.0, -2.0]),
        avg_num_neighbors=20.0,
        atomic_numbers=[8, 14],
        correlation=args.correlation,
        radial_MLP=[32, 32],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )
    return model.to(getattr(torch, dtype))


def time_torch(model, structures, args, dtype: str) -> float:
    """Median seconds per mace-torch training step on one batch of all structures."""
    import torch
    from mace import data, modules, tools
    from mace.tools import torch_geometric

    keys = data.KeySpecification(
        info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"}
    )
    table = tools.AtomicNumberTable([8, 14])
    batch_data = [
        data.AtomicData.from_config(
            data.config_from_atoms(a, keys), z_table=table, cutoff=args.r_max
        )
        for a in structures
    ]
    loader = torch_geometric.dataloader.DataLoader(batch_data, batch_size=len(structures))
    batch = next(iter(loader))
    batch_dict = batch.to_dict()
    loss_fn = modules.WeightedEnergyForcesLoss(energy_weight=1.0, forces_weight=100.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=False)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        out = model(batch_dict, training=True, compute_force=True)
        loss = loss_fn(pred=out, ref=batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_rsajax(model_torch, structures, args, dtype: str) -> tuple[float, float]:
    """(compile s, median s per step) of rsajax's train step on the same model and batch."""
    import dataclasses

    from rsajax.convert.mace_torch import config_from_torch, variables_from_torch
    from rsajax.data import atoms_to_record

    config = dataclasses.replace(config_from_torch(model_torch), dtype=dtype)
    variables = variables_from_torch(model_torch, config)
    records = [atoms_to_record(a, args.r_max) for a in structures]
    return train_step_seconds(config, variables, records, args.warmup, args.steps)


def train_step_seconds(
    config, variables: dict, records: list, warmup: int, steps: int, kset_fn=None
) -> tuple[float, float]:
    """(seconds of the first step, compile included; median seconds of the next ``steps`` after
    ``warmup - 1`` more) of rsajax's sharded train step (Adam, clipping, energy + 100 x forces
    MSE) on one device, all ``records`` in one batch. ``kset_fn``: a long-range model's k-sets."""
    import jax

    from rsajax.nn.model import MACE
    from rsajax.potential import energy_fn_from_model
    from rsajax.train import sharding
    from rsajax.train.batches import GlobalBatches
    from rsajax.train.config import load_config
    from rsajax.train.optim import make_optimizer
    from rsajax.train.step import init_state, make_train_step

    np_dtype = np.dtype(config.dtype)
    variables = jax.tree_util.tree_map(lambda x: np.asarray(x, np_dtype), variables)
    energy_fn = energy_fn_from_model(MACE(config))
    cfg = load_config({"optimizer": {"lr": 1e-3, "clip_norm": 10.0, "ema_decay": 0.0}})
    optimizer = make_optimizer(cfg.optimizer, cfg.schedule, 1, 1)
    mesh = sharding.make_mesh(1)
    rep, dat = sharding.replicated(mesh), sharding.data_sharding(mesh)
    step = sharding.shard_step(
        make_train_step(
            energy_fn, optimizer, {"energy": 1.0, "forces": 100.0}, "mse", 0.01, 0.0, False, {}
        ),
        mesh,
        2,
    )
    batches = GlobalBatches(
        records, len(records), 1, num_buckets=1, dtype=np_dtype, kset_fn=kset_fn
    )
    batch, active = batches.batch(0, 0)
    batch, active = sharding.put_global(batch, dat), sharding.put_global(active, dat)
    constants = sharding.put_global({k: v for k, v in variables.items() if k != "params"}, rep)
    state = sharding.put_global(
        jax.device_get(init_state(variables["params"], optimizer, 0, False)), rep
    )
    start = time.perf_counter()
    state, metrics = step(state, constants, batch, active)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    for _ in range(warmup - 1):
        state, metrics = step(state, constants, batch, active)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, constants, batch, active)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - start)
    return compile_s, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batch, few steps")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--structures", type=int, default=8, help="structures per batch")
    parser.add_argument("--atoms", type=int, default=24, help="atoms per structure")
    parser.add_argument("--hidden", default="16x0e+16x1o")
    parser.add_argument("--max-ell", type=int, default=2)
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--r-max", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    args = parser.parse_args()
    if args.quick:
        args.structures, args.atoms, args.steps, args.warmup = 4, 12, 5, 2
        args.hidden, args.max_ell, args.correlation = "8x0e+8x1o", 1, 2
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import torch

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    structures = make_structures(args.structures, args.atoms, seed=0)
    model = torch_model(args, args.dtype)
    t_torch = time_torch(model, structures, args, args.dtype)
    compile_s, t_jax = time_rsajax(torch_model(args, args.dtype), structures, args, args.dtype)
    print(
        f"# train step, {args.structures} SiO2 boxes x {args.atoms} atoms per batch, "
        f"hidden {args.hidden}, max_ell {args.max_ell}, correlation {args.correlation}, "
        f"r_max {args.r_max}, {args.dtype}; CPU threads: torch {torch.get_num_threads()}, "
        f"os {os.cpu_count()}; jax {jax.__version__}, {jax.devices()[0].platform}"
    )
    print(f"{'framework':<12} {'median s/step':>13} {'structures/s':>14} {'compile s':>10}")
    print(f"{'mace-torch':<12} {t_torch:>13.4f} {args.structures / t_torch:>14.1f} {'-':>10}")
    print(f"{'rsajax':<12} {t_jax:>13.4f} {args.structures / t_jax:>14.1f} {compile_s:>10.1f}")


if __name__ == "__main__":
    main()
