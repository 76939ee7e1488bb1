"""Reciprocal-space attention on a mesh: smooth particle-mesh evaluation, O(N log N).

The direct kernel (:func:`rsajax.nn.rsa.kernel.reciprocal_space_attention`) sums over the ``M``
lattice vectors with ``|k| <= k_cut``; at fixed ``k_cut``, ``M`` grows with the volume and the
cost is ``O(N M C^2 / H) = O(N^2)``. Here the same sums are evaluated as in smooth PME
(Essmann et al. 1995). With fractional coordinates ``s_j = r_j inv(cell)`` and integer
frequencies ``n`` (``k_n . r_j = 2 pi n . s_j``), per graph and head::

    S(n) = sum_j conj(kc_j) (x) v_j exp(-2 pi i n . s_j)             (D/2, D) complex
    u_i  = Re[ qc_i^T sum_n w(n) exp(+2 pi i n . s_i) S(n) ]

1. spread the amplitudes ``a_j = conj(kc_j) (x) v_j`` onto a ``K1 x K2 x K3`` grid in fractional
   coordinates with centred cardinal B-splines of order ``p``;
2. FFT; divide by the B-spline's Fourier transform ``W(n/K)`` twice (once for the spreading, once
   for the interpolation), multiply by ``w(n)``;
3. inverse FFT and interpolate the field back at every atom with the same B-splines.

The only approximation is aliasing: ``exp(-2 pi i n u / K)`` is represented by the spline up to
terms of relative size ``(|n| / (K - |n|))^p``, so the error falls geometrically with the order and
with the oversampling ``K / (2 n_max + 1)``. The mesh energy is an exact, smooth function of the
positions and the cell (the cell enters through ``s = r inv(cell)`` and ``w(|k_n|)``), so forces
and stress by autodiff are exactly its derivatives. It is exactly invariant to wrapping atoms by
lattice vectors and to translations by a grid vector; arbitrary translations are invariant only to
the mesh accuracy.

Cost per atom: ``O(p^3 C^2 / H)`` for spreading and interpolation plus ``O(K log K C^2 / H)`` per
grid point for the FFTs, ``K ~ V``: flat per atom at fixed density up to the log.

The spline operators live in :mod:`rsajax.nn.rsa.bspline`; the grid (host side: its shape, the
:class:`~rsajax.nn.rsa.grid.MeshSpec`, the batch's ``graph.kset``; traced: its frequencies as a
k-set, :func:`~rsajax.nn.rsa.grid.mesh_kset`) in :mod:`rsajax.nn.rsa.grid`; the weights ``w(n)``
on the grid frequencies are those of the direct kernel
(:func:`rsajax.nn.rsa.weights.mesh_kweights`).
Here: :func:`mesh_attention`, the kernel. In RSA-MACE it is selected by
``RSAConfig(evaluation="mesh")`` (:class:`rsajax.nn.rsa.layer.RSABlock`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rsajax.nn.rsa.bspline import bspline_weights, interpolate, spline_transform, spread
from rsajax.nn.rsa.grid import MeshSpec
from rsajax.nn.rsa.kernel import queries_and_amplitudes


def _padded_shape(mesh: MeshSpec) -> tuple[int, int, int]:
    """Grid with a halo of ``p - 1`` points per axis, so a stencil never wraps (folded later)."""
    return tuple(k + mesh.order - 1 for k in mesh.shape)


def _stencils(positions, cell, node_graph, node_mask, mesh: MeshSpec):
    """Every atom's ``p^3`` stencil on the padded grid, atoms sorted by stencil origin.

    Returns:
        order (N,) the permutation applied to the atoms; flat (p^3, N) int32 indices into the
        padded grid (non-decreasing along atoms for every offset, as the scatter is told);
        weight (p^3, N), zero on padded nodes.
    """
    order, shape = mesh.order, np.array(mesh.shape)
    # A zero (open / padding) cell is never inverted: keeps values and gradients finite.
    eye = jnp.eye(3, dtype=cell.dtype)
    safe_cell = jnp.where(jnp.abs(jnp.linalg.det(cell))[:, None, None] > 1e-9, cell, eye)
    frac = jnp.einsum("ni,nij->nj", positions, jnp.linalg.inv(safe_cell)[node_graph])
    u = frac * shape  # grid coordinates
    lower = jnp.floor(u - order / 2.0)
    x = u - order / 2.0 - lower  # in [0, 1)
    weights = bspline_weights(x, order)[..., ::-1]  # weight of grid point lower + 1 + t
    origin = (lower.astype(jnp.int32) + 1) % shape  # (N, 3) in [0, K)
    p1, p2, p3 = _padded_shape(mesh)
    graph = jnp.where(node_mask, node_graph, 0)  # padded nodes may sit beyond num_graphs
    base = ((graph * p1 + origin[:, 0]) * p2 + origin[:, 1]) * p3 + origin[:, 2]
    base = jnp.where(node_mask, base, 0)
    offsets = np.arange(order)
    offsets = ((offsets[:, None, None] * p2 + offsets[None, :, None]) * p3 + offsets).reshape(-1)
    weight = weights[:, 0, :, None, None] * weights[:, 1, None, :, None]
    weight = (weight * weights[:, 2, None, None, :]).reshape(len(base), -1)
    weight = jnp.where(node_mask[:, None], weight, 0.0)
    permutation = jnp.argsort(base)
    base, weight = base[permutation], weight[permutation]
    return permutation, base[None, :] + jnp.asarray(offsets, jnp.int32)[:, None], weight.T


def _fold(grid: jnp.ndarray, mesh: MeshSpec) -> jnp.ndarray:
    """(G, P1, P2, P3, B) padded grid -> (G, K1, K2, K3, B): halo points added periodically."""
    for axis, k in enumerate(mesh.shape, start=1):
        padded = grid.shape[axis]
        repeats = -(-padded // k)
        widths = [(0, 0)] * grid.ndim
        widths[axis] = (0, repeats * k - padded)
        grid = jnp.pad(grid, widths)
        new_shape = grid.shape[:axis] + (repeats, k) + grid.shape[axis + 1 :]
        grid = grid.reshape(new_shape).sum(axis=axis)
    return grid


def _unfold(field: jnp.ndarray, mesh: MeshSpec) -> jnp.ndarray:
    """(G, K1, K2, K3, B) periodic field -> (G, P1, P2, P3, B) with its periodic halo."""
    for axis, (k, padded) in enumerate(zip(mesh.shape, _padded_shape(mesh), strict=True), 1):
        field = jnp.take(field, np.arange(padded) % k, axis=axis)
    return field


def mesh_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    positions: jnp.ndarray,
    cell: jnp.ndarray,
    kweights: jnp.ndarray,
    node_graph: jnp.ndarray,
    num_graphs: int,
    mesh: MeshSpec,
    node_mask: jnp.ndarray | None = None,
    num_heads: int = 1,
    neutral: bool = False,
    total_amplitude: jnp.ndarray | None = None,
    dispersion_heads: int = 0,
) -> jnp.ndarray:
    """RSA steps 3-5 by particle-mesh Ewald-style evaluation; same semantics as the direct kernel.

    Args:
        q, k, v: (N, C) activated queries, keys, values (as for the direct kernel).
        positions: (N, 3) Cartesian positions (any image; the phases are periodic).
        cell: (G, 3, 3) lattice vectors as rows (the strained cell, for stress).
        kweights: (G, K1 K2 K3) or (G, K1 K2 K3, H) weights on the grid frequencies in FFT order,
            from :func:`~rsajax.nn.rsa.weights.mesh_kweights` (or the other weights of
            :mod:`rsajax.nn.rsa.weights` on :func:`~rsajax.nn.rsa.grid.mesh_kset`); zero at
            ``n = 0``, beyond ``k_cut`` and on non-periodic graphs.
        node_graph: (N,) graph of each node; num_graphs: G (static).
        mesh: the static grid; every graph of the batch uses ``mesh.shape``.
        node_mask: (N,) bool; padded nodes neither contribute nor receive.
        num_heads: H; ``C / H`` must be even.
        neutral: remove each graph's mean source amplitude
            (:func:`~rsajax.nn.rsa.kernel.neutralize`).
        total_amplitude: (G, H, D/2, D) complex, with ``neutral``: each graph's prescribed
            amplitude sum (a charged cell's net charge); None: zero.
        dispersion_heads: the last ``H_d`` heads are not neutralised (as for the direct kernel).
    Returns:
        u: (N, C), zero on padded nodes.
    """
    num_nodes, channels = q.shape
    if channels % (2 * num_heads):
        raise ValueError(f"channels={channels} must be a multiple of 2 * num_heads={num_heads}")
    width = channels // num_heads
    grid_size = int(np.prod(mesh.shape))
    if kweights.shape[:2] != (num_graphs, grid_size):
        raise ValueError(
            f"kweights has shape {kweights.shape}, expected ({num_graphs}, {grid_size}[, H]) for "
            f"the mesh {mesh.shape}"
        )
    if node_mask is None:
        node_mask = jnp.ones(num_nodes, dtype=bool)
    weights = kweights if kweights.ndim == 3 else kweights[..., None]
    weights = jnp.broadcast_to(weights, (num_graphs, grid_size, num_heads))

    qc, amplitudes = queries_and_amplitudes(
        q, k, v, node_graph, node_mask, num_graphs, num_heads, neutral, total_amplitude,
        dispersion_heads,
    )  # fmt: skip
    amplitudes = amplitudes.reshape(num_nodes, -1)
    permutation, flat, stencil = _stencils(positions, cell, node_graph, node_mask, mesh)
    # Real view of the complex amplitudes (real parts, then imaginary parts): the spline
    # operators are real-linear, and their custom derivatives stay real.
    real_view = jnp.concatenate([amplitudes.real, amplitudes.imag], axis=-1)[permutation]
    padded = _padded_shape(mesh)
    grid = spread(real_view, flat, stencil, num_graphs * int(np.prod(padded)))
    grid = _fold(grid.reshape(num_graphs, *padded, -1), mesh)
    half = amplitudes.shape[-1]
    spectrum = jnp.fft.fftn(grid[..., :half] + 1j * grid[..., half:], axes=(1, 2, 3))
    transform = spline_transform(mesh.shape, mesh.order, weights.dtype)
    influence = (weights / (transform**2)[None, :, None]).reshape(num_graphs, *mesh.shape, -1)
    spectrum = spectrum.reshape(*spectrum.shape[:4], num_heads, -1) * influence[..., None]
    # ifftn divides by K1 K2 K3; the sum over n carries no such factor.
    field = jnp.fft.ifftn(spectrum, axes=(1, 2, 3)).reshape(*grid.shape[:4], -1) * grid_size
    field = _unfold(jnp.concatenate([field.real, field.imag], axis=-1), mesh)
    readout = interpolate(field.reshape(-1, field.shape[-1]), flat, stencil)
    readout = jnp.zeros_like(readout).at[permutation].set(readout)  # back to the atoms' order
    readout = readout[:, :half] + 1j * readout[:, half:]
    readout = readout.reshape(num_nodes, num_heads, width // 2, width)
    u = jnp.real(jnp.einsum("nhp,nhpd->nhd", qc, readout)).reshape(num_nodes, channels)
    return jnp.where(node_mask[:, None], u, 0.0)
