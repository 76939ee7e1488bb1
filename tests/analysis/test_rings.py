"""Shortest-path rings against matscipy.rings.ring_statistics."""

import numpy as np
import pytest
from matscipy.rings import ring_statistics as matscipy_rings

from rsajax.analysis.rings import ring_statistics
from tests.analysis.structures import beta_cristobalite, defective_network


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


def test_unknown_engine_fails():
    a = beta_cristobalite()
    with pytest.raises(ValueError, match="engine"):
        ring_statistics(a.positions, a.cell[:], a.numbers, engine="nope")
