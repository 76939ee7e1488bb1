"""Starting structures for silica: random melts at a given density, and literature crystals."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_masses
from ase.spacegroup import crystal

#: Closest approach allowed when placing atoms at random (A); keeps the start out of BKS's core.
RANDOM_MIN_DISTANCE = {(14, 14): 2.8, (8, 8): 2.3, (14, 8): 1.5, (8, 14): 1.5}
#: Avogadro's number divided by 1e24 (amu -> g, per A^3 -> per cm^3).
AVOGADRO_1E24 = 0.602214076


def cubic_box_length(n_units: int, density_g_cm3: float) -> float:
    """Edge (A) of the cube holding ``n_units`` SiO2 at the given density."""
    mass_amu = n_units * (atomic_masses[14] + 2 * atomic_masses[8])
    return (mass_amu / AVOGADRO_1E24 / density_g_cm3) ** (1.0 / 3.0)


def random_silica(n_units: int, density_g_cm3: float, rng: np.random.Generator) -> Atoms:
    """``n_units`` SiO2 placed at random in a cube, no pair closer than RANDOM_MIN_DISTANCE."""
    length = cubic_box_length(n_units, density_g_cm3)
    numbers = np.array([14] * n_units + [8] * (2 * n_units))
    placed = np.zeros((0, 3))
    for z in numbers:
        minimum = np.array([RANDOM_MIN_DISTANCE[(z, other)] for other in numbers[: len(placed)]])
        for _ in range(100_000):
            trial = rng.uniform(0.0, 1.0, 3)
            d = trial - placed
            d -= np.round(d)
            if np.all(np.linalg.norm(d, axis=1) * length > minimum):
                break
        else:
            raise RuntimeError(f"could not place {n_units} SiO2 at {density_g_cm3} g/cm3 at random")
        placed = np.vstack([placed, trial])
    return Atoms(numbers=numbers, cell=np.eye(3) * length, scaled_positions=placed, pbc=True)


#: Highest density (g/cm^3) at which :func:`random_silica` places atoms reliably.
PLACEMENT_DENSITY = 2.2


def random_silica_compressed(n_units: int, density_g_cm3: float, rng: np.random.Generator) -> Atoms:
    """:func:`random_silica` at ``min(density, PLACEMENT_DENSITY)``, then cell and positions
    scaled down to ``density``: random placement with the minimum distances fails above about
    2.3 g/cm^3, and a relaxation afterwards removes the short contacts the compression makes.
    Below :data:`PLACEMENT_DENSITY` it is :func:`random_silica` (the same random numbers)."""
    atoms = random_silica(n_units, min(density_g_cm3, PLACEMENT_DENSITY), rng)
    if density_g_cm3 > PLACEMENT_DENSITY:
        scale = (PLACEMENT_DENSITY / density_g_cm3) ** (1.0 / 3.0)
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    return atoms


def alpha_quartz() -> Atoms:
    """Alpha-quartz, P3_221, 9 atoms (Levien, Prewitt, Weidner, Am. Mineral. 65, 920 (1980)).

    Levien et al. put Si at (x, 0, 0); in the International Tables origin that ASE uses, Wyckoff 3a
    is (x, 0, 2/3), so all z are shifted by 2/3 (gives Si-O 1.605 and 1.614 A, Si coordination 4).
    """
    return crystal(
        ["Si", "O"],
        basis=[(0.4697, 0.0, 2.0 / 3.0), (0.4135, 0.2669, 0.1191 + 2.0 / 3.0)],
        spacegroup=154,
        cellpar=[4.9160, 4.9160, 5.4054, 90, 90, 120],
    )


def beta_cristobalite() -> Atoms:
    """Ideal beta-cristobalite, Fd-3m, 24 atoms, a = 7.16 A (Wyckoff, Z. Kristallogr. 62, 189
    (1925)); Si on 8a, O on 16c (straight Si-O-Si, the classic idealised high-T structure)."""
    return crystal(
        ["Si", "O"],
        basis=[(0.0, 0.0, 0.0), (0.125, 0.125, 0.125)],
        spacegroup=227,
        cellpar=[7.16, 7.16, 7.16, 90, 90, 90],
    )


def random_strain(rng: np.random.Generator, max_strain: float) -> np.ndarray:
    """(3, 3) symmetric strain with entries uniform in [-max_strain, max_strain]."""
    eps = rng.uniform(-max_strain, max_strain, (3, 3))
    return 0.5 * (eps + eps.T)


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """A copy deformed by ``I + strain`` (cell and positions together)."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain).T, scale_atoms=True)
    return out
