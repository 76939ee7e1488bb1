"""Shortest-path rings against matscipy.rings.ring_statistics."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from matscipy.rings import ring_statistics as matscipy_rings

from rsajax.analysis.rings import ring_statistics, silica_bonds, sp_rings
from tests.analysis.structures import beta_cristobalite, defective_network, random_bridged_network


def _matscipy_si_rings(atoms, cutoff, max_si):
    """matscipy counts all atoms per ring with a scalar cutoff; Si-O-only graph here because
    no O-O or Si-Si pair is shorter than the cutoff in these structures. Even index / 2 = Si."""
    stats = np.asarray(matscipy_rings(atoms, cutoff, maxlength=2 * max_si + 1))
    out = np.zeros(max_si + 1, dtype=int)
    even = stats[::2][: max_si + 1]
    out[: len(even)] = even
    return out


def test_beta_cristobalite_has_only_six_rings():
    """Diamond-like net: every Si lies on 12 six-rings, so 2 rings per Si, all of size 6."""
    a = beta_cristobalite() * (3, 3, 3)
    ours = ring_statistics(a.positions, a.cell[:], a.numbers, cutoff=2.0, max_si=8)
    n_si = np.sum(a.numbers == 14)
    assert ours[6] == 2 * n_si
    assert ours.sum() == ours[6]
    np.testing.assert_array_equal(ours, _matscipy_si_rings(a, 2.0, 8))


def test_disordered_network_matches_matscipy():
    """Removed O merge 6-rings into 8- and 10-rings; counts agree with matscipy size by size."""
    a = defective_network()
    ours = ring_statistics(a.positions, a.cell[:], a.numbers, cutoff=1.9, max_si=10)
    assert ours[6] > 0 and ours[8] + ours[10] > 0  # really a mixed network
    np.testing.assert_array_equal(ours, _matscipy_si_rings(a, 1.9, 10))
    via_engine = ring_statistics(a.positions, a.cell[:], a.numbers, 1.9, 10, engine="matscipy")
    np.testing.assert_array_equal(ours, via_engine)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_network_with_odd_rings_matches_matscipy(seed):
    """A random bridged network has rings of 3-10 Si, odd sizes included; matscipy gets the same
    Si-O-only graph through a per-pair cutoff, so even an O-O contact cannot differ."""
    a = random_bridged_network(seed=seed)
    ours = ring_statistics(a.positions, a.cell[:], a.numbers, cutoff=1.7, max_si=10)
    assert ours[3] > 0 and ours[5] + ours[7] + ours[9] > 0
    stats = np.asarray(matscipy_rings(a, {(14, 8): 1.7}, maxlength=21))
    ref = np.zeros(11, dtype=int)
    ref[: len(stats[::2])] = stats[::2][:11]
    np.testing.assert_array_equal(ours, ref)


def test_small_box_difference_is_matscipys_quotient_graph_distances():
    """In a 14 A box some 10-rings have a shortcut only through a periodic image of an atom.
    We search the infinite periodic network and keep them; matscipy measures shortcuts on the
    box's quotient graph (atom indices without images) and drops them. Re-checking our rings with
    quotient-graph distances reproduces matscipy's counts exactly."""
    a = defective_network(reps=(2, 2, 2), n_removed=6)
    bonds = silica_bonds(a.positions, a.cell[:], a.numbers, cutoff=1.9)
    rings = sp_rings(len(a), bonds, max_size=20)
    graph = scipy.sparse.coo_matrix((np.ones(len(bonds[0])), bonds[:2]), shape=(len(a),) * 2)
    quotient = scipy.sparse.csgraph.shortest_path(graph.tocsr(), unweighted=True)

    def quotient_sp(ring):
        n = len(ring)
        return all(
            quotient[ring[x], ring[y]] >= min(y - x, n - y + x)
            for x in range(n)
            for y in range(x + 1, n)
        )

    ours = np.bincount([len(r) // 2 for r in rings], minlength=11)
    filtered = np.bincount([len(r) // 2 for r in rings if quotient_sp(r)], minlength=11)
    reference = _matscipy_si_rings(a, 1.9, 10)
    assert ours[10] > filtered[10]  # the box really is too small for matscipy's definition
    np.testing.assert_array_equal(filtered, reference)


def test_unknown_engine_fails():
    a = beta_cristobalite()
    with pytest.raises(ValueError, match="engine"):
        ring_statistics(a.positions, a.cell[:], a.numbers, engine="nope")
