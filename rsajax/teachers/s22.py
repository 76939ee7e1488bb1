"""S22x5: 22 non-covalent dimers at five separations with CCSD(T)/CBS interaction energies.

The geometries and energies ship with ASE (``ase.data.s22``; Jurecka et al., PCCP 8, 1985 (2006);
Grafova et al., JCTC 6, 2365 (2010)). Each of the 22 dimers is given at 0.9, 1.0, 1.2, 1.5 and 2.0
times its equilibrium intermolecular distance, with the monomers rigid (their geometry is the same
at every factor). Labels are interaction energies only (no forces, no total energies).

Range: the closest intermolecular pair is 1.5-3.0 A at factor 0.9 and 3.3-6.8 A at 2.0; only 13 of
the 110 dimers (the 2.0 points of the 12 stacked, pi- and dispersion-bound dimers, and benzene
parallel-displaced at 1.5) have every intermolecular pair beyond 5 A, with interaction energies of
-0.4 to -38 meV; the hydrogen-bonded dimers stay within 3.3-4.6 A even at 2.0.
All elements are H, C, N and O; every dimer is neutral.

Convention for training on interaction energies: a dimer is labelled with its interaction energy
as its ``energy`` and each isolated monomer with ``energy = 0`` (energies relative to the separated
monomers), so a model's ``E(AB) - E(A) - E(B)`` is the interaction energy it predicts.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rsajax.teachers.point_charges import min_intermolecular_distance

#: The five S22x5 separation factors (multiples of the equilibrium intermolecular distance).
SEPARATION_FACTORS = ("0.9", "1.0", "1.2", "1.5", "2.0")


def _s22():
    try:
        from ase.data import s22
    except ImportError as err:  # pragma: no cover - ASE always has it since 3.x
        raise ImportError("S22x5 needs ase.data.s22 (ASE >= 3.23)") from err
    return s22


def s22x5_systems() -> list[str]:
    """The 22 dimer names, e.g. ``"Water_dimer"`` (sorted)."""
    return sorted({name.rsplit("_", 1)[0] for name in _s22().s22x5})


def _split(atoms: Atoms, n_a: int) -> np.ndarray:
    index = np.zeros(len(atoms), dtype=np.int64)
    index[n_a:] = 1
    return index


def s22x5_dimer(system: str, factor: str, label_energy: bool = True) -> Atoms:
    """One S22x5 dimer (open boundaries).

    Args:
        system: one of :func:`s22x5_systems`. factor: one of ``SEPARATION_FACTORS``.
        label_energy: attach the interaction energy as the ``energy`` (SinglePointCalculator).
    Returns:
        Atoms with ``arrays["molecule_index"]`` (0 for monomer A, 1 for B) and ``info``:
        ``system``, ``factor`` (float), ``name``, ``interaction_energy`` (eV, CCSD(T)/CBS),
        ``separation`` (centre-of-mass distance, A), ``min_intermolecular_distance`` (A).
    """
    s22 = _s22()
    name = f"{system}_{factor}"
    if name not in s22.s22x5:
        raise ValueError(f"{name!r} is not an S22x5 entry (systems: s22x5_systems())")
    atoms = s22.create_s22_system(name)
    n_a, _ = s22.get_number_of_dimer_atoms(name)
    index = _split(atoms, n_a)
    energy = float(s22.get_interaction_energy_s22x5(name))
    com = [atoms[index == m].get_center_of_mass() for m in (0, 1)]
    atoms.arrays["molecule_index"] = index
    atoms.info.update(
        system=system,
        factor=float(factor),
        name=name,
        interaction_energy=energy,
        separation=float(np.linalg.norm(com[1] - com[0])),
        min_intermolecular_distance=min_intermolecular_distance(atoms.positions, index),
    )
    if label_energy:
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
    return atoms


def s22x5(
    systems: list[str] | None = None,
    factors: tuple[str, ...] = SEPARATION_FACTORS,
    label_energy: bool = True,
) -> list[Atoms]:
    """S22x5 dimers (all 110 by default), system by system, factors in order."""
    systems = s22x5_systems() if systems is None else systems
    return [s22x5_dimer(s, f, label_energy) for s in systems for f in factors]


def s22x5_monomers(systems: list[str] | None = None, label_energy: bool = True) -> list[Atoms]:
    """Both isolated monomers of each system (the geometry is the same at every factor), with
    ``energy = 0`` when ``label_energy`` (the zero of interaction energies); ``info``: ``system``,
    ``monomer`` (0 or 1), ``interaction_energy = 0``."""
    out = []
    for system in s22x5_systems() if systems is None else systems:
        dimer = s22x5_dimer(system, "1.0", label_energy=False)
        for m in (0, 1):
            mono = dimer[dimer.arrays["molecule_index"] == m]
            mono.info = {"system": system, "monomer": m, "interaction_energy": 0.0}
            if label_energy:
                mono.calc = SinglePointCalculator(mono, energy=0.0)
            out.append(mono)
    return out


__all__ = ["SEPARATION_FACTORS", "s22x5", "s22x5_dimer", "s22x5_monomers", "s22x5_systems"]
