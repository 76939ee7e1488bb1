"""k-space construction: reciprocal vectors, integer sets, envelope, seed set, quadrature."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special

from rsajax.lattice import reciprocal_vectors
from rsajax.nn.rsa.kset import (
    SEED_K_CUT,
    build_kset,
    build_seed_kset,
    integer_kset,
    kset_covers,
    kspace_geometry,
    max_num_k,
    open_quadrature,
    radial_nodes_for,
    seed_kset,
)
from rsajax.nn.rsa.weights import ewald_kernel, smooth_envelope
from tests.nn.rsa.node_graphs import batch_graph

TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 10.0, 0.0], [-1.5, 1.8, 11.0]])


def test_reciprocal_vectors_are_dual_to_the_cell():
    recip = reciprocal_vectors(jnp.asarray(TRICLINIC))
    np.testing.assert_allclose(TRICLINIC @ np.asarray(recip).T, 2 * np.pi * np.eye(3), atol=1e-12)


def test_integer_kset_is_complete_closed_and_sorted():
    k_cut, margin = 1.3, 0.1
    n, mask = integer_kset(TRICLINIC, k_cut, margin, m_max=400)
    chosen = n[mask]
    recip = 2 * np.pi * np.linalg.inv(TRICLINIC).T
    # brute force over a box much larger than the exact bound
    brute = np.array(list(itertools.product(range(-8, 9), repeat=3)))
    norms = np.linalg.norm(brute @ recip, axis=1)
    expected = {tuple(x) for x in brute[(norms <= k_cut * (1 + margin)) & (norms > 0)]}
    assert {tuple(x) for x in chosen} == expected
    assert {tuple(-x) for x in chosen} == expected  # closed under n -> -n
    k_norm = np.linalg.norm(chosen @ recip, axis=1)
    assert np.all(np.diff(k_norm) >= -1e-12)
    assert not mask[len(chosen) :].any() and np.all(n[len(chosen) :] == 0)


def test_integer_kset_errors_are_clear():
    with pytest.raises(ValueError, match="selects no reciprocal"):
        integer_kset(np.eye(3) * 5.0, k_cut=0.5, margin=0.0, name="tiny box")
    with pytest.raises(ValueError, match="m_max=3"):
        integer_kset(np.eye(3) * 20.0, k_cut=1.0, m_max=3)
    with pytest.raises(ValueError, match="singular"):
        integer_kset(np.diag([10.0, 10.0, 0.0]), k_cut=1.0)


def test_batch_kset_masks_the_padding_graph():
    """A batch's lattice sets share one M (the largest need); the padding graph gets none."""
    cubic = np.eye(3) * 12.0
    graph = batch_graph(
        [(np.zeros((1, 3)), cubic, (True,) * 3), (np.zeros((1, 3)), TRICLINIC, (True,) * 3)]
    )
    kset = build_kset(graph, 1.0, margin=0.1)
    n, mask = np.asarray(kset.n), np.asarray(kset.mask)
    single, single_mask = integer_kset(TRICLINIC, 1.0, 0.1)
    assert n.shape[1] == max(integer_kset(cubic, 1.0, 0.1)[1].sum(), single_mask.sum())
    np.testing.assert_array_equal(n[1, : single_mask.sum()], single)
    assert not mask[2].any()


def test_envelope_is_c2_and_reaches_zero():
    k_cut, width = 1.0, 0.2
    env = lambda k: smooth_envelope(k, k_cut, width)  # noqa: E731
    d1, d2 = jax.grad(env), jax.grad(jax.grad(env))
    for edge in (k_cut * (1 - width), k_cut):
        for side in (-1e-9, 1e-9):  # C^2: both derivatives vanish linearly at the edges
            assert abs(d1(edge + side)) < 1e-5 and abs(d2(edge + side)) < 1e-4
    assert env(0.5) == 1.0 and env(k_cut) == 0.0 and env(1.5) == 0.0
    assert 0.0 < env(0.9) < 1.0


def test_kset_covers_tracks_strain():
    cell = np.eye(3) * 15.0
    n, mask = integer_kset(cell, 1.0, margin=0.05)
    assert kset_covers(cell * 1.03, n, mask, 1.0)  # a larger box brings vectors inward
    assert not kset_covers(cell * 1.2, n, mask, 1.0)  # beyond the margin: rebuild


def test_seed_kset_reproduces_the_reference_order():
    n, mask = seed_kset(np.eye(3) * 20.0)
    # C-order enumeration from n_x = -2; (-2,0,0) sits exactly on |k| = 2 pi/10 and the
    # reference's float64 |k|^2 lands just above the cutoff, so it is excluded.
    expected = [(-1, -1, -1), (-1, -1, 0), (-1, -1, 1), (-1, 0, -1), (-1, 0, 0), (-1, 0, 1)]
    assert [tuple(x) for x in n] == expected and mask.all()
    n, mask = seed_kset(np.diag([15.0, 8.0, 8.0]))  # only n = (+-1, 0, 0) are admissible
    assert [tuple(x) for x in n[mask]] == [(-1, 0, 0), (1, 0, 0)] and mask.sum() == 2
    with pytest.raises(ValueError, match="orthorhombic"):
        seed_kset(TRICLINIC)
    with pytest.raises(ValueError, match="empty"):
        seed_kset(np.eye(3) * 9.0)


def test_build_kset_for_a_graph_mixes_periodic_and_open():
    rng = np.random.default_rng(0)
    graph = batch_graph(
        [
            (rng.uniform(0, 12, (5, 3)), np.eye(3) * 12.0, [True] * 3),
            (rng.uniform(0, 5, (4, 3)), np.zeros((3, 3)), [False] * 3),
        ]
    )
    kset = build_kset(graph, k_cut=1.0, num_radial=16)
    assert kset.has_open and kset.periodic.tolist() == [True, False, False]
    assert not kset.mask[2].any()
    # the open graph carries the radial rule, |k| along x, in its first num_radial slots
    nodes, weights = open_quadrature(1.0, envelope_width=0.2, num_radial=16)
    assert kset.mask[1].sum() == 16 and kset.mask[1, :16].all()
    np.testing.assert_array_equal(kset.nodes[1, :16], nodes)
    np.testing.assert_array_equal(kset.node_weights[1, :16], weights)
    assert not kset.nodes[0].any() and not kset.node_weights[0].any()
    kvectors, measure = kspace_geometry(kset, jnp.asarray(graph.cell))
    assert np.all(np.isfinite(kvectors)) and np.all(np.isfinite(measure))
    np.testing.assert_allclose(measure[0][kset.mask[0]], 1 / 12.0**3)
    with pytest.raises(ValueError, match="lattice-only"):
        build_kset(graph, k_cut=1.0, lattice_only=True)
    with pytest.raises(ValueError, match="lattice-only"):
        build_seed_kset(graph)
    box = [(rng.uniform(0, 20, (3, 3)), np.eye(3) * 20.0, [True] * 3)]
    seed = build_seed_kset(batch_graph(box))
    assert seed.num_k == 6 and not seed.smooth and seed.k_cut == SEED_K_CUT


@pytest.mark.parametrize("distance", [0.0, 3.0, 8.0, 15.0])
def test_open_quadrature_integrates_the_fourier_kernel(distance):
    """sum_m w_m 4pi/k^2 e^{-k^2 s^2/2} sinc(|k_m| r) against the radial integral of the angular
    average of e^{i k.r} (the radial rule carries the angles exactly)."""
    k_cut, sigma = 1.2, 1.5
    nodes, weights = open_quadrature(
        k_cut, envelope_width=0.2, num_radial=radial_nodes_for(k_cut, 15.0)
    )
    assert np.all(nodes[:, 1:] == 0) and np.all(np.diff(nodes[:, 0]) > 0)
    k = nodes[:, 0]
    assert 0 < k.min() and k.max() < k_cut
    # the k^2 / (2 pi^2) measure: the volume of the k-ball over (2 pi)^3, exactly
    np.testing.assert_allclose(weights.sum(), 4 / 3 * np.pi * k_cut**3 / (2 * np.pi) ** 3)
    env = np.asarray(smooth_envelope(jnp.asarray(k), k_cut, 0.2))
    f = 4 * np.pi / k**2 * np.exp(-0.5 * sigma**2 * k**2) * env
    approx = np.sum(weights * f * np.sinc(k * distance / np.pi))

    def radial(kk):
        e = float(smooth_envelope(kk, k_cut, 0.2))
        return 4 * np.pi * np.exp(-0.5 * sigma**2 * kk**2) * e * np.sinc(kk * distance / np.pi)

    exact = scipy.integrate.quad(radial, 0, k_cut, points=[k_cut * 0.8], epsabs=1e-14)[0]
    exact *= 4 * np.pi / (2 * np.pi) ** 3
    assert abs(approx - exact) < 1e-7 * abs(exact)


def test_radial_rule_with_ewald_weights_is_the_smeared_coulomb_kernel():
    """phi(r) = sum_m w_m W_ewald(k_m) env(k_m) sinc(k_m r) is erf(r / (sqrt2 sigma)) / r up to the
    Gaussian's truncation at the envelope. Measured (sigma 1.52 A, k_cut 3.06 1/A, 64 nodes,
    r <= 40 A): |phi - exact| <= 1.99e-5 max(r, 1); 48 nodes give the same to 25 A."""
    sigma, k_cut = 1.5195, 3.0577
    nodes, weights = open_quadrature(k_cut, envelope_width=0.2, num_radial=64)
    k = nodes[:, 0]
    w = weights * np.asarray(ewald_kernel(k**2, sigma) * smooth_envelope(k, k_cut, 0.2))
    r = np.linspace(0.0, 40.0, 2001)
    phi = np.sinc(np.outer(r, k) / np.pi) @ w
    safe = np.where(r > 0, r, 1.0)
    exact = np.where(r > 0, scipy.special.erf(r / (np.sqrt(2) * sigma)) / safe, 0.0)
    exact[0] = np.sqrt(2 / np.pi) / sigma  # the limit r -> 0
    assert np.max(np.abs(phi - exact) / np.maximum(r, 1.0)) < 2.5e-5


def test_mixed_boundaries_use_the_lattice_with_vacuum():
    rng = np.random.default_rng(1)
    slab_cell = np.diag([10.0, 10.0, 30.0])  # periodic in x, y; 30 A of vacuum along z
    slab = batch_graph([(rng.uniform(0, 10, (4, 3)), slab_cell, [True, True, False])])
    kset = build_kset(slab, k_cut=1.0)
    assert kset.periodic[0] and not kset.has_open
    np.testing.assert_array_equal(kset.n[0], integer_kset(slab_cell, 1.0, 0.1)[0])
    flat = batch_graph(
        [(rng.uniform(0, 10, (4, 3)), np.diag([10.0, 10.0, 0.0]), [True, True, False])]
    )
    with pytest.raises(ValueError, match="graph 0: the cell is singular"):
        build_kset(flat, k_cut=1.0)


def test_max_num_k_fits_every_structure_of_a_dataset():
    cells = np.stack([np.eye(3) * 12.0, TRICLINIC, np.zeros((3, 3))])
    pbcs = np.array([[True] * 3, [True] * 3, [False] * 3])
    cap = max_num_k(cells[:2], pbcs[:2], 1.0)
    assert cap == max(integer_kset(c, 1.0, 0.1)[1].sum() for c in cells[:2])
    # an open-boundary structure needs num_radial slots (the radial rule), no more
    assert max_num_k(cells, pbcs, 1.0, num_radial=cap + 50) == cap + 50
    assert max_num_k(cells, pbcs, 1.0, num_radial=8) == max(cap, 8)
    assert max_num_k(cells[2:], pbcs[2:], 1.0, num_radial=20) == 20
