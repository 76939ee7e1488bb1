"""Reference labels (energy, forces, stress, dipole) on ASE structures, in ASE's conventions.

rsajax keeps labels where ASE users expect them: in a ``SinglePointCalculator`` attached to the
``Atoms``. Energy in eV, forces in eV/A, stress in eV/A^3 with ASE's sign
(``stress = (1/V) dE/d(strain)``: a compressed solid has negative diagonal stress), dipole in
e*A.
Files may name labels differently (``REF_energy``) or give a virial instead of a stress
(extxyz convention: ``virial = -stress * V``); :func:`standardize_labels` maps them.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

LABELS = ("energy", "forces", "stress", "dipole")


def as_3x3(value: np.ndarray, what: str) -> np.ndarray:
    """A stress-like tensor given as Voigt-6 (xx, yy, zz, yz, xz, xy), 9 values or 3x3 -> (3, 3)."""
    value = np.asarray(value, dtype=np.float64)
    if value.shape == (6,):
        return voigt_6_to_full_3x3_stress(value)
    if value.size == 9:
        return value.reshape(3, 3)
    raise ValueError(f"{what} has shape {value.shape}; expected 6 (Voigt), 9 or (3, 3) values")


def get_labels(atoms: Atoms) -> dict[str, np.ndarray | None]:
    """The standard labels attached to ``atoms`` (None where absent); stress as (3, 3).

    Only stored results are read: a live calculator is never asked to compute.
    """
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    labels: dict[str, np.ndarray | None] = {name: None for name in LABELS}
    if "energy" in results:
        labels["energy"] = np.asarray(results["energy"], dtype=np.float64)
    if "forces" in results:
        labels["forces"] = np.asarray(results["forces"], dtype=np.float64)
    if "stress" in results:
        labels["stress"] = as_3x3(results["stress"], "stress")
    if "dipole" in results:
        labels["dipole"] = np.asarray(results["dipole"], dtype=np.float64)
    return labels


def attach_labels(
    atoms: Atoms,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    stress: np.ndarray | None = None,
    dipole: np.ndarray | None = None,
) -> Atoms:
    """Attach labels as a SinglePointCalculator (stress given as (3, 3) or Voigt-6)."""
    results = {}
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64)
    if stress is not None:
        results["stress"] = full_3x3_to_voigt_6_stress(as_3x3(stress, "stress"))
    if dipole is not None:
        results["dipole"] = np.asarray(dipole, dtype=np.float64)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _lookup(atoms: Atoms, key: str | None):
    if key is None:
        return None
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    for store in (results, atoms.info, atoms.arrays):
        if key in store:
            return store[key]
    return None


def standardize_labels(
    atoms: Atoms,
    energy_key: str | None = "energy",
    forces_key: str | None = "forces",
    stress_key: str | None = "stress",
    virial_key: str | None = "virial",
    dipole_key: str | None = "dipole",
) -> Atoms:
    """Move labels stored under the given keys into a standard SinglePointCalculator.

    Looks in the calculator's results, then ``atoms.info``, then ``atoms.arrays``. A virial
    (``-dE/d(strain)``, eV) is converted to stress by ``stress = -virial / V`` when no stress is
    given. Keys set to None are ignored.
    """
    energy = _lookup(atoms, energy_key)
    forces = _lookup(atoms, forces_key)
    stress = _lookup(atoms, stress_key)
    if stress is None:
        virial = _lookup(atoms, virial_key)
        if virial is not None:
            volume = abs(atoms.get_volume()) if atoms.pbc.any() else 0.0
            if volume > 0:
                stress = -as_3x3(virial, "virial") / volume
    dipole = _lookup(atoms, dipole_key)
    return attach_labels(atoms, energy=energy, forces=forces, stress=stress, dipole=dipole)
