"""cos_turns and cos_sin_turns: cos and sin of 2 pi x from phases in turns, against numpy in
float64, with their derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.phases import cos_sin_turns, cos_turns

#: Turns over many periods, both signs, and the quadrant boundaries (multiples of 1/4, where
#: the reduction switches branches) with their neighbours one float32 ulp away.
BOUNDARIES = np.arange(-12, 13) / 4.0
TURNS = np.concatenate(
    [
        np.random.default_rng(0).uniform(-60.0, 60.0, 20000),
        BOUNDARIES,
        np.nextafter(BOUNDARIES.astype(np.float32), np.float32(np.inf)).astype(np.float64),
        np.nextafter(BOUNDARIES.astype(np.float32), np.float32(-np.inf)).astype(np.float64),
    ]
)


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-7), (np.float64, 1e-15)])
def test_cos_and_sin_match_numpy_at_the_dtype_precision(dtype, tolerance):
    x = np.asarray(TURNS, dtype)
    # reference: the rounded input, reduced exactly in float64 before the angle is formed
    reduced = x.astype(np.float64) - np.round(x.astype(np.float64))
    exact = 2.0 * np.pi * reduced
    got_cos = np.asarray(jax.jit(cos_turns)(jnp.asarray(x)), np.float64)
    got_sin = np.asarray(jax.jit(lambda t: cos_turns(t - 0.25))(jnp.asarray(x)), np.float64)
    assert got_cos.dtype == np.float64 and jax.jit(cos_turns)(jnp.asarray(x)).dtype == dtype
    # sin is cos at x - 1/4, and that subtraction rounds by up to half an ulp of x
    sin_tolerance = tolerance + 2.0 * np.pi * np.max(np.spacing(np.abs(x))).astype(np.float64)
    assert np.max(np.abs(got_cos - np.cos(exact))) <= tolerance
    assert np.max(np.abs(got_sin - np.sin(exact))) <= sin_tolerance
    # exact values at the quadrant boundaries: cos(k pi / 2) is 0 or +-1 with no rounding
    b = jnp.asarray(BOUNDARIES, dtype)
    assert np.array_equal(np.asarray(cos_turns(b)), np.round(np.cos(2 * np.pi * BOUNDARIES)))


def test_first_and_second_derivatives_are_analytic():
    x = jnp.asarray(np.random.default_rng(1).uniform(-5.0, 5.0, 64))
    first = jax.vmap(jax.grad(cos_turns))(x)
    second = jax.vmap(jax.grad(jax.grad(cos_turns)))(x)
    angle = 2.0 * np.pi * np.asarray(x)
    np.testing.assert_allclose(first, -2.0 * np.pi * np.sin(angle), rtol=0, atol=1e-13)
    np.testing.assert_allclose(second, -((2.0 * np.pi) ** 2) * np.cos(angle), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-7), (np.float64, 1e-15)])
def test_cos_sin_turns_match_numpy_and_are_exact_at_the_quadrant_boundaries(dtype, tolerance):
    x = np.asarray(TURNS, dtype)
    exact = 2.0 * np.pi * (x.astype(np.float64) - np.round(x.astype(np.float64)))
    cos, sin = jax.jit(cos_sin_turns)(jnp.asarray(x))
    assert cos.dtype == dtype and sin.dtype == dtype
    assert np.max(np.abs(np.asarray(cos, np.float64) - np.cos(exact))) <= tolerance
    assert np.max(np.abs(np.asarray(sin, np.float64) - np.sin(exact))) <= tolerance
    np.testing.assert_array_equal(cos, jax.jit(cos_turns)(jnp.asarray(x)))
    b_cos, b_sin = cos_sin_turns(jnp.asarray(BOUNDARIES, dtype))
    assert np.array_equal(np.asarray(b_cos), np.round(np.cos(2 * np.pi * BOUNDARIES)))
    assert np.array_equal(np.asarray(b_sin), np.round(np.sin(2 * np.pi * BOUNDARIES)))


def test_cos_sin_turns_derivatives_to_second_order():
    x = jnp.asarray(np.random.default_rng(2).uniform(-5.0, 5.0, 64))
    angle, two_pi = 2.0 * np.pi * np.asarray(x), 2.0 * np.pi

    def sin(t):
        return cos_sin_turns(t)[1]

    np.testing.assert_allclose(jax.vmap(jax.grad(sin))(x), two_pi * np.cos(angle), atol=1e-13)
    np.testing.assert_allclose(
        jax.vmap(jax.grad(jax.grad(sin)))(x), -(two_pi**2) * np.sin(angle), atol=1e-12
    )
    # forward mode too (jax.jacfwd), as MD's and training's derivatives may use it
    np.testing.assert_allclose(
        jax.vmap(jax.jacfwd(jax.grad(sin)))(x), -(two_pi**2) * np.sin(angle), atol=1e-12
    )
