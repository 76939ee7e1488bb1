"""Partial g(r): normalisation, coordination, smooth differentiable variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.analysis.rdf import pair_list, partial_rdf, smooth_partial_rdf
from rsajax.analysis.structure_factor import species_onehot
from tests.analysis.structures import beta_cristobalite


def test_ideal_gas_g_is_one():
    """Uniform random positions: every partial g_ab(r) averages to 1 (normalisation check)."""
    rng = np.random.default_rng(0)
    cell = np.diag([12.0, 13.0, 14.0])
    pos = rng.uniform(size=(20, 300, 3)) @ cell
    species = np.where(np.arange(300) < 100, 14, 8)
    rdf = partial_rdf(pos, cell, species, r_max=6.0, n_bins=30)
    far = rdf.r > 2.0
    np.testing.assert_allclose(rdf.g[:, :, far].mean(axis=-1), 1.0, atol=0.03)
    assert rdf.density == pytest.approx(300 / np.prod([12.0, 13.0, 14.0]))


def test_cristobalite_coordination():
    """Si has 4 O and O has 2 Si inside the first minimum of g_SiO (Si-O = 1.550 A)."""
    a = beta_cristobalite() * (2, 2, 2)
    a.rattle(0.05, seed=0)
    rdf = partial_rdf(a.positions, a.cell[:], a.numbers, r_max=5.0, n_bins=250)
    r_min = rdf.first_minimum(14, 8)
    assert 1.6 < r_min < 2.8
    assert rdf.coordination(14, 8) == pytest.approx(4.0, abs=1e-9)
    assert rdf.coordination(8, 14) == pytest.approx(2.0, abs=1e-9)
    assert rdf.r[np.argmax(rdf.pair(14, 8))] == pytest.approx(1.55, abs=0.03)


def test_smooth_rdf_matches_histogram_and_has_correct_gradient():
    a = beta_cristobalite()
    a.rattle(0.1, seed=1)
    kinds, onehot = species_onehot(a.numbers)
    i, j, s, _ = pair_list(a.positions, a.cell[:], 5.0)
    r = np.linspace(0.5, 4.0, 141)
    g_smooth = np.asarray(
        smooth_partial_rdf(a.positions, a.cell[:], onehot, (i, j, s), r, sigma=0.02)
    )
    hist = partial_rdf(a.positions, a.cell[:], a.numbers, r_max=4.0, n_bins=160)
    # same integral (coordination) up to 2.2 A: Gaussian smearing conserves pair counts
    rho_o = np.sum(a.numbers == 8) / a.get_volume()
    assert kinds.tolist() == [8, 14]
    # O neighbours of Si: 4 pi r^2 rho_O g_SiO(r), integrated to 2.2 A
    n_smooth = np.sum((4 * np.pi * r**2 * rho_o * g_smooth[1, 0] * (r[1] - r[0]))[r < 2.2])
    assert n_smooth == pytest.approx(4.0, abs=0.01)
    assert hist.coordination(14, 8, r_cut=2.2) == pytest.approx(4.0, abs=1e-9)
    np.testing.assert_allclose(g_smooth[0, 1], g_smooth[1, 0], rtol=1e-12)

    @jax.jit
    def loss(pos):
        g = smooth_partial_rdf(pos, a.cell[:], onehot, (i, j, s), r, sigma=0.1)
        return jnp.sum((g[0, 1] - 1.0) ** 2)

    pos = jnp.asarray(a.positions)
    grad = np.asarray(jax.grad(loss)(pos))
    h = 1e-5
    for atom, dim in [(0, 0), (9, 2)]:
        step = jnp.zeros_like(pos).at[atom, dim].set(h)
        fd = (loss(pos + step) - loss(pos - step)) / (2 * h)
        assert grad[atom, dim] == pytest.approx(float(fd), rel=1e-6)
    assert np.abs(grad).max() > 1e-3
