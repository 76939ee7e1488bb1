"""``RSAConfig.neutral``: periodic lattice sums see neutral source amplitudes; open boundaries and
old saved models are untouched."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms

from rsajax.data import atoms_to_graph
from rsajax.nn.model import MACE, MACEConfig, init_model, load_model, save_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn
from rsajax.nn.rsa.kernel import neutralize, reciprocal_space_attention
from tests.nn.rsa.test_defaults import BASE, R_MAX, perturbed_readout
from tests.structures import molecule


@functools.cache
def models():
    """{neutral: (model, variables)} with the same parameters (neutral adds only the amplitude of
    a unit net charge, which neutral structures never use)."""
    out = {}
    for neutral in (True, False):
        config = MACEConfig(**BASE, long_range=RSAConfig.preset("default", neutral=neutral))
        model, variables = init_model(config, seed=5)
        out[neutral] = (model, perturbed_readout(variables, scale=0.3))
    shared = without_charge_amplitude(out[True][1])
    jax.tree_util.tree_map(np.testing.assert_array_equal, shared, out[False][1])
    return out


def without_charge_amplitude(tree):
    """The variables with every ``charge_amplitude`` leaf dropped."""
    if not isinstance(tree, dict):
        return tree
    return {k: without_charge_amplitude(v) for k, v in tree.items() if k != "charge_amplitude"}


def long_range_energy(neutral: bool, atoms: Atoms) -> float:
    model, variables = models()[neutral]
    graph = atoms_to_graph(
        [atoms], R_MAX, kset_fn=make_kset_fn(model.config.long_range, [atoms]), dtype=np.float64
    )
    _, long_range = model.apply(variables, graph, method=MACE.energy_parts)
    return float(long_range[0])


def simple_cubic(rattle: float = 0.0) -> Atoms:
    atoms = Atoms("O", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 2.7, pbc=True) * (3, 3, 3)
    if rattle:
        atoms.rattle(rattle, seed=4)
    return atoms


def test_identical_atoms_in_a_periodic_cell_carry_no_long_range_energy():
    """Every atom of a perfect one-element crystal has the same features, hence the same
    amplitude: a neutral cell has none left, while the plain sum keeps the net amplitude's
    energy against the missing k = 0 term (a background energy)."""
    assert long_range_energy(True, simple_cubic()) == pytest.approx(0.0, abs=1e-12)
    assert abs(long_range_energy(False, simple_cubic())) > 1e-4
    rattled = long_range_energy(True, simple_cubic(rattle=0.15))
    assert abs(rattled) > 1e-7  # distinct environments still interact


def test_open_boundaries_are_not_neutralised():
    """A charged molecule is physical in open boundaries: the same energy either way."""
    assert long_range_energy(True, molecule()) == long_range_energy(False, molecule())
    assert abs(long_range_energy(True, molecule())) > 1e-6


def test_neutralize_removes_each_graph_mean_over_real_nodes():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 2, 3)) + 1j * rng.normal(size=(7, 2, 3))
    node_graph = jnp.array([0, 0, 0, 1, 1, 2, 2])
    node_mask = jnp.array([True, True, True, True, True, True, False])
    out = np.asarray(neutralize(jnp.asarray(a), node_graph, node_mask, 3))
    np.testing.assert_allclose(out[:3].sum(0), 0.0, atol=1e-14)
    np.testing.assert_allclose(out[3:5].sum(0), 0.0, atol=1e-14)
    np.testing.assert_allclose(out[5], 0.0)  # a one-node graph has nothing left
    np.testing.assert_array_equal(out[6], 0.0)  # padding
    np.testing.assert_allclose(out[:3] - out[0], a[:3] - a[0], atol=1e-14)  # only a shift


def test_neutral_lattice_sum_ignores_a_uniform_shift_of_the_values():
    """With keys equal on every node, ``v -> v + c`` shifts every amplitude by the same amount:
    the neutral sum does not change, the plain one does."""
    rng = np.random.default_rng(1)
    n, c, m = 6, 4, 5
    q = jnp.asarray(rng.normal(size=(n, c)))
    k = jnp.asarray(np.tile(rng.normal(size=(1, c)), (n, 1)))
    v = jnp.asarray(rng.normal(size=(n, c)))
    positions = jnp.asarray(rng.normal(size=(n, 3)) * 3.0)
    kvectors = jnp.asarray(rng.normal(size=(1, m, 3)))
    weights = jnp.asarray(rng.random((1, m)))
    args = (positions, kvectors, weights, jnp.ones((1, m), bool), jnp.zeros(n, jnp.int32), 1)

    def u(values, neutral):
        return np.asarray(reciprocal_space_attention(q, k, values, *args, neutral=neutral))

    shifted = v + jnp.asarray(rng.normal(size=(1, c)))
    np.testing.assert_allclose(u(shifted, True), u(v, True), atol=1e-12)
    assert np.abs(u(shifted, False) - u(v, False)).max() > 1e-3


def test_models_saved_before_neutral_existed_load_without_it(tmp_path):
    model, variables = models()[False]
    directory = save_model(tmp_path / "old", model.config, variables)
    path = directory / "config.json"
    meta = json.loads(path.read_text())
    del meta["config"]["long_range"]["neutral"]
    del meta["config"]["long_range"]["net_charge"]
    path.write_text(json.dumps(meta))
    loaded, _ = load_model(directory)
    assert loaded.config.long_range.neutral is False
    assert loaded.config.long_range.net_charge is False
    assert RSAConfig().neutral and RSAConfig.from_dict({}).neutral  # new configs: neutral
    assert not RSAConfig.preset("default-v0").neutral and not RSAConfig.preset("seed").neutral
    assert dataclasses.replace(RSAConfig(), neutral=False) != RSAConfig()
