"""Long-range benchmark data: train / valid / test / scan extxyz files with exact references.

Benchmarks (see README.md):

- ``dimers_open``: fixed point-charge molecular dimers (``rsajax.teachers.point_charges``), open
  boundaries, 8 pairs covering +-, ++, --, charged-neutral and neutral-neutral; energy + forces.
- ``dimers_periodic``: the same molecules in a 30 A cubic box, Ewald labels (tin-foil boundary,
  neutralising background for net-charged pairs); no periodic image within 8 A of any atom. Its
  training split also holds each molecule alone in the box (``PERIODIC_MONOMERS`` per molecule
  type): a lone ion's energy there includes its own images and background, the reference point of
  every binding curve, which no dimer determines.
- ``xtb_dimers``: the same geometries labelled by GFN2-xTB (tblite), open boundaries, for the
  four pairs whose charges stay integral at every separation (charged-neutral and like-charged).
- ``exfoliation``: black phosphorus (two puckered layers per cell, 16 atoms), exact analytic
  teacher (``rsajax.teachers.layered``: intralayer springs, Born-Mayer and damped C6/r^6 between
  layers). Train / valid / test: random interlayer gaps (log-uniform) between 0.5 A below the
  crystal's and 12 A, in-plane strain +-1%, layer slides +-0.3 A, 0.03 A distortions; scan:
  ideal layers from 0.5 A compressed to 16 A apart (the exfoliation curve; test only), its
  interaction energy measured from its 16 A point (``info["interaction_reference_gap"]``).
- ``water``: 64 SPC/Fw water molecules in a periodic cube at 0.997 g/cm3, exact Ewald teacher
  (``rsajax.teachers.water``), frames of one 300 K Langevin trajectory (train, valid and test
  are consecutive windows separated by decorrelation gaps), plus the reference's molecular
  dipole sample (``dipoles_reference.npy``) from the MD protocol the models are run with
  (``dipole_start.xyz``, see ``water_dipole_sample``). No scan.
- ``s22x5``: ASE's S22x5 CCSD(T) interaction energies (energies only). Train: factors 0.9, 1.0
  and 1.5 plus every isolated monomer labelled 0; valid: factor 1.2; test: factor 2.0, the far
  end of each curve (13 of its 22 dimers have no intermolecular pair inside 5 A). Same in both
  presets (the set is fixed and tiny).

Dimer splits are drawn from independent random streams (seeded per benchmark, pair and split), so
no test configuration is ever a training or validation one; separations are uniform between
contact and 16 A (the centre-of-mass distance), orientations uniform, distortions 0.05 A.
``scan.xyz`` holds one fixed orientation per pair scanned in separation (binding curves; never
used in training or model selection).

Usage:
    python experiments/long_range/generate.py dimers_open --out runs/long_range/data --preset quick
    python experiments/long_range/generate.py all --out runs/long_range/data --preset full
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from ase.io import write

from rsajax.teachers import point_charges as pc

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("dimers_open", "dimers_periodic", "xtb_dimers", "s22x5", "exfoliation", "water")
#: The cutoff that splits inside / beyond (the benchmark models' r_max, A).
R_MAX = 5.0
MAX_SEPARATION = 16.0
DISTORTION = 0.05
BOX = 30.0

DIMER_PAIRS = tuple(pc.PAIRS)  # all eight
XTB_PAIRS = ("ammonium_water", "formate_water", "ammonium_ammonium", "formate_formate")

#: Configurations per pair and split.
SIZES = {
    "quick": {"train": 4, "valid": 2, "test": 4, "scan_points": 15},
    "full": {"train": 40, "valid": 8, "test": 24, "scan_points": 57},
}
#: Lone molecules per molecule type added to dimers_periodic's training split (see above).
PERIODIC_MONOMERS = {"quick": 2, "full": 16}
XTB_SIZES = {
    "quick": {"train": 6, "valid": 2, "test": 6, "scan_points": 15},
    "full": {"train": 64, "valid": 12, "test": 40, "scan_points": 57},
}
EXFOLIATION_SIZES = {
    "quick": {"train": 24, "valid": 6, "test": 12, "scan_points": 30},
    "full": {"train": 240, "valid": 30, "test": 60, "scan_points": 60},
}
#: Largest gap of the random configurations and of the scan (A).
EXFOLIATION_MAX_GAP, SCAN_MAX_GAP = 12.0, 16.0
#: Water MD (steps of 1 fs): equilibration, frames per split and their stride, the gap between
#: splits; the dipole sample: equilibration, frames, stride (the same protocol for every model).
WATER_SIZES = {
    "quick": {
        "equilibration": 1000,
        "train": 24,
        "valid": 6,
        "test": 12,
        "stride": 20,
        "gap": 200,
        "dipole_equilibration": 200,
        "dipole_frames": 100,
        "dipole_stride": 10,
    },
    "full": {
        "equilibration": 2000,
        "train": 160,
        "valid": 20,
        "test": 40,
        "stride": 40,
        "gap": 400,
        "dipole_equilibration": 500,
        "dipole_frames": 400,
        "dipole_stride": 10,
    },
}
WATER_N_SIDE, WATER_TEMPERATURE, WATER_RELAX_STEPS = 4, 300.0, 200
SPLIT_INDEX = {"train": 1, "valid": 2, "test": 3, "scan": 4}
S22_CURVES = (
    "Water_dimer",
    "Formic_acid_dimer",
    "Benzene_dimer_parallel_displaced",
    "Methane_dimer",
)


def _seed(base: int, pair_index: int, split: str) -> int:
    return 100_000 * base + 100 * pair_index + SPLIT_INDEX[split]


def dimer_splits(benchmark: str, preset: str, base_seed: int = 0) -> dict[str, list]:
    """``{"train", "valid", "test", "scan"}`` lists of labelled Atoms of a dimer benchmark."""
    if benchmark == "xtb_dimers":
        from rsajax.teachers import xtb

        xtb.require_tblite()
        pairs, sizes = XTB_PAIRS, XTB_SIZES[preset]

        def label(atoms):
            return xtb.xtb_label(atoms)

        box = None
    else:
        pairs, sizes = DIMER_PAIRS, SIZES[preset]
        box = BOX if benchmark == "dimers_periodic" else None

        def label(atoms):
            return atoms

    out: dict[str, list] = {s: [] for s in SPLIT_INDEX}
    scan = np.linspace(2.0, MAX_SEPARATION, sizes["scan_points"])
    for i, pair in enumerate(pairs):
        for split in ("train", "valid", "test"):
            atoms = pc.dimer_samples(
                pair,
                sizes[split],
                _seed(base_seed, i, split),
                MAX_SEPARATION,
                DISTORTION,
                periodic_box=box,
            )
            out[split] += label(atoms)
        curve = pc.dimer_curves(
            pair, scan, 1, _seed(base_seed, i, "scan"), DISTORTION, periodic_box=box
        )
        out["scan"] += label(curve)
    if benchmark == "dimers_periodic":
        molecules = sorted({m for pair in pairs for m in pc.PAIRS[pair]})
        for j, molecule in enumerate(molecules):
            out["train"] += pc.monomer_samples(
                molecule,
                PERIODIC_MONOMERS[preset],
                _seed(base_seed, 50 + j, "train"),
                DISTORTION,
                periodic_box=box,
            )
    for split, atoms in out.items():
        for a in atoms:
            a.info["split"] = split
            a.info["curve"] = a.info["pair"]
    return out


def s22_splits() -> dict[str, list]:
    """S22x5 split by separation factor (see the module docstring); scan: 4 full curves."""
    from rsajax.teachers import s22

    out = {
        "train": s22.s22x5(factors=("0.9", "1.0", "1.5")) + s22.s22x5_monomers(),
        "valid": s22.s22x5(factors=("1.2",)),
        "test": s22.s22x5(factors=("2.0",)),
        "scan": s22.s22x5(list(S22_CURVES)),
    }
    role = {0.9: "train", 1.0: "train", 1.5: "train", 1.2: "valid", 2.0: "test"}
    for split, atoms in out.items():
        for a in atoms:
            a.info["split"] = split
            if split == "scan":
                a.info["curve"] = a.info["system"]
                a.info["role"] = role[a.info["factor"]]
    return out


def exfoliation_splits(preset: str, base_seed: int = 0) -> dict[str, list]:
    """Random distorted configurations (train / valid / test, independent seeds) and the ideal
    exfoliation scan (denser near the minimum)."""
    from rsajax.teachers import layered

    sizes = EXFOLIATION_SIZES[preset]
    gap_range = (layered.GAP0 - 0.5, EXFOLIATION_MAX_GAP)
    out: dict[str, list] = {}
    for split in ("train", "valid", "test"):
        out[split] = layered.random_samples(sizes[split], _seed(base_seed, 0, split), gap_range)
    n = sizes["scan_points"]
    near = np.linspace(layered.GAP0 - 0.5, layered.GAP0 + 1.5, n // 2, endpoint=False)
    far = np.geomspace(layered.GAP0 + 1.5, SCAN_MAX_GAP, n - n // 2)
    out["scan"] = layered.exfoliation_scan(np.concatenate([near, far]))
    # The scan's curve is measured from its own 16 A point ("fully separated"), where a model is
    # evaluated in a cell of the height it was trained near; the teacher's E(layers 40 A further
    # apart) would need a 90-116 A cell, outside every model's training cells.
    e_far = out["scan"][-1].info["interaction_energy"]
    for a in out["scan"]:
        a.info["interaction_energy"] -= e_far
        a.info["interaction_reference_gap"] = SCAN_MAX_GAP
    for split, atoms in out.items():
        for a in atoms:
            a.info["split"] = split
            a.info["curve"] = "black_phosphorus"
    return out


def water_dipole_sample(system, start, preset: str, seed: int) -> np.ndarray:
    """Molecular dipole magnitudes (debye; frames x molecules, flattened) from NVT MD of
    ``system`` (the reference or a model, :mod:`rsajax.md`) started at ``start``, with the
    preset's protocol; deuterium masses (a configurational sample does not depend on them)."""
    from rsajax.teachers import water

    sizes = WATER_SIZES[preset]
    frames = water.sample_frames(
        system,
        start,
        temperature_K=WATER_TEMPERATURE,
        equilibration_steps=sizes["dipole_equilibration"],
        frames=sizes["dipole_frames"],
        stride=sizes["dipole_stride"],
        seed=seed,
    )
    return np.concatenate([np.linalg.norm(water.molecular_dipoles(a), axis=1) for a in frames])


def water_splits(preset: str, base_seed: int = 0) -> tuple[dict[str, list], dict]:
    """Frames of one reference trajectory (train, valid, test windows) and the reference dipole
    sample: ``(splits, {"dipole_start": Atoms, "dipoles_reference": (K,) debye})``."""
    from rsajax.md import relax
    from rsajax.teachers import water

    sizes = WATER_SIZES[preset]
    box = water.water_box(WATER_N_SIDE, seed=base_seed)
    system = water.md_system(box)
    relaxed = relax(system, box.get_scaled_positions(), steps=WATER_RELAX_STEPS)
    box.set_scaled_positions(np.asarray(relaxed))
    out: dict[str, list] = {}
    current = box
    for k, split in enumerate(("train", "valid", "test")):
        frames = water.sample_frames(
            system,
            current,
            temperature_K=WATER_TEMPERATURE,
            equilibration_steps=sizes["equilibration"] if k == 0 else sizes["gap"],
            frames=sizes[split],
            stride=sizes["stride"],
            seed=_seed(base_seed, 0, split),
        )
        out[split] = [water.label(a, split=split, step=int(a.info["step"])) for a in frames]
        current = frames[-1]
    out["scan"] = []
    start = out["test"][0]
    dipoles = water_dipole_sample(system, start, preset, _seed(base_seed, 0, "scan"))
    return out, {"dipole_start": start, "dipoles_reference": dipoles}


def make_splits(benchmark: str, preset: str, base_seed: int = 0) -> dict[str, list]:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")
    if preset not in SIZES:
        raise ValueError(f"unknown preset {preset!r}; choose quick or full")
    if benchmark == "s22x5":
        return s22_splits()
    if benchmark == "exfoliation":
        return exfoliation_splits(preset, base_seed)
    if benchmark == "water":
        return water_splits(preset, base_seed)[0]
    return dimer_splits(benchmark, preset, base_seed)


def _molecule_design(atoms: list) -> np.ndarray:
    """(S, T) counts of each molecule type per structure (what a local model can tell apart)."""
    names = sorted({m for a in atoms for m in _molecules(a)})
    x = np.zeros((len(atoms), len(names)))
    for s, a in enumerate(atoms):
        for m in _molecules(a):
            x[s, names.index(m)] += 1
    return x


def _molecules(atoms) -> list[str]:
    if "molecules" in atoms.info:
        return str(atoms.info["molecules"]).split(",")
    system = str(atoms.info.get("system", "?"))
    return [f"{system}:A", f"{system}:B"]


def _residual(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return y - x @ coef


def long_range_budget(test: list, r_max: float = R_MAX, interaction_only: bool = False) -> dict:
    """How much of the test set's energy a model with cutoff ``r_max`` cannot see.

    Beyond the cutoff (closest intermolecular pair >= r_max) a short-range model sees the two
    molecules separately. ``sr_floor_beyond_rmse``: RMS (meV) of the interaction energy left after
    the best constant per molecule type (additive over the two molecules), an estimate of the
    lowest beyond-cutoff energy RMSE a short-range model can reach; for interaction-energy labels
    (S22x5) a short-range model predicts exactly 0 beyond the cutoff, so it is the RMS of the
    labels. ``beyond_intermolecular_variance_fraction``: the share of the beyond-cutoff energy
    variance (after the same per-molecule-type constants) that is intermolecular,
    ``var(inter) / (var(inter) + var(rest))``, ``rest`` being the monomers' own energies (drawn
    independently of the orientation and separation, so the two variances add).
    """
    rmin = np.array([a.info["min_intermolecular_distance"] for a in test])
    beyond = [a for a, r in zip(test, rmin, strict=True) if r >= r_max]
    out = {
        "r_max": r_max,
        "n_test": len(test),
        "n_inside": int(np.sum(rmin < r_max)),
        "n_beyond": len(beyond),
    }
    if not beyond:
        return out
    e_int = np.array([a.info["interaction_energy"] for a in beyond])
    if interaction_only:
        floor = float(np.sqrt(np.mean(e_int**2)))
        out.update(sr_floor_beyond_rmse=1000 * floor, beyond_intermolecular_variance_fraction=1.0)
        return out
    e_tot = np.array([a.get_potential_energy() for a in beyond])
    x = _molecule_design(beyond)
    r_int, r_tot = _residual(e_int, x), _residual(e_tot, x)
    out.update(
        sr_floor_beyond_rmse=1000 * float(np.sqrt(np.mean(r_int**2))),
        beyond_interaction_rms=1000 * float(np.sqrt(np.mean(e_int**2))),
        beyond_energy_std=1000 * float(np.std(e_tot)),
        beyond_intermolecular_variance_fraction=float(
            np.var(r_int) / (np.var(r_int) + np.var(r_tot - r_int))
        ),
    )
    return out


def exfoliation_reference(scan: list) -> dict:
    """The reference curve's minimum (gap, exfoliation energy in meV/atom, from the scan's 16 A
    point) and its part beyond ``R_MAX`` (RMS of the interaction energy per atom there, meV/atom:
    what a short-range model, which predicts 0 for separate layers, misses)."""
    e = np.array([1000 * a.info["interaction_energy"] / len(a) for a in scan])
    rmin = np.array([a.info["min_intermolecular_distance"] for a in scan])
    k = int(np.argmin(e))
    beyond = rmin >= R_MAX
    return {
        "gap_at_minimum": float(scan[k].info["gap"]),
        "exfoliation_energy_mev_per_atom": float(-e[k]),
        "scan_beyond_points": int(beyond.sum()),
        "scan_beyond_rms_mev_per_atom": float(np.sqrt(np.mean(e[beyond] ** 2))),
        "interaction_at_first_beyond_mev_per_atom": float(e[beyond][np.argmin(rmin[beyond])]),
    }


def generate(benchmark: str, out_dir: str | Path, preset: str, base_seed: int = 0) -> dict:
    """Write ``{train,valid,test,scan}.xyz`` and ``summary.json`` to ``out_dir``; return summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    extra: dict = {}
    if benchmark == "water":
        splits, extra = water_splits(preset, base_seed)
        write(out_dir / "dipole_start.xyz", extra["dipole_start"], format="extxyz")
        np.save(out_dir / "dipoles_reference.npy", extra["dipoles_reference"])
    else:
        splits = make_splits(benchmark, preset, base_seed)
    counts = {}
    for split, atoms in splits.items():
        write(out_dir / f"{split}.xyz", atoms, format="extxyz")
        counts[split] = len(atoms)
    summary = {
        "benchmark": benchmark,
        "preset": preset,
        "base_seed": base_seed,
        "counts": counts,
        "labels": "interaction energy (eV), no forces"
        if benchmark == "s22x5"
        else "energy, forces",
        "max_separation": MAX_SEPARATION if benchmark.startswith(("dimers", "xtb")) else None,
        "box": BOX if benchmark == "dimers_periodic" else None,
        "test_budget": long_range_budget(splits["test"], interaction_only=benchmark == "s22x5"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if benchmark == "exfoliation":
        summary["exfoliation"] = exfoliation_reference(splits["scan"])
    if benchmark == "water":
        d = extra["dipoles_reference"]
        summary["dipoles_reference"] = {
            "mean_debye": float(d.mean()),
            "std_debye": float(d.std()),
            "samples": len(d),
        }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=(*BENCHMARKS, "all"))
    parser.add_argument("--out", required=True, help="writes OUT/BENCHMARK/*.xyz")
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--seed", type=int, default=0, help="data seed (not the model seed)")
    args = parser.parse_args(argv)
    names = BENCHMARKS if args.benchmark == "all" else (args.benchmark,)
    for name in names:
        print(f"[generate] {name} ({args.preset}) ...", flush=True)
        summary = generate(name, Path(args.out) / name, args.preset, args.seed)
        summary["command"] = shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
        print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
