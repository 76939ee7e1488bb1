"""MD steps per second: rsajax inside jax-md vs ASE Langevin driving mace-torch's calculator.

Both routes run the same random-initialised MACE (mace-torch built first, converted to rsajax
parameters with ``rsajax.convert``; energies are checked to agree), Langevin at 300 K, 1 fs, on a
648-atom silica box, on the CPU, in float32. The rsajax route logs thermo every 50 steps (that
costs one extra energy + stress evaluation per record) and checks the neighbour list per chunk.

Usage: python benchmarks/md_speed.py [--quick] [--atoms 648] [--steps 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np


def torch_model(args):
    from rsajax.convert.mace_torch import import_torch

    torch = import_torch()
    torch.set_default_dtype(torch.float64)  # converted in float64, cast for the ASE route
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    hidden = "+".join(
        f"{args.channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(args.max_L + 1)
    )
    model = modules.ScaleShiftMACE(
        r_max=args.r_max,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=args.max_ell,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2,
        num_elements=2,
        hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.array([-2.0, -4.0]),
        avg_num_neighbors=20.0,
        atomic_numbers=[8, 14],
        correlation=args.correlation,
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=0.1,
        atomic_inter_shift=0.0,
    )
    return model.double().eval()


def rsajax_model(tmodel):
    import jax

    from rsajax.convert.mace_torch import config_from_torch, variables_from_torch
    from rsajax.nn.model import MACE

    config = config_from_torch(tmodel)
    variables = variables_from_torch(tmodel, config)
    config = dataclasses.replace(config, dtype="float32")
    variables = jax.tree_util.tree_map(
        lambda x: (
            np.asarray(x, np.float32) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
        ),
        variables,
    )
    return MACE(config), variables


def time_ase(tmodel, atoms, steps):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from mace.calculators import MACECalculator

    atoms = atoms.copy()
    atoms.calc = MACECalculator(models=tmodel, device="cpu", default_dtype="float32")
    energy = atoms.get_potential_energy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=300, friction=0.01 / units.fs)
    dyn.run(2)  # warm-up
    start = time.perf_counter()
    dyn.run(steps)
    return energy, steps / (time.perf_counter() - start)


def time_rsajax(model, variables, atoms, steps, list_options):
    import jax.numpy as jnp

    from rsajax.md import Ensemble, Simulation, Stage, build_schedule, model_system
    from rsajax.md.simulation import BlowUpLimits

    system = model_system(model, variables, atoms.numbers, atoms.cell.array.T, **list_options)
    R = jnp.asarray(atoms.get_scaled_positions(), jnp.float32)
    energy = float(system.energy_fn(R, system.allocate(R)))
    ensemble = Ensemble("nvt_langevin", dt_fs=1.0, friction_per_fs=0.01)
    log_every, records = 50, max(1, steps // 50)
    warm = build_schedule([Stage("hold", T=300.0, steps=log_every * records)], 1.0, 300.0)
    kwargs = dict(
        log_every=log_every,
        records_per_chunk=records,
        progress=False,
        limits=BlowUpLimits(min_distance=0.05),
    )
    Simulation(system, ensemble, R, warm, **kwargs).run()  # compiles the chunk
    start = time.perf_counter()
    res = Simulation(system, ensemble, R, warm, **kwargs).run()
    return energy, res.steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, smaller model")
    parser.add_argument("--atoms", type=int, default=648)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--max-L", type=int, default=1)
    parser.add_argument("--max-ell", type=int, default=3)
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--r-max", type=float, default=5.0)
    # Neighbour-list padding is per-edge work for the model. NVT keeps the box: no strain skin.
    parser.add_argument("--skin", type=float, default=0.3, help="list skin, A")
    parser.add_argument("--strain-skin", type=float, default=0.0, help="box-change skin, A")
    parser.add_argument("--capacity", type=float, default=1.1, help="list capacity multiplier")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.channels, args.max_L = 50, 16, 0

    from rsajax.data import random_silica_box

    atoms = random_silica_box(args.atoms, seed=0)
    tmodel = torch_model(args)
    model, variables = rsajax_model(tmodel)
    tmodel = tmodel.float()
    list_options = dict(
        skin=args.skin, strain_skin=args.strain_skin, capacity_multiplier=args.capacity
    )
    e_rsajax, rate_rsajax = time_rsajax(model, variables, atoms, args.steps, list_options)
    ase_steps = max(5, args.steps // 10)
    e_ase, rate_ase = time_ase(tmodel, atoms, ase_steps)
    print(
        f"MACE {args.channels}x(L<={args.max_L}), max_ell {args.max_ell}, correlation "
        f"{args.correlation}, r_max {args.r_max}; {args.atoms} atoms; float32; CPU "
        f"({os.cpu_count()} cores); energies: rsajax {e_rsajax:.4f} eV, mace-torch "
        f"{e_ase:.4f} eV; jax-md list: skin {args.skin} A, strain skin {args.strain_skin} A, "
        f"capacity x{args.capacity}"
    )
    print(f"{'route':<34}{'steps':>8}{'steps/s':>10}{'speed-up':>10}")
    print(f"{'ASE Langevin + mace-torch':<34}{ase_steps:>8}{rate_ase:>10.2f}{1.0:>10.1f}")
    print(
        f"{'rsajax in jax-md (Langevin)':<34}{args.steps:>8}{rate_rsajax:>10.2f}"
        f"{rate_rsajax / rate_ase:>10.1f}"
    )


if __name__ == "__main__":
    main()
