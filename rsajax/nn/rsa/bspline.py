"""Cardinal B-spline spreading and interpolation on a periodic grid, with custom derivatives.

The particle-mesh half of :mod:`rsajax.nn.rsa.mesh`: values at atoms are spread onto grid points
with tensor-product B-spline weights (``P^T``), fields are interpolated back (``P``), and the
derivative of either with respect to the stencil weights is :func:`stencil_dot`. The three are
closed under differentiation, so forces, stress and force-matching gradients (second order) all
run without storing per-offset residuals.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def bspline_weights(x: jnp.ndarray, order: int) -> jnp.ndarray:
    """Cardinal B-spline values ``M_p(x + j)``, ``j = 0 .. p-1``, for ``x`` in [0, 1): (..., p).

    Recursion ``M_n(y) = (y M_{n-1}(y) + (n - y) M_{n-1}(y - 1)) / (n - 1)`` from ``M_2``.
    """
    if order < 2:
        raise ValueError(f"B-spline order must be >= 2, got {order}")
    shift = jnp.arange(order, dtype=x.dtype)
    y = x[..., None] + shift  # (..., p)
    w = jnp.where(shift == 0, x[..., None], jnp.where(shift == 1, 1.0 - x[..., None], 0.0))
    for n in range(3, order + 1):
        previous = jnp.concatenate([jnp.zeros_like(w[..., :1]), w[..., :-1]], axis=-1)
        w = (y * w + (n - y) * previous) / (n - 1)
    return w


def spline_transform(shape: tuple[int, int, int], order: int, dtype) -> jnp.ndarray:
    """Fourier transform of the centred spline at the grid frequencies, ``prod_a sinc(n_a/K_a)^p``,
    (K1 K2 K3,) in FFT order (constant)."""
    factors = [np.sinc(np.fft.fftfreq(k)) ** order for k in shape]
    return jnp.asarray(np.einsum("i,j,k->ijk", *factors).reshape(-1), dtype)


# Spreading (P^T), interpolation (P) and the stencil derivative are written as scans over the
# p^3 stencil offsets with custom derivatives that are again these three operators. Plain
# autodiff of the scans would store an (atoms x channels) residual per offset, p^3 of them
# (10 GB at 12000 atoms); with these rules memory stays O(N C^2 + K C^2) at any derivative order.
# Contract: ``flat`` (T, N) holds in-bounds indices, non-decreasing along N for every offset t
# (rsajax.nn.rsa.mesh sorts atoms by stencil origin on a halo-padded grid); telling XLA so makes
# its CPU scatter ~2.4x faster. Unsorted or out-of-bounds indices give undefined results.
_IN_BOUNDS = "promise_in_bounds"
#: Atoms per tile. The offsets loop runs inside a loop over tiles of consecutive (sorted, so
#: spatially close) atoms: each tile's p^3 scatters touch a small region of the grid that stays
#: in cache, instead of sweeping the whole grid p^3 times (which made the cost per atom grow
#: with the grid's size, i.e. with N).
TILE = 256


def _tiles(flat: jnp.ndarray, per_offset: jnp.ndarray, tile: int):
    """(T, N) indices and per-(offset, atom) values -> (num_tiles, T, tile) each, padded with
    the last index (keeps every row sorted) and zeros."""
    offsets, num_atoms = flat.shape
    tile = max(1, min(tile, num_atoms))
    num_tiles = -(-num_atoms // tile)
    pad = num_tiles * tile - num_atoms
    flat = jnp.concatenate([flat, jnp.broadcast_to(flat[:, -1:], (offsets, pad))], axis=1)
    per_offset = jnp.pad(per_offset, ((0, 0), (0, pad)))

    def split(x):
        return x.reshape(offsets, num_tiles, tile).transpose(1, 0, 2)

    return split(flat), split(per_offset)


def _atom_tiles(values: jnp.ndarray, tile: int) -> jnp.ndarray:
    """(N, B) -> (num_tiles, tile, B), zero-padded (the tiling of :func:`_tiles`)."""
    tile = max(1, min(tile, values.shape[0]))
    num_tiles = -(-values.shape[0] // tile)
    values = jnp.pad(values, ((0, num_tiles * tile - values.shape[0]), (0, 0)))
    return values.reshape(num_tiles, tile, values.shape[-1])


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def spread(values: jnp.ndarray, flat: jnp.ndarray, stencil: jnp.ndarray, size: int) -> jnp.ndarray:
    """``grid[m] = sum_t sum_{n: flat[t, n] = m} stencil[t, n] values[n]``: (N, B) -> (size, B)."""
    flat_tiles, stencil_tiles = _tiles(flat, stencil, TILE)

    def tile_step(grid, tile):
        indices, weights, rows = tile

        def step(grid, point):
            index, weight = point
            update = weight[:, None] * rows
            return grid.at[index].add(update, mode=_IN_BOUNDS, indices_are_sorted=True), None

        return jax.lax.scan(step, grid, (indices, weights))[0], None

    empty = jnp.zeros((size, values.shape[-1]), values.dtype)
    tiles = (flat_tiles, stencil_tiles, _atom_tiles(values, TILE))
    return jax.lax.scan(tile_step, empty, tiles)[0]


@jax.custom_vjp
def interpolate(grid: jnp.ndarray, flat: jnp.ndarray, stencil: jnp.ndarray) -> jnp.ndarray:
    """``out[n] = sum_t stencil[t, n] grid[flat[t, n]]``: (size, B) -> (N, B)."""
    grid = jnp.asarray(grid)
    flat_tiles, stencil_tiles = _tiles(flat, stencil, TILE)

    def tile_step(_, tile):
        indices, weights = tile

        def step(total, point):
            index, weight = point
            rows = grid.at[index].get(mode=_IN_BOUNDS, indices_are_sorted=True)
            return total + weight[:, None] * rows, None

        empty = jnp.zeros((indices.shape[1], grid.shape[-1]), grid.dtype)
        return None, jax.lax.scan(step, empty, (indices, weights))[0]

    out = jax.lax.scan(tile_step, None, (flat_tiles, stencil_tiles))[1]
    return out.reshape(-1, grid.shape[-1])[: flat.shape[1]]


@jax.custom_vjp
def stencil_dot(grid: jnp.ndarray, flat: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
    """``out[t, n] = grid[flat[t, n]] . values[n]``: the stencil-weight derivative, (T, N)."""
    grid = jnp.asarray(grid)
    flat_tiles, _ = _tiles(flat, jnp.zeros(flat.shape, values.dtype), TILE)

    def tile_step(_, tile):
        indices, rows = tile

        def row(index):
            return jnp.sum(grid.at[index].get(mode=_IN_BOUNDS, indices_are_sorted=True) * rows, -1)

        return None, jax.lax.map(row, indices)

    out = jax.lax.scan(tile_step, None, (flat_tiles, _atom_tiles(values, TILE)))[1]
    return out.transpose(1, 0, 2).reshape(flat.shape[0], -1)[:, : flat.shape[1]]


def _spread_fwd(values, flat, stencil, size):
    return spread(values, flat, stencil, size), (values, flat, stencil)


def _spread_bwd(size, residuals, cotangent):
    values, flat, stencil = residuals
    return (
        interpolate(cotangent, flat, stencil),
        None,
        stencil_dot(cotangent, flat, values),
    )


def _interpolate_fwd(grid, flat, stencil):
    return interpolate(grid, flat, stencil), (grid, flat, stencil)


def _interpolate_bwd(residuals, cotangent):
    grid, flat, stencil = residuals
    return (
        spread(cotangent, flat, stencil, grid.shape[0]),
        None,
        stencil_dot(grid, flat, cotangent),
    )


def _stencil_dot_fwd(grid, flat, values):
    return stencil_dot(grid, flat, values), (grid, flat, values)


def _stencil_dot_bwd(residuals, cotangent):
    grid, flat, values = residuals
    return (
        spread(values, flat, cotangent, grid.shape[0]),
        None,
        interpolate(grid, flat, cotangent),
    )


spread.defvjp(_spread_fwd, _spread_bwd)
interpolate.defvjp(_interpolate_fwd, _interpolate_bwd)
stencil_dot.defvjp(_stencil_dot_fwd, _stencil_dot_bwd)
