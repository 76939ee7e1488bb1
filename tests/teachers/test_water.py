"""SPC/Fw water teacher: Ewald against the point-charge code, forces, dipoles, a short MD."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.teachers import point_charges as pc
from rsajax.teachers import water as W

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def box():
    return W.water_box(2, seed=0)  # 8 molecules, 6.2 A cube


def test_coulomb_is_the_full_ewald_sum_minus_the_pairs_inside_molecules(box):
    coulomb_only = dataclasses.replace(W.FORCE_FIELD, epsilon=0.0, k_bond=0.0, k_angle=0.0)
    cell = np.array(box.cell)
    x = jnp.asarray(box.positions)
    choice = W.ewald_choice(cell)
    ours = float(jax.jit(lambda y: W.energy(y, jnp.asarray(cell), choice, coulomb_only))(x))
    q = W.charges_of(8)
    setup = pc.ewald_setup(cell, 1e-8)  # the dimer benchmark's Ewald: 27 image shells

    def reference(y):
        n, s = jnp.asarray(setup.n_vectors), jnp.asarray(setup.shifts)
        args = (setup.alpha, setup.r_cut, setup.k_cut)
        return pc.ewald_energy(y, jnp.asarray(q), jnp.asarray(cell), n, s, *args)

    total = float(jax.jit(reference)(x))
    intra = 0.0
    for m in range(8):
        for i, j in ((0, 1), (0, 2), (1, 2)):
            a, b = 3 * m + i, 3 * m + j
            intra += W.ewald.COULOMB_CONSTANT * q[a] * q[b] / box.get_distance(a, b, mic=True)
    assert ours == pytest.approx(total - intra, abs=2e-5)


def test_forces_are_minus_the_gradient_and_wrapping_changes_nothing(box):
    atoms = box.copy()
    atoms.positions += np.random.default_rng(0).normal(0.0, 0.03, atoms.positions.shape)
    energy, forces = W.energy_forces(atoms)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-8)
    h = 1e-5
    for i, k in [(0, 0), (4, 2), (10, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        numeric = -(W.energy_forces(plus)[0] - W.energy_forces(minus)[0]) / 2 / h
        assert forces[i, k] == pytest.approx(numeric, abs=1e-5)
    moved = atoms.copy()
    moved.positions[1] += moved.cell[0]  # an H one cell over: same configuration
    assert W.energy_forces(moved)[0] == pytest.approx(energy, abs=1e-9)
    np.testing.assert_allclose(W.molecular_dipoles(moved), W.molecular_dipoles(atoms), atol=1e-12)


def test_dipole_of_the_equilibrium_molecule(box):
    ff = W.FORCE_FIELD
    expected = -ff.q_oxygen * ff.r0 * math.cos(ff.theta0 / 2) * W.DEBYE_PER_E_A  # 2.19 D
    np.testing.assert_allclose(np.linalg.norm(W.molecular_dipoles(box), axis=1), expected)
    assert W.min_intermolecular_distance(box) > 1.0


def test_label_rejects_atoms_out_of_order(box):
    with pytest.raises(ValueError, match="O, H, H"):
        W.label(box[[1, 0, 2, 3, 4, 5]])


def test_md_system_gives_the_integrators_cartesian_forces(box):
    """jax-md differentiates in fractional coordinates: the MD energy must turn that gradient
    into the Cartesian force (a plain ``R @ box.T`` would scale it by the cell length)."""
    atoms = box.copy()
    atoms.positions += np.random.default_rng(1).normal(0.0, 0.03, atoms.positions.shape)
    system = W.md_system(atoms)
    R = jnp.asarray(atoms.get_scaled_positions())
    nbrs = system.allocate(R)
    md_forces = -jax.grad(lambda r: system.energy_fn(r, nbrs))(R)
    np.testing.assert_allclose(md_forces, W.energy_forces(atoms)[1], atol=1e-8)
