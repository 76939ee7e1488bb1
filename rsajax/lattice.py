"""Cell geometry shared by the model, the teachers and MD: reciprocal vectors, face widths and the
integer k-vectors within a radius.

Convention: a **cell** holds the lattice vectors as **rows** (the convention of ASE and of
:class:`rsajax.graph.Graph`), ``cell[..., i, :] = a_i``. jax-md boxes hold them as columns;
callers with a box pass ``box.T`` (``np.swapaxes(boxes, -1, -2)`` for a stack) and say so where
they do.

Integer vectors ``n`` stand for the reciprocal lattice vectors ``k = n B`` with
``B = 2 pi inv(cell)^T`` (:func:`reciprocal_vectors`), so that ``k . a_i = 2 pi n_i``.

Everything here is host-side numpy except :func:`reciprocal_vectors`, which also runs inside
``jit`` (given a jax array it computes with jax, so derivatives in the cell are exact). This
module imports nothing from rsajax.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

TWO_PI = 2.0 * np.pi


def reciprocal_vectors(cell):
    """Reciprocal lattice vectors ``B = 2 pi inv(cell)^T`` (rows), so ``cell @ B.T = 2 pi I``.

    Args:
        cell: (..., 3, 3) lattice vectors as rows; a numpy array (host, float64 stays float64) or
            a jax array (traced, differentiable in ``cell``).
    Returns:
        (..., 3, 3) reciprocal vectors as rows, of the same array kind as ``cell``.
    """
    xp = np if isinstance(cell, np.ndarray) else jnp
    return TWO_PI * xp.swapaxes(xp.linalg.inv(cell), -1, -2)


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """(..., 3) distances between opposite faces of cells (..., 3, 3) with lattice vectors as rows.

    Width ``i`` is ``V / |a_j x a_k|``: the spacing of the lattice planes spanned by the other two
    vectors (a sphere of diameter ``min(widths)`` fits in the cell).
    """
    cell = np.asarray(cell, dtype=np.float64)
    volume = np.abs(np.linalg.det(cell))
    a, b, c = cell[..., 0, :], cell[..., 1, :], cell[..., 2, :]
    areas = np.stack([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=-2)
    return volume[..., None] / np.linalg.norm(areas, axis=-1)


def integer_bounds(cell: np.ndarray, radius: float) -> np.ndarray:
    """(3,) largest ``|n_i|`` of any ``n`` with ``|k_n| <= radius``: ``|n_i| = |k . a_i| / 2 pi
    <= radius |a_i| / 2 pi`` (equality for ``k`` along ``a_i``, so the bound is tight)."""
    return np.floor(radius * np.linalg.norm(cell, axis=-1) / TWO_PI).astype(int)


def in_half_space(n: np.ndarray) -> np.ndarray:
    """(M,) bool: the first non-zero component of ``n`` (M, 3) is positive. Exactly one of each
    pair ``(n, -n)``, ``n != 0``, is in the half space; ``n = 0`` is not."""
    n = np.asarray(n)
    return n[np.arange(len(n)), np.argmax(n != 0, axis=1)] > 0


def integer_vectors(
    cell: np.ndarray, radius: float, half_space: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Every integer ``n != 0`` with ``|2 pi n inv(cell)^T| <= radius``, and its ``|k|``.

    Args:
        cell: (3, 3) lattice vectors as rows.
        radius: in 1/A.
        half_space: keep one of each ``(n, -n)`` pair (:func:`in_half_space`).
    Returns:
        n (M, 3) int64 in lexicographic order (``n_1`` slowest, each component ascending from
        negative), and |k| (M,) in 1/A. Empty when no vector is that short.
    """
    cell = np.asarray(cell, dtype=np.float64)
    bound = integer_bounds(cell, radius)
    axes = [np.arange(-b, b + 1) for b in bound]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    k_norm = np.linalg.norm(grid @ reciprocal_vectors(cell), axis=1)
    keep = (k_norm <= radius) & np.any(grid != 0, axis=1)
    if half_space:
        keep &= in_half_space(grid)
    return grid[keep], k_norm[keep]
