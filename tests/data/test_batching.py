"""Buckets, shuffling and dataset statistics."""

import numpy as np
import pytest
from ase import Atoms

from rsajax.data import (
    GraphDataset,
    atoms_to_record,
    attach_labels,
    choose_buckets,
    compute_statistics,
)


def random_structures(n, seed=0):
    rng = np.random.default_rng(seed)
    e0 = {8: -4.0, 14: -7.5}
    out = []
    for _ in range(n):
        count = int(rng.integers(3, 20))
        numbers = rng.choice([8, 14], size=count)
        length = 2.2 * count ** (1 / 3) + 1
        atoms = Atoms(
            numbers,
            scaled_positions=rng.uniform(size=(count, 3)),
            cell=np.eye(3) * length,
            pbc=True,
        )
        energy = sum(e0[int(z)] for z in numbers) + 0.01 * count * rng.normal()
        attach_labels(atoms, energy=energy, forces=rng.normal(size=(count, 3)))
        out.append(atoms)
    return out


def records(n=40, seed=0):
    return [atoms_to_record(a, 3.0) for a in random_structures(n, seed)]


def test_every_batch_fits_a_bucket_and_few_shapes():
    data = GraphDataset(records(), batch_size=4, num_buckets=3, seed=1)
    shapes = set()
    seen = []
    for epoch in range(5):
        for batch in data.batches(epoch):
            shapes.add((batch.num_nodes, batch.num_edges, batch.num_graphs))
            seen.append(int(batch.graph_mask.sum()))
    assert len(shapes) <= 3
    assert sum(seen) == 5 * 40


def test_epoch_order_is_reproducible_and_resumable():
    data = GraphDataset(records(), batch_size=4, seed=7)
    assert not np.array_equal(data.order(0), data.order(1))
    full = list(data.batches(epoch=2))
    resumed = list(data.batches(epoch=2, start=3))
    for a, b in zip(full[3:], resumed, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)


def test_largest_bucket_is_a_guaranteed_bound():
    recs = records()
    buckets = choose_buckets(recs, batch_size=5)
    largest = sorted(recs, key=lambda r: r.n_node)[-5:]
    assert buckets[-1].n_node > sum(r.n_node for r in largest)
    assert buckets[-1].n_edge >= max(
        sum(r.n_edge for r in sorted(recs, key=lambda r: r.n_edge)[-5:]), 1
    )


def test_bad_batch_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        choose_buckets(records(4), batch_size=0)
    with pytest.raises(ValueError, match="no structures"):
        choose_buckets([], batch_size=2)


def test_statistics_recover_e0_and_neighbours():
    recs = records(60)
    stats = compute_statistics(recs)
    assert stats.atomic_numbers == (8, 14)
    np.testing.assert_allclose(stats.atomic_energies, [-4.0, -7.5], atol=0.02)
    assert abs(stats.mean_interaction_energy) < 0.01
    expected_neighbors = sum(r.n_edge for r in recs) / sum(r.n_node for r in recs)
    assert stats.avg_num_neighbors == pytest.approx(expected_neighbors)
    forces = np.concatenate([r.forces for r in recs])
    assert stats.rms_forces == pytest.approx(np.sqrt((forces**2).mean()))
    assert "E0" in stats.summary()


def test_kset_travels_with_batches():
    """Long-range models get their k-set attached to every batch, with one static size."""
    from rsajax.nn.rsa import build_kset

    recs = records(12)
    data = GraphDataset(
        recs, batch_size=4, seed=0, kset_fn=lambda g: build_kset(g, k_cut=1.5, m_max=400)
    )
    for batch in data.batches(0):
        assert batch.kset.n.shape == (batch.num_graphs, 400, 3)
        real = np.asarray(batch.graph_mask)
        assert (batch.kset.mask[real].sum(axis=1) > 0).all()
        assert not batch.kset.mask[~real].any()
