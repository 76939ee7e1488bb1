"""How BKS's short-range cut sets the density of its silica: the two teacher variants of
``rsajax.teachers.bks.VARIANTS`` (``bks``: Buckingham and wall cut at 10 A; ``bks-glass``: cut at
5.5 A, as in the glass studies of Vollmayr, Kob and Binder and of Horbach and Kob), compared on

1. crystals relaxed at 0 GPa (alpha-quartz, beta-cristobalite; cell and positions), and
2. the pressure of the same configurations: the unstrained 6000 K liquid and 300 K glass frames of
   a study data set, by density (kinetic part ``N k T / V`` included), and its shift between the
   variants (the same frames under both, so the shift is far more precise than either pressure:
   frames of 72-192 atoms scatter by several GPa).

Coulomb is the same converged Ewald sum in both, so every difference is the -C/r^6 attraction
(and the tiny Born-Mayer tail) between 5.5 and 10 A. The density of each variant's own 0 GPa
melt-quench glass is a result of the study itself (``run.py --stages md analyze --models
teacher``; README, "The teacher").

Usage::

    PYTHONPATH=. python experiments/silica_study/teacher_cut.py \\
        --data runs/silica_study/cpu/data/train.xyz [--frames 4] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase import units

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = Path(__file__).resolve().parent / "results" / "teacher_cut.json"
#: eV/A^3 in GPa
GPA = 1.0 / units.GPa


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a study's train.xyz")
    parser.add_argument("--frames", type=int, default=12, help="frames per (phase, density)")
    parser.add_argument("--variants", nargs="+", default=["bks", "bks-glass"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


class LabelCache:
    """BKS labellers compiled once per (variant, atoms, cell): the NVT frames of a run share one."""

    def __init__(self):
        self._labellers: dict[tuple, object] = {}

    def __call__(self, atoms, teacher: str):
        from rsajax.teachers.generate import Labeller

        key = (teacher, atoms.numbers.tobytes(), np.round(atoms.cell.array, 8).tobytes())
        if key not in self._labellers:
            self._labellers[key] = Labeller(atoms, 0.0, teacher)  # exact cells: no strain margin
        return self._labellers[key](atoms.copy())


def pressure_GPa(labelled, temperature_K: float) -> float:
    """Pressure (GPa) of a labelled frame: virial from the stress, plus ``N k T / V``."""
    virial = -float(np.trace(labelled.get_stress(voigt=False))) / 3.0
    kinetic = len(labelled) * units.kB * temperature_K / labelled.get_volume()
    return (virial + kinetic) * GPA


def frame_groups(path: Path, per_group: int) -> dict[tuple[str, float], list]:
    """``{(phase, density): frames}``: unstrained, unrattled 6000 K ``melt`` (liquid) and 300 K
    ``anneal`` (glass) frames of a study data file, the last ``per_group`` of each run."""
    import ase.io

    groups: dict[tuple[str, float], list] = collections.defaultdict(list)
    for atoms in ase.io.read(path, ":"):
        info = atoms.info
        phase = {"melt": "liquid 6000 K", "anneal": "glass 300 K"}.get(info.get("stage"))
        if phase is None or "run_density_g_cm3" not in info:
            continue
        groups[(phase, float(info["run_density_g_cm3"]))].append(atoms)
    if not groups:
        raise ValueError(f"{path}: no melt or anneal frames with run_density_g_cm3 (a study file?)")
    return {key: frames[-per_group:] for key, frames in sorted(groups.items())}


def relaxed_crystal(name: str, teacher: str, fmax: float = 1e-3) -> dict:
    """``name`` relaxed at 0 GPa (positions and cell) under the BKS variant ``teacher``."""
    from ase.calculators.calculator import Calculator, all_changes
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from rsajax.analysis.frames import density_g_cm3
    from rsajax.teachers.generate import CRYSTALS, Labeller

    atoms = CRYSTALS[name]()
    reference_cell = atoms.cell.array.copy()
    margin = 0.15
    labeller = Labeller(atoms, margin, teacher)  # compiled once, for cells within the margin

    class Teacher(Calculator):
        implemented_properties = ("energy", "forces", "stress")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            strain = np.linalg.solve(reference_cell, self.atoms.cell.array) - np.eye(3)
            if np.abs(strain).max() > margin:
                raise RuntimeError(f"{name}: the cell strained past the labeller's {margin} margin")
            self.results = dict(labeller(self.atoms.copy()).calc.results)

    atoms.calc = Teacher()
    start = density_g_cm3([atoms])
    steps = FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=2000)
    return {
        "density_start_g_cm3": round(start, 4),
        "density_g_cm3": round(density_g_cm3([atoms]), 4),
        "cell_lengths_A": [round(x, 4) for x in atoms.cell.lengths()],
        "energy_per_atom_eV": round(atoms.get_potential_energy() / len(atoms), 6),
        "pressure_GPa": round(-float(np.trace(atoms.get_stress(voigt=False))) / 3 * GPA, 4),
        "converged": bool(steps),
    }


def main(argv: list[str] | None = None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    began = time.time()
    result: dict = {"variants": {}, "crystals": {}, "frames": [], "data": str(args.data)}
    from rsajax.teachers.bks import variant

    for teacher in args.variants:
        result["variants"][teacher] = {"short_range_cut_A": variant(teacher).r_cut}
    for name in ("alpha-quartz", "beta-cristobalite"):
        for teacher in args.variants:
            row = relaxed_crystal(name, teacher)
            result["crystals"].setdefault(name, {})[teacher] = row
            print(f"{name:18s} {teacher:10s} {row['density_g_cm3']:.4f} g/cm3 "
                  f"(P {row['pressure_GPa']:+.4f} GPa)", flush=True)  # fmt: skip
    labels = LabelCache()
    for (phase, density), frames in frame_groups(args.data, args.frames).items():
        temperature = float(frames[0].info["temperature_K"])
        row = {"phase": phase, "density_g_cm3": density, "frames": len(frames)}
        pressures = {}
        for teacher in args.variants:
            pressures[teacher] = p = np.array(
                [pressure_GPa(labels(a, teacher), temperature) for a in frames]
            )
            row[teacher] = {"mean_GPa": round(float(np.mean(p)), 3),
                            "sd_GPa": round(float(np.std(p)), 3)}  # fmt: skip
        # the same frames under both: the shift is far more precise than either pressure
        shift = pressures[args.variants[-1]] - pressures[args.variants[0]]
        row["shift_GPa"] = {
            "mean": round(float(shift.mean()), 3),
            "sd": round(float(shift.std()), 3),
        }
        result["frames"].append(row)
        pressures = "  ".join(f"{t} {row[t]['mean_GPa']:+.2f} GPa" for t in args.variants)
        print(f"{phase:14s} {density:.2f} g/cm3: {pressures}", flush=True)
    result["seconds"] = round(time.time() - began, 1)
    result["command"] = "PYTHONPATH=. python experiments/silica_study/teacher_cut.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(table(result, args.variants))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")
    return 0


def table(result: dict, variants: list[str]) -> str:
    """Markdown: relaxed crystal densities, then the pressure of the data's frames."""
    lines = [
        "| | " + " | ".join(variants) + f" | {variants[-1]} - {variants[0]} |",
        "|---" * (len(variants) + 2) + "|",
    ]
    for name, rows in result["crystals"].items():
        cells = [f"{rows[t]['density_g_cm3']:.3f} g/cm3" for t in variants]
        lines.append(f"| {name}, relaxed at 0 GPa | " + " | ".join(cells) + " | |")
    for row in result["frames"]:
        cells = [f"{row[t]['mean_GPa']:+.2f} +- {row[t]['sd_GPa']:.2f} GPa" for t in variants]
        cells.append(f"{row['shift_GPa']['mean']:+.2f} +- {row['shift_GPa']['sd']:.2f} GPa")
        lines.append(
            f"| {row['phase']} at {row['density_g_cm3']:.1f} g/cm3 ({row['frames']} frames) | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
