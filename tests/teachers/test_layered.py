"""Layered black-phosphorus teacher: structure, springs, forces, separation limit, exfoliation."""

from __future__ import annotations

import numpy as np
import pytest

from rsajax.teachers import layered as L


def test_black_phosphorus_has_its_bond_lengths_and_two_layers():
    assert len(L.black_phosphorus()) == 8
    atoms = L.black_phosphorus((2, 2))  # wide enough for the minimum image of every bond
    assert sorted(np.bincount(atoms.arrays["layer_index"])) == [16, 16]
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    bonds = np.sort(d, axis=1)[:, :3]  # three bonds per P: 2.22, 2.22, 2.24 A
    np.testing.assert_allclose(np.sort(bonds.ravel())[[0, -1]], [2.22, 2.24], atol=0.01)
    assert L.min_interlayer_distance(atoms) == pytest.approx(3.59, abs=0.01)


def test_ideal_layers_have_no_spring_energy_and_springs_stay_in_their_layer():
    ideal = L.black_phosphorus((2, 1))
    springs = L.springs_of(ideal)
    layer = ideal.arrays["layer_index"]
    assert np.all(layer[springs.i] == layer[springs.j])
    assert np.all(springs.shifts[:, 2] == 0)
    assert np.sum(springs.r0 < L.FORCE_FIELD.bond_cut) == 3 * len(ideal) // 2  # 3 bonds per atom
    far = L.set_gap(ideal, 40.0, L.GAP0)  # beyond the 30 A cut-off
    energy, forces, e_inter = L.energy_forces(far, springs)
    assert energy == pytest.approx(0.0, abs=1e-12) and e_inter == 0.0
    np.testing.assert_allclose(forces, 0.0, atol=1e-12)


def test_forces_are_minus_the_energy_gradient():
    atoms = L.random_samples(1, seed=3, gap_range=(3.0, 4.0), distortion=0.05)[0]
    springs = L.springs_of(L.black_phosphorus((2, 1)))
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-10)
    h = 1e-5
    for i, k in [(0, 0), (5, 2), (11, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        numeric = -(L.energy_forces(plus, springs)[0] - L.energy_forces(minus, springs)[0]) / 2 / h
        assert forces[i, k] == pytest.approx(numeric, abs=1e-7)


def test_interaction_energy_is_the_energy_above_the_separated_layers():
    atoms = L.random_samples(1, seed=1, gap_range=(3.5, 6.0))[0]
    springs = L.springs_of(L.black_phosphorus((2, 1)))
    apart = L.separated(atoms)
    e_apart, _, e_inter_apart = L.energy_forces(apart, springs)
    assert e_inter_apart == 0.0
    assert atoms.info["interaction_energy"] == pytest.approx(
        atoms.get_potential_energy() - e_apart, abs=1e-12
    )


def test_exfoliation_curve_has_its_minimum_at_the_crystal_gap_and_a_dispersion_tail():
    gaps = np.array([2.9, 3.0, 3.1, 3.2, 3.3, 6.0, 12.0, 24.0])
    scan = L.exfoliation_scan(gaps)
    e = np.array([a.info["interaction_energy"] / len(a) for a in scan])
    assert np.argmin(e[:5]) == 2  # minimum at 3.1 A (the crystal: 3.11 A)
    assert -0.08 < e[2] < -0.065  # exfoliation energy ~71 meV/atom
    assert e[5] < e[6] < 0.0  # attractive tail beyond a 5 A cutoff, decaying
    # sheets: E ~ -gap^-4 at large gap (damping and switch negligible at 6-12 A): 2^-4 within 30%
    assert e[6] / e[5] == pytest.approx(1 / 16, rel=0.3)
    assert scan[5].info["min_intermolecular_distance"] > 6.0
