"""The spline operators give the same values and derivatives however the atoms are tiled."""

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.nn.rsa import bspline
from rsajax.nn.rsa.grid import MeshSpec
from rsajax.nn.rsa.mesh import _padded_shape, _stencils


def operators_and_gradients(values, flat, stencil, size):
    """spread, interpolate, stencil_dot and the gradient of a scalar through all three."""

    def scalar(values, stencil):
        grid = bspline.spread(values, flat, stencil, size)
        back = bspline.interpolate(grid * grid, flat, stencil)
        return jnp.sum(back * values) + jnp.sum(bspline.stencil_dot(grid, flat, values) ** 2)

    grid = bspline.spread(values, flat, stencil, size)
    return (
        grid,
        bspline.interpolate(grid, flat, stencil),
        bspline.stencil_dot(grid, flat, values),
        *jax.grad(scalar, argnums=(0, 1))(values, stencil),
    )


def test_tiles_of_atoms_change_nothing(monkeypatch):
    rng = np.random.default_rng(0)
    num_atoms, cell = 23, np.diag([5.0, 6.0, 7.0])[None]
    mesh = MeshSpec((8, 9, 10), 4, 1.0)
    positions = jnp.asarray(rng.uniform(0, 1, (num_atoms, 3)) @ cell[0])
    node_graph, node_mask = jnp.zeros(num_atoms, jnp.int32), jnp.ones(num_atoms, bool)
    _, flat, stencil = _stencils(positions, jnp.asarray(cell), node_graph, node_mask, mesh)
    values = jnp.asarray(rng.normal(size=(num_atoms, 3)))
    size = int(np.prod(_padded_shape(mesh)))
    one_tile = operators_and_gradients(values, flat, stencil, size)
    monkeypatch.setattr(bspline, "TILE", 5)  # 5 tiles, the last one padded
    tiled = operators_and_gradients(values, flat, stencil, size)
    for a, b in zip(one_tile, tiled, strict=True):
        assert np.max(np.abs(np.asarray(a))) > 0
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
