"""Must-show checks of rsajax-in-jax-md, with numbers written to results.json.

1. NVE energy drift of a random-initialised short-range MACE (192-atom silica, float64), or of
   RSA-MACE with ``--long-range``.
2. Langevin NVT: reaches and holds a target temperature (same model).
3. Nose-Hoover NPT on the BKS teacher: holds the target pressure (96 atoms, 3000 K, 0 GPa).

Usage: python experiments/md_validation/run.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from rsajax.data import random_silica_box  # noqa: E402
from rsajax.md import Ensemble, Simulation, Stage, build_schedule, model_system, relax  # noqa: E402
from rsajax.md.simulation import BlowUpLimits  # noqa: E402
from rsajax.md.teacher import bks_system  # noqa: E402
from rsajax.nn.model import MACEConfig, init_model  # noqa: E402

HERE = Path(__file__).parent
DT_FS = (0.5, 1.0)
PRESSURES_GPA = (0.0, 5.0)


def sr_model(long_range=None):
    """The random-initialised test model; ``long_range`` (an RSAConfig) makes it RSA-MACE."""
    config = MACEConfig(
        r_max=5.0,
        num_bessel=8,
        max_ell=2,
        num_channels=16,
        max_L=1,
        correlation=2,
        radial_MLP=(32, 32),
        atomic_numbers=(8, 14),
        atomic_energies=(0.0, 0.0),
        avg_num_neighbors=20.0,
        MLP_irreps="16x0e",
        long_range=long_range,
    )
    return config, *init_model(config, seed=0)


def drift_per_atom_ps(rows, n_atoms):
    t = np.array([r["time_ps"] for r in rows])
    e = np.array([r["E_tot_eV"] for r in rows])
    slope = np.polyfit(t, e, 1)[0]
    return slope / n_atoms, float(np.ptp(e) / n_atoms)


def nve_and_nvt(steps: int, dts: tuple[float, ...] = DT_FS, long_range=None) -> dict:
    config, model, variables = sr_model(long_range)
    atoms = random_silica_box(192, seed=0)
    system = model_system(model, variables, atoms.numbers, atoms.cell.array.T)
    R = jnp.asarray(atoms.get_scaled_positions())
    out = {"model": config.to_dict(), "n_atoms": len(atoms)}
    loose = BlowUpLimits(min_distance=0.05)  # a random model has no short-range repulsion
    for dt in dts:
        schedule = build_schedule([Stage("hold", T=300.0, steps=steps)], dt, 300.0)
        t0 = time.perf_counter()
        res = Simulation(
            system,
            Ensemble("nve", dt_fs=dt),
            R,
            schedule,
            records_per_chunk=20,
            limits=loose,
            progress=False,
        ).run()
        drift, spread = drift_per_atom_ps(res.rows, len(atoms))
        out[f"nve_dt{dt}"] = {
            "steps": steps,
            "drift_eV_per_atom_per_ps": drift,
            "max_minus_min_eV_per_atom": spread,
            "wall_s": time.perf_counter() - t0,
        }
        print(
            f"NVE dt={dt} fs, {steps} steps: drift {drift:.2e} eV/atom/ps, "
            f"spread {spread:.2e} eV/atom"
        )
    schedule = build_schedule([Stage("hold", T=1000.0, steps=steps)], 1.0, 300.0)
    ens = Ensemble("nvt_langevin", dt_fs=1.0, friction_per_fs=0.02)
    res = Simulation(
        system, ens, R, schedule, records_per_chunk=20, limits=loose, progress=False
    ).run()
    T = np.array([r["T_K"] for r in res.rows])
    half = len(T) // 2
    out["nvt_langevin"] = {
        "target_K": 1000.0,
        "start_K": float(T[0]),
        "mean_T_second_half_K": float(T[half:].mean()),
        "std_T_second_half_K": float(T[half:].std()),
    }
    print(
        f"Langevin NVT to 1000 K: first record {T[0]:.0f} K, second half "
        f"{T[half:].mean():.0f} +- {T[half:].std():.0f} K"
    )
    return out


def npt_bks(steps: int, pressures: tuple[float, ...] = PRESSURES_GPA) -> dict:
    atoms = random_silica_box(96, seed=0)
    system = bks_system(atoms.numbers, atoms.cell.array.T, strain_margin=0.1)
    R = relax(system, jnp.asarray(atoms.get_scaled_positions()), 300)
    out = {}
    for target in pressures:
        schedule = build_schedule(
            [Stage("hold", T=3000.0, steps=steps, pressure_GPa=target)], 1.0, 3000.0
        )
        ens = Ensemble("npt", dt_fs=1.0, tau_T_fs=100.0, tau_P_fs=500.0)
        sim = Simulation(system, ens, R, schedule, records_per_chunk=20, progress=False)
        res = sim.run()
        rows = res.rows[len(res.rows) // 4 :]
        P = np.array([r["P_GPa"] for r in rows])
        rho = np.array([r["density_g_cm3"] for r in rows])
        T = np.array([r["T_K"] for r in rows])
        # standard error from block averages (10 blocks)
        blocks = np.array([b.mean() for b in np.array_split(P, 10)])
        out[f"P{target}"] = {
            "target_GPa": target,
            "mean_P_GPa": float(P.mean()),
            "stderr_GPa": float(blocks.std(ddof=1) / np.sqrt(10)),
            "mean_density_g_cm3": float(rho.mean()),
            "mean_T_K": float(T.mean()),
            "steps": steps,
            "reallocations": res.reallocations,
            "rebuilds": sim.rebuilds,
        }
        print(
            f"BKS NPT 3000 K, target {target} GPa: P = {P.mean():.2f} +- "
            f"{out[f'P{target}']['stderr_GPa']:.2f} GPa, density {rho.mean():.3f} g/cm3, "
            f"T = {T.mean():.0f} K"
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (plumbing check)")
    parser.add_argument("--model-steps", type=int, default=2000)
    parser.add_argument("--bks-steps", type=int, default=4000)
    parser.add_argument("--only", choices=("model", "bks"), help="run one part")
    parser.add_argument(
        "--long-range", action="store_true", help="the model part with RSA-MACE (default preset)"
    )
    parser.add_argument("--dt-fs", type=float, nargs="+", default=DT_FS, help="NVE time steps")
    parser.add_argument(
        "--pressures",
        type=float,
        nargs="+",
        default=PRESSURES_GPA,
        help="BKS NPT target pressures (GPa)",
    )
    args = parser.parse_args()
    if args.quick:
        args.model_steps, args.bks_steps = 400, 800
    results = {"device": jax.devices()[0].platform}
    if args.only != "bks":
        key, long_range = "sr_model", None
        if args.long_range:
            from rsajax.nn.rsa import RSAConfig

            key, long_range = "lr_model", RSAConfig.preset("default")
        results[key] = nve_and_nvt(args.model_steps, tuple(args.dt_fs), long_range)
    if args.only != "model":
        results["bks_npt"] = npt_bks(args.bks_steps, tuple(args.pressures))
    name = "results" + ("_quick" if args.quick else "") + (f"_{args.only}" if args.only else "")
    name += "_rsa" if args.long_range else ""
    path = HERE / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
