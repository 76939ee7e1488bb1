"""Synthetic structures for benchmarks and tests (not physical; for timing and plumbing)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.units import _amu

#: Mass density of vitreous silica (g/cm^3).
SILICA_DENSITY = 2.2


def silica_box_length(n_atoms: int, density: float = SILICA_DENSITY) -> float:
    """Edge (A) of a cubic SiO2 box of ``n_atoms`` at ``density`` g/cm^3."""
    mass_per_atom = (28.0855 + 2 * 15.999) / 3 * _amu * 1e3  # grams
    volume_cm3 = n_atoms * mass_per_atom / density
    return float((volume_cm3 * 1e24) ** (1 / 3))


def random_silica_box(
    n_atoms: int, density: float = SILICA_DENSITY, seed: int = 0, rattle: float = 0.15
) -> Atoms:
    """A cubic box with Si:O = 1:2 on a rattled simple-cubic grid at silica's density.

    Sites are the first ``n_atoms`` points of the smallest cubic grid that holds them, so atoms
    never overlap (nearest distance ~ grid spacing, about 2.4 A at 2.2 g/cm^3, minus the rattle).
    When ``n_atoms`` is not a multiple of 3, Si gets ``round(n_atoms / 3)`` atoms.
    """
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be positive, got {n_atoms}")
    rng = np.random.default_rng(seed)
    length = silica_box_length(n_atoms, density)
    per_side = int(np.ceil(n_atoms ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = grid[rng.permutation(len(grid))[:n_atoms]]
    positions = (sites + 0.5) * (length / per_side)
    positions += rng.normal(scale=rattle, size=positions.shape)
    n_si = round(n_atoms / 3)
    numbers = np.array([14] * n_si + [8] * (n_atoms - n_si))
    rng.shuffle(numbers)
    return Atoms(numbers=numbers, positions=positions, cell=np.eye(3) * length, pbc=True)
