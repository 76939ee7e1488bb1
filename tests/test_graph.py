"""Graph contract: padding is inert, edge vectors and gradients are clean."""

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk, molecule

from rsajax.data import Caps, atoms_to_graph, atoms_to_record, collate
from rsajax.graph import edge_vectors, safe_norm, segment_sum_nodes


def structures():
    quartz_like = bulk("Si", "diamond", a=5.43)
    quartz_like.rattle(0.05, seed=1)
    water = molecule("H2O")
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = (True, True, False)
    return [quartz_like, water, slab]


def test_padding_changes_no_real_value():
    records = [atoms_to_record(a, 3.0) for a in structures()]
    tight = collate(records)
    padded = collate(records, Caps(tight.num_nodes + 13, tight.num_edges + 40, 9))
    n, e = int(tight.node_mask.sum()), int(tight.edge_mask.sum())
    np.testing.assert_array_equal(padded.species[:n], tight.species[:n])
    np.testing.assert_array_equal(padded.positions[:n], tight.positions[:n])
    np.testing.assert_array_equal(padded.senders[:e], tight.senders[:e])
    np.testing.assert_array_equal(padded.cell[:3], tight.cell[:3])
    v_tight = np.asarray(edge_vectors(tight.positions, tight))[:e]
    v_padded = np.asarray(edge_vectors(padded.positions, padded))[:e]
    np.testing.assert_array_equal(v_tight, v_padded)
    assert (padded.species[n:] == 0).all()
    assert not padded.node_mask[n:].any() and not padded.graph_mask[3:].any()


def test_padded_edges_never_zero_length():
    graph = collate([atoms_to_record(a, 3.0) for a in structures()], Caps(64, 400, 6))
    lengths = np.linalg.norm(np.asarray(edge_vectors(graph.positions, graph)), axis=1)
    assert (lengths > 0).all()
    assert (lengths[~graph.edge_mask] > 100).all()  # beyond any cutoff


def test_no_nan_gradient_through_padding():
    graph = collate([atoms_to_record(a, 3.0) for a in structures()], Caps(64, 400, 6))

    def energy(positions):
        vectors = edge_vectors(positions, graph)
        lengths = safe_norm(vectors, graph.edge_mask)
        pair = jnp.where(graph.edge_mask, 1.0 / lengths**6, 0.0)
        return jnp.sum(pair)

    grad = jax.grad(energy)(jnp.asarray(graph.positions))
    assert np.isfinite(np.asarray(grad)).all()
    assert np.abs(np.asarray(grad)[~graph.node_mask]).max() == 0


def test_safe_norm_gradient_is_finite_at_zero():
    g = jax.grad(lambda x: safe_norm(x, jnp.array(False)))(jnp.zeros(3))
    assert np.isfinite(np.asarray(g)).all()


def test_segment_sum_ignores_padding():
    graph = collate([atoms_to_record(a, 3.0) for a in structures()], Caps(64, 400, 6))
    ones = jnp.ones(graph.num_nodes)
    counts = segment_sum_nodes(ones, graph)
    np.testing.assert_array_equal(np.asarray(counts), graph.n_node)


def test_graph_is_a_pytree_that_jits():
    graph = atoms_to_graph(structures(), 3.0)
    total = jax.jit(lambda g: jnp.sum(g.positions * g.node_mask[:, None]))(graph)
    np.testing.assert_allclose(float(total), graph.positions[graph.node_mask].sum())
