"""Ewald sum: NaCl Madelung constant, pymatgen on random triclinic cells, k-vector coverage."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from rsajax.teachers import BKSParameters, bks_energy_forces_stress
from rsajax.teachers.ewald import reciprocal_integer_vectors
from rsajax.units import COULOMB_CONSTANT

ZERO = ((0.0, 0.0), (0.0, 0.0))


def coulomb_only(charges=(2.4, -1.2), r_cut=7.0, accuracy=1e-12) -> BKSParameters:
    """BKS parameters with the short-range part switched off: a pure Ewald sum."""
    return BKSParameters(
        charges=charges, a=ZERO, c=ZERO, wall_epsilon=ZERO, r_cut=r_cut, ewald_accuracy=accuracy
    )


@pytest.mark.parametrize("cubic", [True, False], ids=["cubic-8-atoms", "primitive-triclinic"])
def test_nacl_madelung_constant(cubic):
    a = 2.0  # nearest-neighbour distance 1 A
    atoms = bulk("NaCl", "rocksalt", a=a, cubic=cubic)
    atoms.numbers = np.where(atoms.numbers == 11, 14, 8)  # BKS species, charges set to +-1
    energy, forces, _ = bks_energy_forces_stress(atoms, coulomb_only((1.0, -1.0), r_cut=6.0))
    madelung = -energy / (len(atoms) / 2) * (a / 2) / COULOMB_CONSTANT
    assert madelung == pytest.approx(1.747565, abs=1e-6)
    assert np.abs(forces).max() < 1e-10  # every ion sits at an inversion centre


def random_neutral_cell(rng: np.random.Generator) -> Atoms:
    cell = np.diag(rng.uniform(4.5, 7.0, 3)) + rng.uniform(-1.5, 1.5, (3, 3))
    n_si = int(rng.integers(1, 4))
    numbers = [14] * n_si + [8] * (2 * n_si)
    positions = rng.uniform(0.0, 1.0, (3 * n_si, 3))
    return Atoms(numbers=numbers, cell=cell, scaled_positions=positions, pbc=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pymatgen_on_random_triclinic_cells(seed):
    pymatgen_io = pytest.importorskip("pymatgen.io.ase")
    from pymatgen.analysis.ewald import EwaldSummation

    atoms = random_neutral_cell(np.random.default_rng(seed))
    energy, forces, _ = bks_energy_forces_stress(atoms, coulomb_only())
    structure = pymatgen_io.AseAtomsAdaptor.get_structure(atoms)
    structure.add_oxidation_state_by_site([2.4 if z == 14 else -1.2 for z in atoms.numbers])
    reference = EwaldSummation(structure, acc_factor=20.0, compute_forces=True)
    assert energy == pytest.approx(reference.total_energy, rel=1e-6)
    assert np.allclose(forces, reference.forces, atol=1e-5 * np.abs(reference.forces).max())


def test_k_vectors_cover_the_sphere_of_any_strained_box():
    rng = np.random.default_rng(3)
    box = (np.eye(3) * 6.0 + rng.uniform(-1.0, 1.0, (3, 3))).T
    k_cut, margin = 2.5, 0.05
    kept = {tuple(n) for n in reciprocal_integer_vectors(box, k_cut, margin)}
    grid = np.array(np.meshgrid(*[np.arange(-12, 13)] * 3)).reshape(3, -1).T
    for _ in range(5):
        eps = rng.uniform(-1.0, 1.0, (3, 3))
        eps *= margin / np.linalg.norm(eps, 2)  # spectral norm = margin
        strained = (np.eye(3) + eps) @ box
        k = 2 * np.pi * grid @ np.linalg.inv(strained)
        inside = grid[(np.sum(k**2, axis=1) < k_cut**2) & np.any(grid != 0, axis=1)]
        for n in inside:
            assert tuple(n) in kept or tuple(-n) in kept
