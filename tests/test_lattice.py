"""The shared cell geometry (rows are lattice vectors) that nn.rsa, the teachers and MD call."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.lattice import (
    in_half_space,
    integer_bounds,
    integer_vectors,
    perpendicular_widths,
    reciprocal_vectors,
)

CELL = np.array([[3.9, 0.0, 0.0], [1.1, 3.6, 0.0], [-0.8, 0.7, 4.2]])


def test_reciprocal_vectors_on_the_host_and_traced():
    host = reciprocal_vectors(CELL)
    assert isinstance(host, np.ndarray) and host.dtype == np.float64
    np.testing.assert_allclose(CELL @ host.T, 2 * np.pi * np.eye(3), atol=1e-12)
    traced = jax.jit(reciprocal_vectors)(jnp.asarray(CELL))
    np.testing.assert_allclose(np.asarray(traced), host, rtol=1e-6)


def test_perpendicular_widths_are_plane_spacings_for_one_cell_and_a_stack():
    widths = perpendicular_widths(CELL)
    expected = 2 * np.pi / np.linalg.norm(reciprocal_vectors(CELL), axis=1)
    np.testing.assert_allclose(widths, expected, rtol=1e-12)
    stack = perpendicular_widths(np.stack([CELL, 2 * CELL]))
    np.testing.assert_allclose(stack, [widths, 2 * widths], rtol=1e-12)


def test_integer_vectors_are_every_vector_within_the_radius_in_lexicographic_order():
    radius = 3.0
    n, k_norm = integer_vectors(CELL, radius)
    box = range(-8, 9)
    brute = [
        v
        for v in itertools.product(box, box, box)
        if any(v) and np.linalg.norm(np.array(v) @ reciprocal_vectors(CELL)) <= radius
    ]
    assert [tuple(v) for v in n] == brute  # itertools.product order is lexicographic
    assert np.all(np.abs(n) <= integer_bounds(CELL, radius))
    np.testing.assert_allclose(k_norm, np.linalg.norm(n @ reciprocal_vectors(CELL), axis=1))
    half, _ = integer_vectors(CELL, radius, half_space=True)
    assert len(half) * 2 == len(n)
    assert {tuple(v) for v in half} | {tuple(-v) for v in half} == {tuple(v) for v in n}


def test_half_space_holds_one_of_each_pair_and_not_zero():
    n = np.array([[0, 0, 0], [1, -2, 0], [-1, 2, 0], [0, 0, 3], [0, 0, -3], [0, -1, 5]])
    np.testing.assert_array_equal(in_half_space(n), [False, True, False, True, False, False])
