"""BKS energy function: forces and stress are derivatives, independent pair sum, jax-md traps."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from rsajax.teachers import BKS, bks_energy_forces_stress, bks_silica, make_label_fn
from rsajax.teachers.bks import short_range_pair
from rsajax.teachers.structures import alpha_quartz, random_strain, strained


def distorted_quartz(seed: int = 0) -> Atoms:
    """Alpha-quartz (9 atoms, narrower than 2 x 10 A) strained into a triclinic cell, rattled."""
    rng = np.random.default_rng(seed)
    atoms = strained(alpha_quartz(), random_strain(rng, 0.04))
    atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def quartz_system():
    atoms = distorted_quartz()
    box = atoms.cell.array.T
    system = bks_silica(atoms.numbers, box, skin=0.5, strain_margin=0.01)
    R = jnp.asarray(atoms.get_scaled_positions())
    neighbors = system.neighbor_fn.allocate(R)
    assert system.reps != (1, 1, 1)  # the point: a cell that needs several images
    return atoms, system, R, neighbors, jax.jit(system.energy_fn)


def test_forces_are_minus_the_finite_difference_gradient(quartz_system):
    atoms, system, R, neighbors, energy = quartz_system
    forces = -jax.grad(energy)(R, neighbors)
    inv_box = np.linalg.inv(atoms.cell.array.T)
    h = 1e-5
    for i in range(len(atoms)):
        for a in range(3):
            step = jnp.asarray(inv_box @ (h * np.eye(3)[a]))  # a Cartesian step, fractional R
            fd = -(energy(R.at[i].add(step), neighbors) - energy(R.at[i].add(-step), neighbors))
            assert float(forces[i, a]) == pytest.approx(float(fd) / (2 * h), rel=1e-6, abs=1e-6)


def test_stress_is_the_strain_derivative_of_the_energy(quartz_system):
    atoms, system, R, neighbors, energy = quartz_system
    box = jnp.asarray(atoms.cell.array.T)
    _, _, stress = make_label_fn(system)(R, neighbors, box)
    volume = atoms.get_volume()
    h = 1e-6
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h  # symmetric strain of the cell, same fractional positions
        plus = energy(R, neighbors, box=(np.eye(3) + eps) @ box)
        minus = energy(R, neighbors, box=(np.eye(3) - eps) @ box)
        derivative = (plus - minus) / (2 * h) / volume
        expected = stress[a, b] if a == b else stress[a, b] + stress[b, a]
        assert float(expected) == pytest.approx(float(derivative), rel=1e-6, abs=1e-9)
    assert np.allclose(stress, stress.T, atol=1e-12)


def test_energy_equals_an_independent_pair_sum_plus_pymatgen_ewald():
    pymatgen_io = pytest.importorskip("pymatgen.io.ase")
    from pymatgen.analysis.ewald import EwaldSummation

    atoms = distorted_quartz(seed=1)
    energy, _, _ = bks_energy_forces_stress(atoms)
    i, j, d = neighbor_list("ijd", atoms, BKS.r_cut)  # ASE: every image within the cut-off
    types = np.where(atoms.numbers == 14, 0, 1)
    sr = np.asarray(short_range_pair(jnp.asarray(d), types[i], types[j], BKS))
    shift = np.asarray(short_range_pair(jnp.asarray(BKS.r_cut), types[i], types[j], BKS))
    structure = pymatgen_io.AseAtomsAdaptor.get_structure(atoms)
    structure.add_oxidation_state_by_site([2.4 if z == 14 else -1.2 for z in atoms.numbers])
    coulomb = EwaldSummation(structure, acc_factor=16.0).total_energy
    assert energy == pytest.approx(0.5 * np.sum(sr - shift) + coulomb, rel=1e-6)


def test_glass_variant_only_drops_the_short_range_terms_between_its_cut_and_10_A():
    # bks-glass cuts Buckingham + wall at 5.5 A; Coulomb (an Ewald sum whose split follows r_cut)
    # must come out the same, so the energy difference is an independent pair sum
    from rsajax.teachers.bks import BKS_GLASS, variant

    assert variant("bks") is BKS and variant("bks-glass") is BKS_GLASS
    assert dataclasses.replace(BKS_GLASS, r_cut=BKS.r_cut) == BKS
    with pytest.raises(ValueError, match="unknown BKS variant 'bks-5'"):
        variant("bks-5")
    atoms = distorted_quartz(seed=2)
    types = np.where(atoms.numbers == 14, 0, 1)

    def pair_sum(r_cut):
        i, j, d = neighbor_list("ijd", atoms, r_cut)
        sr = np.asarray(short_range_pair(jnp.asarray(d), types[i], types[j], BKS))
        shift = np.asarray(short_range_pair(jnp.asarray(r_cut), types[i], types[j], BKS))
        return 0.5 * np.sum(sr - shift)

    e_bks, _, s_bks = bks_energy_forces_stress(atoms, BKS)
    e_glass, _, s_glass = bks_energy_forces_stress(atoms, BKS_GLASS)
    expected = pair_sum(BKS.r_cut) - pair_sum(BKS_GLASS.r_cut)
    assert expected < -0.01  # the -C/r^6 attraction between 5.5 and 10 A
    assert e_bks - e_glass == pytest.approx(expected, rel=1e-4)
    assert np.trace(s_glass) < np.trace(s_bks)  # ASE sign: less cohesion, higher pressure


def test_wrapping_positions_does_not_change_energy_with_an_old_list(quartz_system):
    # MD wraps fractional coordinates into [0, 1); with a replicated cell the list must not
    # start to point at a different image (this broke MD before it was fixed)
    atoms, system, R, neighbors, energy = quartz_system
    shifted = R.at[0].add(jnp.array([1.0, 0.0, -1.0])).at[4].add(jnp.array([0.0, -1.0, 0.0]))
    assert energy(shifted, neighbors) == pytest.approx(float(energy(R, neighbors)), rel=1e-13)


def test_list_rebuilds_when_only_the_box_changes(quartz_system):
    atoms, system, R, neighbors, energy = quartz_system
    box = atoms.cell.array.T
    new_box = 1.04 * box  # no atom moved; pairs near the cut-off did
    updated = system.neighbor_fn.update(R, neighbors, box=new_box)
    assert int(updated.rebuilds) == int(neighbors.rebuilds) + 1
    fresh = system.neighbor_fn.allocate(R, box=new_box)
    assert energy(R, updated, box=new_box) == pytest.approx(
        float(energy(R, fresh, box=new_box)), rel=1e-13
    )


def test_jit_matches_eager_in_a_few_hundred_atom_triclinic_box():
    # jax 0.10.2 miscompiled vmapped mat-vec reductions on CPU (DESIGN.md traps)
    atoms = distorted_quartz(seed=2).repeat((3, 3, 2))  # 162 atoms, 5.1k pairs a row block
    system = bks_silica(atoms.numbers, atoms.cell.array.T, skin=0.3)
    R = jnp.asarray(atoms.get_scaled_positions())
    neighbors = system.neighbor_fn.allocate(R)
    jitted = float(jax.jit(system.energy_fn)(R, neighbors))
    with jax.disable_jit():
        eager = float(system.energy_fn(R, neighbors))
    assert jitted == pytest.approx(eager, rel=1e-12)


def test_gradients_are_finite_with_padded_neighbour_slots(quartz_system):
    atoms, system, R, neighbors, energy = quartz_system
    assert np.any(np.asarray(neighbors.idx) == len(atoms) * np.prod(system.reps))  # has padding
    grad = jax.grad(energy)(R, neighbors)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_rejects_other_elements_and_open_boundaries():
    atoms = distorted_quartz()
    with_al = atoms.copy()
    with_al.numbers[0] = 13
    with pytest.raises(ValueError, match="only Si and O"):
        bks_energy_forces_stress(with_al)
    open_atoms = atoms.copy()
    open_atoms.pbc = False
    with pytest.raises(ValueError, match="pbc"):
        bks_energy_forces_stress(open_atoms)
