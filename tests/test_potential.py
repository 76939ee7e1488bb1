"""potential.py on an analytic pair energy: forces, virial and stress against finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from rsajax.data import atoms_to_graph
from rsajax.graph import edge_vectors, safe_norm
from rsajax.potential import make_potential, strain_graph
from tests.structures import molecule, triclinic

CUTOFF = 3.0


def pair_energy(variables, graph):
    """Smoothly truncated soft pair energy, per graph (G,)."""
    r = safe_norm(edge_vectors(graph.positions, graph), graph.edge_mask)
    u = jnp.clip(r / CUTOFF, 0.0, 1.0)
    e = variables["k"] * jnp.where(graph.edge_mask & (u < 1), (1 - u) ** 3 / r, 0.0)
    edge_graph = graph.node_graph[graph.senders]
    return 0.5 * jax.ops.segment_sum(e, edge_graph, num_segments=graph.num_graphs)


@pytest.fixture(scope="module")
def potential():
    return make_potential(pair_energy)


def test_forces_and_stress_match_finite_differences(potential):
    atoms = triclinic(n=6)
    variables = {"k": 1.7}
    out = potential(variables, atoms_to_graph([atoms, molecule()], CUTOFF))
    h = 1e-5

    def energy(a):
        return float(potential(variables, atoms_to_graph(a, CUTOFF))["energy"][0])

    for i, k in [(0, 0), (2, 1), (5, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd = -(energy(plus) - energy(minus)) / (2 * h)
        assert out["forces"][i, k] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    volume = atoms.get_volume()
    for i, j in [(0, 0), (0, 1), (2, 1)]:
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h / 2 if i != j else h
        plus, minus = atoms.copy(), atoms.copy()
        plus.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        minus.set_cell(atoms.cell.array @ (np.eye(3) - eps), scale_atoms=True)
        fd = (energy(plus) - energy(minus)) / (2 * h) / volume
        assert out["stress"][0, i, j] == pytest.approx(fd, rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(out["virial"][0], -np.asarray(out["stress"][0]) * volume)
    assert np.all(np.asarray(out["stress"][1]) == 0.0)  # molecule: no cell, no stress
    assert np.all(np.asarray(out["energy"][2]) == 0.0)  # padding graph


def test_stress_sign_matches_ase():
    """Same convention as ASE's Lennard-Jones calculator (positive = tensile)."""
    atoms = triclinic(n=4)
    sigma, eps = 1.2, 0.3
    atoms.calc = LennardJones(sigma=sigma, epsilon=eps, rc=CUTOFF, smooth=False)
    ref_stress = atoms.get_stress(voigt=False)
    ref_forces = atoms.get_forces()

    def lj(variables, graph):
        r = safe_norm(edge_vectors(graph.positions, graph), graph.edge_mask)
        sr6 = (sigma / r) ** 6
        shift = (sigma / CUTOFF) ** 12 - (sigma / CUTOFF) ** 6
        e = jnp.where(graph.edge_mask & (r < CUTOFF), 4 * eps * (sr6**2 - sr6 - shift), 0.0)
        return 0.5 * jax.ops.segment_sum(e, graph.node_graph[graph.senders], graph.num_graphs)

    out = make_potential(lj)({}, atoms_to_graph(atoms, CUTOFF))
    np.testing.assert_allclose(out["forces"][: len(atoms)], ref_forces, atol=1e-10)
    np.testing.assert_allclose(out["stress"][0], ref_stress, atol=1e-10)


def test_strain_graph_is_symmetric_deformation():
    atoms = triclinic()
    graph = atoms_to_graph(atoms, CUTOFF)
    strain = np.zeros((graph.num_graphs, 3, 3))
    strain[0, 0, 1] = 0.02
    g = strain_graph(graph, graph.positions, jnp.asarray(strain))
    sym = np.eye(3) + np.array([[0, 0.01, 0], [0.01, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(g.cell[0], atoms.cell.array @ sym)
    np.testing.assert_allclose(g.positions[: len(atoms)], atoms.positions @ sym)


def test_energy_parts_report_the_long_range_part_and_differentiate_the_total():
    """An energy function returning ``(energy, long_range_energy)``: forces and stress are those
    of ``energy`` alone, ``long_range_energy`` rides along (0 on padding); plain functions keep
    the old output keys."""

    def with_part(variables, graph):
        energy = pair_energy(variables, graph)
        return energy + 1.0, 0.25 * energy + 3.0  # the "part" is not differentiated

    graph = atoms_to_graph([triclinic(n=6), molecule()], CUTOFF)
    variables = {"k": 1.7}
    plain = make_potential(pair_energy)(variables, graph)
    both = make_potential(with_part)(variables, graph)
    assert "long_range_energy" not in plain
    np.testing.assert_allclose(both["energy"][:2], np.asarray(plain["energy"][:2]) + 1.0)
    np.testing.assert_allclose(both["long_range_energy"][:2], 0.25 * plain["energy"][:2] + 3.0)
    assert float(both["long_range_energy"][2]) == 0.0  # padding graph
    for key in ("forces", "virial", "stress"):
        np.testing.assert_allclose(both[key], plain[key], rtol=1e-14, atol=1e-15)
