"""Melt-quench cost of the silica study's models: atom-steps per second of the BKS teacher,
SR-MACE and RSA-MACE under the study's own MD (``experiments/silica_study/melt_quench``: all
replicas under ``vmap``, float32, 1 fs, the demo's wall), NVT Langevin and Nose-Hoover NPT, on
the study's start glass. RSA-MACE's NPT is timed with the k-set head room the study allocates for
box changes (``RSA_MD_MARGIN``) and with the library's default (0.1): vectors beyond ``k_cut``
carry zero weight, so the head room changes the cost, not the energy. NVT runs, as in the study,
on the fixed-box system (no strain skin, no head room) and, for comparison, on the NPT one.

The models are those a study run trained (``--work``, default ``runs/silica_study/cpu``): the
cost of a model does not depend on how well it is trained, but an untrained one can blow up.
Every row runs ``--steps`` steps after one chunk of warm-up (compilation), side by side in one
process; compare the ratios, not the absolute numbers, on a shared machine.

Usage: python benchmarks/study_md_cost.py [--work runs/silica_study/cpu] [--steps 400]
       [--ensembles NVT NPT] [--no-teacher] [--no-margins]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def systems(work: Path, atoms, with_rsa_margins: bool):
    """``[(label, MDSystem, k-vectors or None, ensembles)]`` for the teacher (the variant that
    made the work folder's data) and the trained models; ``ensembles``: the rows to time."""
    import json

    from experiments.silica_study import melt_quench
    from rsajax.nn.model import load_model

    summary = work / "data" / "data.json"
    teacher = json.loads(summary.read_text()).get("teacher", "bks") if summary.is_file() else "bks"
    system = melt_quench.build_system("teacher", None, atoms, teacher)
    rows = [(f"BKS teacher ({teacher})", system, None, ("NVT", "NPT"))]
    for name in ("sr", "rsa"):
        model_dir = work / "train" / name / "model"
        if not (model_dir / "config.json").is_file():
            print(f"(no trained {name} model in {model_dir}: skipped)")
            continue
        model, variables = load_model(model_dir)
        margins = [melt_quench.RSA_MD_MARGIN]
        if model.config.long_range is not None and with_rsa_margins:
            margins.append(0.1)
        label = "SR-MACE" if model.config.long_range is None else "RSA-MACE"
        system = melt_quench.trained_system(model, variables, atoms, box_may_strain=False)
        rows.append((f"{label}, fixed box", system, _kvectors(model, 0.0, atoms), ("NVT",)))
        for margin in margins:
            system = melt_quench.trained_system(model, variables, atoms, margin=margin)
            named = label if model.config.long_range is None else f"{label}, margin {margin}"
            rows.append((named, system, _kvectors(model, margin, atoms), ("NVT", "NPT")))
    return rows


def _kvectors(model, margin: float, atoms) -> str | None:
    """How many k-vectors the RSA k-set of ``model`` holds in ``atoms``' box at ``margin``."""
    import dataclasses

    from rsajax.md.adapter import long_range_kset
    from rsajax.nn.model import MACE

    config = model.config
    if config.long_range is None:
        return None
    rsa = dataclasses.replace(config.long_range, margin=max(margin, config.long_range.margin))
    kset = long_range_kset(
        MACE(dataclasses.replace(config, long_range=rsa)),
        atoms.numbers,
        atoms.cell.array.T,
        box_may_strain=margin > 0.0,
    )
    if kset.mesh is not None:
        return "mesh"
    mask = np.asarray(kset.mask[0])
    return f"{int(mask.sum())} of {mask.size}"


def time_steps(system, ensemble, R, steps: int, chunk: int, replicas: int) -> float:
    """Seconds per step of ``replicas`` vmapped replicas, after one chunk of warm-up."""
    from rsajax.md.replicas import run_replicas

    T = np.full((replicas, steps + chunk), 300.0)
    P = np.zeros_like(T)
    marks = []
    run_replicas(
        system,
        ensemble,
        R,
        T,
        P,
        seeds=list(range(replicas)),
        log_every=chunk // 10,
        records_per_chunk=10,
        on_chunk=lambda step, *_: marks.append((step, time.perf_counter())),
    )
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    return (t1 - t0) / (s1 - s0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "silica_study" / "cpu")
    parser.add_argument("--steps", type=int, default=400, help="timed steps per row")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100, help="steps per chunk (warm-up: one)")
    parser.add_argument("--no-margins", action="store_true", help="RSA at the study's margin only")
    parser.add_argument("--ensembles", nargs="+", choices=("NVT", "NPT"), default=["NVT", "NPT"])
    parser.add_argument("--no-teacher", action="store_true", help="time the trained models only")
    args = parser.parse_args()

    import ase.io
    import jax

    jax.config.update("jax_enable_x64", False)
    import jax.numpy as jnp

    from rsajax.md.integrators import Ensemble

    start = args.work / "data" / "start.extxyz"
    atoms = ase.io.read(start)
    R = jnp.asarray(np.broadcast_to(atoms.get_scaled_positions(), (args.replicas, len(atoms), 3)))
    ensembles = {
        "NVT": Ensemble("nvt_langevin", 1.0, friction_per_fs=0.02),
        "NPT": Ensemble("npt", 1.0, tau_T_fs=100.0, tau_P_fs=1000.0),
    }
    n = args.replicas * len(atoms)
    print(f"{args.replicas} replicas x {len(atoms)} atoms ({start}), {args.steps} steps per row, "
          f"jax {jax.__version__} on {jax.default_backend()}")  # fmt: skip
    rows = []
    for label, system, kvectors, kinds in systems(args.work, atoms, not args.no_margins):
        if args.no_teacher and label.startswith("BKS"):
            continue
        for kind in (k for k in kinds if k in args.ensembles):
            ensemble = ensembles[kind]
            per_step = time_steps(system, ensemble, R, args.steps, args.chunk, args.replicas)
            rows.append((label, kind, kvectors, per_step))
            print(f"  {label:24s} {kind}: {n / per_step:9.0f} atom-steps/s", flush=True)
    reference = {kind: s for label, kind, _, s in rows if label == "SR-MACE"}
    print()
    print("| model | ensemble | k-vectors | ms/step | atom-steps/s | time / SR-MACE's |")
    print("|---|---|---|---|---|---|")
    for label, kind, kvectors, per_step in rows:
        ratio = per_step / reference[kind] if kind in reference else float("nan")
        print(f"| {label} | {kind} | {kvectors if kvectors is not None else ''} | "
              f"{1e3 * per_step:.1f} | {n / per_step:.0f} | {ratio:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
