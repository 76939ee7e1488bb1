"""``RSAConfig.net_charge``: a charged periodic structure keeps its net charge in the neutralised
lattice sum (``Graph.total_charge``, from ``atoms.info["charge"]``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure

from rsajax.data import StructureError, atoms_to_graph, read_structures
from rsajax.nn.model import MACE, MACEConfig, init_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn
from rsajax.nn.rsa.kernel import neutralize, reciprocal_space_attention
from rsajax.nn.rsa.kset import build_kset, kspace_geometry
from rsajax.nn.rsa.weights import fixed_kweights
from tests.nn.rsa.node_graphs import single_graph
from tests.nn.rsa.test_defaults import BASE, R_MAX, perturbed_readout
from tests.structures import molecule

TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 10.0, 0.0], [-1.5, 1.8, 11.0]])


def test_neutralize_keeps_a_prescribed_sum_per_graph():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 2)) + 1j * rng.normal(size=(6, 2))
    node_graph = jnp.array([0, 0, 0, 1, 1, 2])
    node_mask = jnp.array([True, True, True, True, True, False])
    total = jnp.asarray(rng.normal(size=(3, 2)) + 1j * rng.normal(size=(3, 2)))
    out = np.asarray(neutralize(jnp.asarray(a), node_graph, node_mask, 3, total))
    np.testing.assert_allclose(out[:3].sum(0), total[0], atol=1e-14)
    np.testing.assert_allclose(out[3:5].sum(0), total[1], atol=1e-14)
    np.testing.assert_array_equal(out[5], 0.0)  # padding, whatever its graph's total
    np.testing.assert_allclose(out[:3] - out[0], a[:3] - a[0], atol=1e-14)  # only a shift


def test_a_charged_cell_gets_its_ewald_energy_with_a_neutralising_background():
    """Point charges summing to +2 in a triclinic cell, q = k = (charge, 0), v = 1, Ewald
    weights: the neutralised sum with the net charge given back is the reciprocal Ewald energy
    of the charged cell (the k != 0 sum, pymatgen's ``reciprocal_space_energy``); neutralised
    without it, the extra charge is smeared over the atoms and the energy is another."""
    rng = np.random.default_rng(3)
    frac = rng.uniform(0, 1, (8, 3))
    charges = np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 0.5, -0.5])
    structure = Structure(Lattice(TRICLINIC), ["Na+"] * 8, frac)
    structure.add_oxidation_state_by_site(charges.tolist())
    eta = 0.3
    reference = EwaldSummation(structure, real_space_cut=10.0, recip_space_cut=8.0, eta=eta)
    graph = single_graph(frac @ TRICLINIC, TRICLINIC)
    kset = build_kset(graph, k_cut=7.0, margin=0.0)
    kvectors, measure = kspace_geometry(kset, jnp.asarray(graph.cell))
    weights = fixed_kweights(kset, kvectors, measure, "ewald", sigma=np.sqrt(1 / (2 * eta)))
    qk = np.stack([np.append(charges, 0.0), np.zeros(9)], axis=1)
    args = (jnp.asarray(graph.positions), kvectors, weights, kset.mask, graph.node_graph, 2)

    def energy(**options):
        u = reciprocal_space_attention(
            qk, qk, np.ones((9, 2)), *args, node_mask=graph.node_mask, **options
        )
        return 0.5 * EwaldSummation.CONV_FACT * float(jnp.sum(u[:, 0]))

    # amplitude conj(k) (x) v of one unit charge: (1 head, 1 complex channel, 2 values)
    unit = jnp.ones((1, 1, 2), complex)
    total = jnp.stack([charges.sum() * unit, 0.0 * unit])  # (G, H, D/2, D); padding graph: 0
    exact = reference.reciprocal_space_energy
    assert energy(neutral=True, total_amplitude=total) == pytest.approx(exact, rel=1e-10)
    assert energy() == pytest.approx(exact, rel=1e-10)  # the plain sum, for comparison
    assert abs(energy(neutral=True) / exact - 1) > 1e-2


# ------------------------------------------------------------------ the model


@functools.cache
def model_and_variables():
    config = MACEConfig(**BASE, long_range=RSAConfig.preset("default"))
    model, variables = init_model(config, seed=5)
    variables = perturbed_readout(variables, scale=0.3)
    unit = variables["params"]["long_range_0"]["rsa"]["charge_amplitude"]
    perturbed = np.random.default_rng(2).normal(size=unit.shape) * 0.3
    return model, jax.tree_util.tree_map_with_path(
        lambda path, x: perturbed if "charge_amplitude" in jax.tree_util.keystr(path) else x,
        variables,
    )


def rattled_crystal(charge: float | None) -> Atoms:
    atoms = Atoms("OO", positions=[[0.1, 0.2, 0.3], [1.4, 1.3, 1.5]], cell=np.eye(3) * 2.8)
    atoms.pbc = True
    atoms = atoms * (2, 2, 2)
    atoms.rattle(0.1, seed=1)
    if charge is not None:
        atoms.info["charge"] = charge
    return atoms


def long_range_energy(atoms: Atoms, drop_charge: bool = False) -> float:
    model, variables = model_and_variables()
    graph = atoms_to_graph(
        [atoms], R_MAX, kset_fn=make_kset_fn(model.config.long_range, [atoms]), dtype=np.float64
    )
    if drop_charge:
        graph = graph.replace(total_charge=None)
    _, long_range = model.apply(variables, graph, method=MACE.energy_parts)
    return float(long_range[0])


def test_total_charge_comes_from_atoms_info_and_only_changes_charged_periodic_cells():
    assert "charge_amplitude" in str(jax.tree_util.tree_structure(model_and_variables()[1]))
    graph = atoms_to_graph([rattled_crystal(2.0), rattled_crystal(None)], R_MAX)
    np.testing.assert_array_equal(graph.total_charge, [2.0, 0.0, 0.0])
    neutral = long_range_energy(rattled_crystal(None))
    assert long_range_energy(rattled_crystal(0.0)) == neutral
    assert long_range_energy(rattled_crystal(0.0), drop_charge=True) == neutral
    charged = long_range_energy(rattled_crystal(1.0))
    assert abs(charged - neutral) > 1e-4
    cation = molecule()
    cation.info["charge"] = 1.0
    assert long_range_energy(cation) == long_range_energy(molecule())  # open: never neutralised


def test_bad_charge_in_a_file_is_named(tmp_path):
    atoms = rattled_crystal(None)
    atoms.info["charge"] = "plus one"
    atoms.write(tmp_path / "bad.xyz")
    with pytest.raises(StructureError, match=r"bad.xyz\[0\].*charge"):
        read_structures(tmp_path / "bad.xyz")
