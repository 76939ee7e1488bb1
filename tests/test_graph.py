"""Graph contract: padding is inert, edge vectors and gradients are clean."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk, molecule

from rsajax.data import Caps, atoms_to_graph, atoms_to_record, collate
from rsajax.graph import PADDING_LENGTH, edge_vectors, pad_graph, safe_norm


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


def test_node_graph_and_node_mask_count_the_real_nodes_per_graph():
    graph = collate([atoms_to_record(a, 3.0) for a in structures()], Caps(64, 400, 6))
    real = jnp.where(graph.node_mask, 1, 0)
    counts = jax.ops.segment_sum(real, graph.node_graph, num_segments=graph.num_graphs)
    np.testing.assert_array_equal(np.asarray(counts), graph.n_node)


def test_graph_is_a_pytree_that_jits():
    graph = atoms_to_graph(structures(), 3.0)
    total = jax.jit(lambda g: jnp.sum(g.positions * g.node_mask[:, None]))(graph)
    np.testing.assert_allclose(float(total), graph.positions[graph.node_mask].sum())


def two_atoms(xp):
    """The real parts of one periodic two-atom graph with two edges, as ``xp`` arrays."""
    return dict(
        species=xp.asarray([8, 14]),
        positions=xp.asarray([[0.0, 0.0, 0.0], [1.0, 0.5, 0.2]]),
        node_graph=xp.asarray([0, 0]),
        cell=xp.asarray(np.eye(3)[None] * 4.0),
        pbc=xp.ones((1, 3), bool),
        n_node=xp.asarray([2]),
        n_edge=xp.asarray([2]),
        weight=xp.ones(1),
        senders=xp.asarray([0, 1]),
        receivers=xp.asarray([1, 0]),
        cell_offsets=xp.asarray([[0, 0, 0], [1, 0, 0]]),
    )


def test_pad_graph_codes_the_padding_contract():
    graph = pad_graph(**two_atoms(np), num_nodes=4, num_edges=5, num_graphs=3, energy=np.ones(3))
    assert isinstance(graph.positions, np.ndarray)  # host batches stay numpy
    assert graph.species.tolist() == [8, 14, 0, 0]
    assert graph.node_graph.tolist() == [0, 0, 2, 2]  # padded nodes in the last graph slot
    assert graph.node_mask.tolist() == [True, True, False, False]
    # padded edges: the first padded node (index 2) to itself
    assert graph.senders.tolist() == [0, 1, 2, 2, 2] and graph.receivers.tolist() == [1, 0, 2, 2, 2]
    assert graph.cell_offsets[2:].tolist() == [[1, 0, 0]] * 3
    assert graph.edge_mask.tolist() == [True, True, False, False, False]
    assert graph.graph_mask.tolist() == [True, False, False]
    np.testing.assert_array_equal(graph.cell[1], 0.0)  # an empty slot before the padding graph
    np.testing.assert_array_equal(graph.cell[2], np.eye(3) * PADDING_LENGTH)
    assert graph.pbc.tolist() == [[True] * 3, [False] * 3, [False] * 3]
    assert graph.n_node.tolist() == [2, 0, 0] and graph.n_edge.tolist() == [2, 0, 0]
    assert graph.weight.tolist() == [1.0, 0.0, 0.0] and graph.energy.tolist() == [1.0] * 3
    lengths = np.linalg.norm(np.asarray(edge_vectors(graph.positions, graph)), axis=-1)
    np.testing.assert_allclose(lengths[2:], PADDING_LENGTH)  # padded edges: never zero length


def test_pad_graph_under_jit_matches_the_host_graph_and_masks_slots():
    host = pad_graph(**two_atoms(np), edge_mask=np.array([True, False]))
    traced = jax.jit(lambda parts: pad_graph(**parts, edge_mask=jnp.array([True, False])))(
        two_atoms(jnp)
    )
    assert isinstance(traced.positions, jax.Array)
    for name in ("species", "positions", "cell", "senders", "cell_offsets", "edge_mask", "n_node"):
        np.testing.assert_array_equal(np.asarray(getattr(traced, name)), getattr(host, name))
    assert host.edge_mask.tolist() == [True, False, False]


def test_pad_graph_keeps_a_padding_node_and_graph():
    with pytest.raises(ValueError, match="one padding node and one padding graph"):
        pad_graph(**two_atoms(np), num_nodes=2)
    with pytest.raises(ValueError, match="one padding node and one padding graph"):
        pad_graph(**two_atoms(np), num_graphs=1)
