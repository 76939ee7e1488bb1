"""Small test structures shared by the MACE tests (Si/O, any model with elements 8 and 14)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk


def molecule() -> Atoms:
    """An open-boundary Si2O3 cluster (no cell)."""
    pos = [[0.0, 0.0, 0.0], [1.6, 0.1, 0.0], [-0.5, 1.5, 0.2], [0.3, -0.4, 1.5], [3.0, 0.3, 0.4]]
    return Atoms("SiOOOSi", positions=pos, pbc=False)


def rattled_crystal(seed: int = 1) -> Atoms:
    """Diamond Si with one O, rattled, 4 atoms per cell repeated (2, 1, 1)."""
    atoms = bulk("Si", "diamond", 5.43, cubic=False) * (2, 1, 1)
    atoms.numbers[0] = 8
    atoms.rattle(0.1, seed=seed)
    return atoms


def strained_crystal() -> Atoms:
    """:func:`rattled_crystal` under a non-symmetric 3% deformation of the cell."""
    atoms = rattled_crystal(seed=2)
    deform = np.eye(3) + 0.03 * np.array([[1.0, 0.5, -0.2], [0.1, -0.7, 0.3], [0.4, 0.0, 0.6]])
    atoms.set_cell(atoms.cell.array @ deform, scale_atoms=True)
    return atoms


def triclinic(seed: int = 3, n: int = 5) -> Atoms:
    """A small triclinic cell, shorter than the cutoff, so atoms see several of their images."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.9, 0.0, 0.0], [1.1, 3.6, 0.0], [-0.8, 0.7, 4.2]])
    frac = rng.random((n, 3))
    numbers = rng.choice([8, 14], size=n)
    return Atoms(numbers=numbers, scaled_positions=frac, cell=cell, pbc=True)


def isolated_atom() -> Atoms:
    """One Si atom in vacuum: energy is the E0 plus the readout of a neighbourless atom."""
    return Atoms("Si", positions=[[0.1, 0.2, 0.3]], pbc=False)


def all_structures() -> dict[str, Atoms]:
    return {
        "molecule": molecule(),
        "rattled_crystal": rattled_crystal(),
        "strained_crystal": strained_crystal(),
        "triclinic": triclinic(),
        "isolated_atom": isolated_atom(),
    }


def symmetrically_strained(atoms: Atoms, i: int, j: int, amount: float) -> Atoms:
    """A copy of ``atoms`` with cell and positions under the symmetric strain
    ``eps_ij = eps_ji = amount / 2`` (``eps_ii = amount`` on the diagonal)."""
    eps = np.zeros((3, 3))
    eps[i, j] += amount / 2
    eps[j, i] += amount / 2
    strained = atoms.copy()
    strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return strained


def stress_by_strain(energy_of, atoms: Atoms, i: int, j: int, h: float) -> float:
    """``(1/V) dE/d eps_ij`` by central differences of ``energy_of(Atoms) -> float`` under
    :func:`symmetrically_strained`."""
    plus, minus = (energy_of(symmetrically_strained(atoms, i, j, s * h)) for s in (1, -1))
    return (plus - minus) / (2 * h) / atoms.get_volume()
