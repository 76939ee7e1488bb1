"""A layer's real-space kernel: erf(r / sqrt(2) sigma) / r for Ewald weights, and exactly the pair
weight the RSA block applies between two atoms, for learned weights too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from rsajax.nn.rsa import RSAConfig, real_space_kernel
from rsajax.nn.rsa.kset import build_kset
from rsajax.nn.rsa.layer import RSABlock
from tests.nn.rsa.node_graphs import single_graph

R_MAX = 5.0


def test_ewald_kernel_is_smeared_coulomb():
    """At initialisation (f = 1) every head is erf(r / (sqrt 2 sigma)) / r to the split's
    accuracy (1e-3 of 1/r where the envelope cuts), with or without learned parameters."""
    config = RSAConfig.preset("default").resolved(R_MAX)
    r = np.linspace(0.5, 25.0, 120)
    exact = erf(r / (np.sqrt(2.0) * config.sigma)) / r
    fixed = real_space_kernel(RSAConfig.preset("default", weighting="ewald").resolved(R_MAX), r)
    assert fixed.shape == (120, 2)
    np.testing.assert_allclose(np.asarray(fixed[:, 0]) * r, exact * r, atol=1.1e-3)
    init = {"k_weights": {"coeffs": np.zeros((8, 2)), "bias": np.full(2, np.log(np.e - 1.0))}}
    learned = real_space_kernel(config, r, init)
    np.testing.assert_allclose(np.asarray(learned), np.asarray(fixed), rtol=1e-12, atol=1e-15)


def test_learned_weights_need_their_parameters_and_ones_has_no_kernel():
    config = RSAConfig.preset("default").resolved(R_MAX)
    with pytest.raises(ValueError, match="k_weights"):
        real_space_kernel(config, np.array([1.0]))
    with pytest.raises(ValueError, match="lattice-only"):
        real_space_kernel(RSAConfig(weighting="ones", k_cut=1.0), np.array([1.0]))


def block_args(positions, scalars, k_cut):
    """RSABlock arguments for one open-boundary structure (plus the padding graph)."""
    zero = np.zeros((3, 3))
    graph = single_graph(positions, zero, pbc=(False, False, False))
    return (
        scalars[: len(positions) + 1],
        jnp.concatenate([jnp.asarray(positions, float), jnp.zeros((1, 3))]),
        jnp.stack([jnp.asarray(zero), jnp.eye(3) * 1000.0]),
        build_kset(graph, k_cut, num_radial=64),
        graph.node_graph,
        graph.node_mask,
    )


def test_kernel_is_the_pair_weight_of_the_block():
    """Two atoms in open boundaries: u_0h(r) - u_0h(alone) = phi_h(r) c_h with c_h fixed by the
    atoms' q, k, v; one r fixes c_h and the others must follow phi_h (learned, distinct heads)."""
    config = RSAConfig.preset("default").resolved(R_MAX)
    block = RSABlock(8, num_heads=2, weighting="ewald_learned", sigma=config.sigma)
    rng = np.random.default_rng(3)
    scalars = rng.normal(size=(3, 4))
    pair = lambda d: np.array([[0.0, 0.0, 0.0], [d, 0.0, 0.0]])  # noqa: E731
    shapes = jax.eval_shape(
        block.init, jax.random.PRNGKey(0), *block_args(pair(1.0), scalars, config.k_cut)
    )
    params = jax.tree.map(lambda x: 0.7 * rng.normal(size=x.shape), shapes)

    apply = jax.jit(block.apply)

    def u0(positions):
        return np.asarray(apply(params, *block_args(positions, scalars, config.k_cut)))[0]

    alone = u0(np.zeros((1, 3)))
    distances = np.array([1.5, 3.0, 6.0, 11.0])
    diffs = np.stack([u0(pair(d)) - alone for d in distances])
    phi = np.asarray(real_space_kernel(config, distances, params["params"], num_radial=64))
    assert abs(phi[0, 0] - phi[0, 1]) > 1e-3 * abs(phi[0, 0])  # the heads differ
    for h in range(2):
        block_h = diffs[:, 4 * h : 4 * (h + 1)]
        c_h = block_h[0] / phi[0, h]
        np.testing.assert_allclose(block_h, np.outer(phi[:, h], c_h), rtol=1e-8, atol=1e-12)


def test_a_mirrored_correction_keeps_the_coulomb_tail():
    """``mirrored_correction``: the learned ``f`` is a function of ``k^2`` and a Coulomb head is
    ``f(0) / r`` far away; the plain basis (odd terms in ``|k|``) adds an ``r^-2`` tail, here
    ``-0.12 f(0) / r^2`` (measured: ``r phi / f(0)`` = 0.987 at 10 A, 0.996 at 30 A)."""
    rng = np.random.default_rng(2)
    coeffs = np.zeros((8, 2))
    coeffs[:, 0] = 0.3 * rng.normal(size=8)
    params = {"k_weights": {"coeffs": coeffs, "bias": np.full(2, np.log(np.e - 1.0))}}
    r = np.array([10.0, 15.0, 20.0, 30.0])
    at_zero = np.exp(-((np.linspace(0.0, 1.0, 8) * 7) ** 2)) @ coeffs[:, 0] + np.log(np.e - 1)
    tails = {}
    for mirrored, basis_at_zero in ((False, at_zero), (True, 2 * at_zero - np.log(np.e - 1))):
        config = RSAConfig(mirrored_correction=mirrored).resolved(R_MAX)
        phi = np.asarray(real_space_kernel(config, r, params))[:, 0]
        tails[mirrored] = phi * r / np.log1p(np.exp(basis_at_zero))
    np.testing.assert_allclose(tails[True], 1.0, atol=2e-3)
    excess = (tails[False] - 1.0) * r  # an r^-2 term: constant when multiplied by r
    assert np.all(excess < -0.1) and np.ptp(excess) < 0.02
    with pytest.raises(ValueError, match="mirrored_correction needs a learned"):
        RSAConfig(weighting="ewald", mirrored_correction=True)
