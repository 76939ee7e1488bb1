"""Long-range benchmark data: train / valid / test / scan extxyz files with exact references.

Benchmarks (see README.md):

- ``dimers_open``: fixed point-charge molecular dimers (``rsajax.teachers.point_charges``), open
  boundaries, 8 pairs covering +-, ++, --, charged-neutral and neutral-neutral; energy + forces.
- ``dimers_periodic``: the same molecules in a 30 A cubic box, Ewald labels (tin-foil boundary,
  neutralising background for net-charged pairs); no periodic image within 8 A of any atom.
- ``xtb_dimers``: the same geometries labelled by GFN2-xTB (tblite), open boundaries, for the
  four pairs whose charges stay integral at every separation (charged-neutral and like-charged).
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
BENCHMARKS = ("dimers_open", "dimers_periodic", "xtb_dimers", "s22x5")
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
XTB_SIZES = {
    "quick": {"train": 6, "valid": 2, "test": 6, "scan_points": 15},
    "full": {"train": 64, "valid": 12, "test": 40, "scan_points": 57},
}
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


def make_splits(benchmark: str, preset: str, base_seed: int = 0) -> dict[str, list]:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")
    if preset not in SIZES:
        raise ValueError(f"unknown preset {preset!r}; choose quick or full")
    if benchmark == "s22x5":
        return s22_splits()
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


def generate(benchmark: str, out_dir: str | Path, preset: str, base_seed: int = 0) -> dict:
    """Write ``{train,valid,test,scan}.xyz`` and ``summary.json`` to ``out_dir``; return summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
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
        "max_separation": MAX_SEPARATION if benchmark != "s22x5" else None,
        "box": BOX if benchmark == "dimers_periodic" else None,
        "test_budget": long_range_budget(splits["test"], interaction_only=benchmark == "s22x5"),
        "seconds": round(time.perf_counter() - t0, 1),
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
