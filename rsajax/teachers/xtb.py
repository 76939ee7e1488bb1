"""GFN2-xTB labels (energy and forces) of charged molecular dimers, through tblite.

The geometries are those of :mod:`rsajax.teachers.point_charges` (same molecules, orientations,
distortions and separations); only the labels change: GFN2-xTB total energies and forces of the
dimer with its total charge, open boundaries only (tblite's periodic GFN2 is not used here).
GFN2-xTB has its own charge model (self-consistent Mulliken-like charges with isotropic
electrostatics, multipoles to quadrupoles) and D4 dispersion, so the long-range part is not a
fixed point-charge sum. Needs ``tblite`` (the ``teachers`` extra of rsajax).

Which pairs: an ion pair of opposite charges (ammonium-formate, hydronium-hydroxide) is not an ion
pair at long range in GFN2-xTB: its ground state moves an electron back (at infinite separation
NH4 + HCOO radicals lie ~1 eV below NH4+ + HCOO-, which the Coulomb attraction only overcomes
inside ~13 A), and with xTB's electronic smearing the molecules' charges drift to +-0.85 at 16 A
and +-0.79 at 40 A (where the SCF also stops converging in 250 cycles). Measured here. So the
xTB benchmark uses pairs whose charges stay integral at every separation: charged-neutral
(ammonium-water, formate-water) and like-charged (ammonium-ammonium, formate-formate): their
Mulliken charges per molecule stay within 0.03 e of the template's from 3 A to 24 A.
:func:`xtb_label` checks every structure (``max_charge_transfer``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rsajax.teachers import point_charges as pc

METHOD = "GFN2-xTB"
#: Point-charge labels that make no sense on xTB-labelled structures.
_DROP_INFO = ("e_coulomb", "e_repulsion", "e_intramolecular")


def require_tblite():
    """The tblite ASE calculator class, or an ImportError that says how to get it."""
    try:
        from tblite.ase import TBLite
    except ImportError as err:
        raise ImportError(
            "GFN2-xTB labels need the 'tblite' package (Python bindings of the tblite library); "
            "install it with the rsajax 'teachers' extra, e.g. pip install 'rsajax[teachers]'"
        ) from err
    return TBLite


def xtb_energy_forces(
    atoms: Atoms, charge: int, method: str = METHOD, accuracy: float = 1.0
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (N, 3) eV/A and Mulliken charges (N,) of one open structure."""
    if np.any(atoms.pbc):
        raise ValueError("xTB dimer labels are for open boundaries (pbc all False)")
    calc_cls = require_tblite()
    work = Atoms(numbers=atoms.numbers, positions=atoms.positions)
    work.calc = calc_cls(method=method, charge=int(charge), accuracy=accuracy, verbosity=0)
    energy = float(work.get_potential_energy())
    forces = np.asarray(work.get_forces())
    charges = work.calc.results.get("charges")
    return energy, forces, None if charges is None else np.asarray(charges)


def xtb_label(
    structures: Sequence[Atoms],
    method: str = METHOD,
    interaction_energy: bool = True,
    accuracy: float = 1.0,
    max_charge_transfer: float = 0.1,
) -> list[Atoms]:
    """Relabel dimers from :mod:`~rsajax.teachers.point_charges` with GFN2-xTB.

    Each structure needs ``arrays["molecule_index"]`` and ``info["pair"]`` (the molecules' net
    charges come from the templates). Returns copies with energy and forces on a
    SinglePointCalculator, ``info["reference"] = method``, ``info["charge"]`` (total),
    ``arrays["xtb_charge"]`` (Mulliken) and, with ``interaction_energy``,
    ``info["interaction_energy"] = E(AB) - E(A) - E(B)`` (each monomer alone with its own net
    charge); the point-charge energy terms and charges are removed.

    Raises ValueError if the Mulliken charge of molecule A differs from its template's net charge
    by more than ``max_charge_transfer`` e (then the dimer is not the charged pair it claims to be).
    """
    out = []
    for atoms in structures:
        mol_a, mol_b = pc.molecules_of(str(atoms.info["pair"]))
        charges = (round(mol_a.net_charge), round(mol_b.net_charge))
        index = np.asarray(atoms.arrays["molecule_index"])
        energy, forces, q = xtb_energy_forces(atoms, sum(charges), method, accuracy)
        new = Atoms(numbers=atoms.numbers, positions=atoms.positions)
        new.info = {k: v for k, v in atoms.info.items() if k not in _DROP_INFO}
        new.info.update(reference=method, charge=int(sum(charges)))
        new.arrays["molecule_index"] = index.copy()
        if q is not None:
            new.arrays["xtb_charge"] = q
            q_a = float(q[index == 0].sum())
            new.info["xtb_charge_a"] = q_a
            if abs(q_a - charges[0]) > max_charge_transfer:
                raise ValueError(
                    f"{atoms.info['pair']} at {atoms.info.get('separation', float('nan')):.2f} A: "
                    f"GFN2-xTB puts {q_a:+.3f} e on molecule A (template {charges[0]:+d}); "
                    "charge transfer beyond max_charge_transfer (see the module docstring)"
                )
        if interaction_energy:
            e_int = energy
            for m in (0, 1):
                e_m, _, _ = xtb_energy_forces(atoms[index == m], charges[m], method, accuracy)
                e_int -= e_m
            new.info["interaction_energy"] = e_int
        else:
            new.info.pop("interaction_energy", None)
        new.calc = SinglePointCalculator(new, energy=energy, forces=forces)
        out.append(new)
    return out


def xtb_dimer_samples(
    pair: str,
    num: int,
    seed: int,
    max_separation: float = 16.0,
    distortion: float = 0.05,
    method: str = METHOD,
) -> list[Atoms]:
    """:func:`~rsajax.teachers.point_charges.dimer_samples` geometries, labelled by GFN2-xTB."""
    require_tblite()
    geometries = pc.dimer_samples(pair, num, seed, max_separation, distortion)
    return xtb_label(geometries, method)


def xtb_dimer_curves(
    pair: str,
    separations: Sequence[float],
    num_orientations: int,
    seed: int,
    distortion: float = 0.05,
    method: str = METHOD,
) -> list[Atoms]:
    """:func:`~rsajax.teachers.point_charges.dimer_curves` geometries, labelled by GFN2-xTB."""
    require_tblite()
    geometries = pc.dimer_curves(pair, separations, num_orientations, seed, distortion)
    return xtb_label(geometries, method)


__all__ = [
    "METHOD",
    "require_tblite",
    "xtb_dimer_curves",
    "xtb_dimer_samples",
    "xtb_energy_forces",
    "xtb_label",
]
