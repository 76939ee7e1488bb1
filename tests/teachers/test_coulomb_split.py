"""Coulomb split E_coul = E_near (shifted force, r < r_c) + E_far: sums, derivatives, continuity."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from rsajax.teachers import BKSParameters, bks_energy_forces_stress
from rsajax.teachers.coulomb_split import (
    NEAR_CUTOFF,
    CoulombSplitLabeller,
    coulomb_only,
    coulomb_split,
)
from rsajax.teachers.ewald import COULOMB_CONSTANT
from rsajax.teachers.structures import alpha_quartz, random_strain, strained


def distorted_quartz(seed: int = 0) -> Atoms:
    """Alpha-quartz 2x2x1 (36 atoms; narrower than 2 x 5 A along c, so pairs see several images)
    strained into a triclinic cell and rattled."""
    rng = np.random.default_rng(seed)
    atoms = strained(alpha_quartz().repeat((2, 2, 1)), random_strain(rng, 0.04))
    atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def labeller():
    return CoulombSplitLabeller()


def independent_near_energy(atoms: Atoms, r_cut: float = NEAR_CUTOFF) -> float:
    """The shifted-force sum from ASE's neighbour list, in numpy."""
    i, j, d = ase_neighbor_list("ijd", atoms, r_cut)
    q = np.where(atoms.numbers == 14, 2.4, -1.2)
    pair = q[i] * q[j] * (1.0 / d - 1.0 / r_cut + (d - r_cut) / r_cut**2)
    return 0.5 * COULOMB_CONSTANT * float(np.sum(pair))


def test_near_plus_far_is_the_ewald_coulomb_energy(labeller):
    atoms = distorted_quartz()
    split = labeller(atoms)
    ewald, forces, stress = bks_energy_forces_stress(atoms, coulomb_only())
    assert split.coulomb_energy == pytest.approx(ewald, rel=1e-12)
    assert split.near_energy + split.far_energy == pytest.approx(ewald, rel=1e-12)
    np.testing.assert_allclose(split.near_forces + split.far_forces, forces, atol=1e-9)
    np.testing.assert_allclose(split.near_stress + split.far_stress, stress, atol=1e-11)
    assert split.near_energy == pytest.approx(independent_near_energy(atoms), rel=1e-10)
    # the far part is a sizeable piece of the Coulomb energy, not a rounding error
    assert abs(split.far_energy) > 0.05 * abs(ewald)


def test_far_forces_and_stress_are_derivatives(labeller):
    atoms = distorted_quartz(seed=1)
    split = labeller(atoms)
    h = 1e-5
    for i, a in [(0, 0), (5, 1), (17, 2), (35, 2)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, a] += sign * h
            energies.append(labeller(moved).far_energy)
        fd = -(energies[0] - energies[1]) / (2 * h)
        assert split.far_forces[i, a] == pytest.approx(fd, rel=1e-6, abs=1e-6)
    volume = atoms.get_volume()
    for a, b in [(0, 0), (1, 2)]:
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = sign * h
            energies.append(labeller(strained(atoms, eps)).far_energy)
        fd = (energies[0] - energies[1]) / (2 * h) / volume
        expected = split.far_stress[a, b] * (1 if a == b else 2)
        assert expected == pytest.approx(fd, rel=1e-5, abs=1e-8)


def pair_across_cutoff(distance: float) -> Atoms:
    """SiO2 in a 14 A cube: Si-O1 at ``distance``, every other pair (and image) beyond 5 A."""
    positions = [[2.0, 3.0, 3.0], [2.0 + distance, 3.0, 3.0], [9.0, 10.0, 10.0]]
    return Atoms("SiO2", positions=positions, cell=np.eye(3) * 14.0, pbc=True)


def test_far_part_is_smooth_where_a_pair_crosses_the_cutoff(labeller):
    h = 1e-4
    inside, outside = labeller(pair_across_cutoff(5.0 - h)), labeller(pair_across_cutoff(5.0 + h))
    # plain truncation would jump by k_e q_Si q_O / r_c = 8.3 eV; the split is continuous ...
    jump = COULOMB_CONSTANT * 2.4 * 1.2 / NEAR_CUTOFF
    assert jump > 8.0
    slope = inside.far_forces[1, 0]
    assert abs(outside.far_energy - inside.far_energy + slope * 2 * h) < 1e-6
    assert abs(inside.near_energy) < 1e-6  # the pair's shifted-force term is O(h^2)
    # ... and so is its force (the derivative of the pair force jumps by k_e qq 2/r_c^3)
    np.testing.assert_allclose(inside.far_forces, outside.far_forces, atol=5e-4)
    np.testing.assert_allclose(inside.near_forces, 0.0, atol=5e-4)


@pytest.mark.parametrize("cubic", [True, False], ids=["cubic-8-atoms", "primitive-2-atoms"])
def test_rock_salt_coulomb_energy_is_the_madelung_energy(cubic):
    a = 5.64  # NaCl, nearest neighbour 2.82 A; Na -> Si, Cl -> O with charges +-1
    atoms = bulk("NaCl", "rocksalt", a=a, cubic=cubic)
    atoms.numbers = np.where(atoms.numbers == 11, 14, 8)
    params = BKSParameters(charges=(1.0, -1.0), ewald_accuracy=1e-10)
    split = coulomb_split(atoms, params=params)
    madelung = 1.747565
    expected = -(len(atoms) / 2) * COULOMB_CONSTANT * madelung / (a / 2)
    assert split.coulomb_energy == pytest.approx(expected, rel=1e-6)
    assert split.near_energy + split.far_energy == pytest.approx(expected, rel=1e-6)
    assert np.abs(split.far_forces).max() < 1e-9  # every ion sits at an inversion centre
