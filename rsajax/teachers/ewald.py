"""Ewald summation of point charges in a periodic cell, in JAX, shaped for jax-md.

For charges ``q_i`` in a cell ``B`` (columns are lattice vectors, jax-md's convention) and
splitting parameter ``alpha``:

    E = k_e [ 1/2 sum_{i,j,n}' q_i q_j erfc(alpha r_ijn) / r_ijn          (real space, r < r_cut)
            + 4 pi / V sum_{k in half space, |k| < k_cut} exp(-k^2 / 4 alpha^2) / k^2 |S(k)|^2
            - alpha / sqrt(pi) sum_i q_i^2                                 (self energy)
            - pi / (2 V alpha^2) (sum_i q_i)^2 ]                           (neutralising background)

with ``S(k) = sum_j q_j exp(i k . r_j)`` and ``k = 2 pi B^-T n`` for integer ``n``. The real-space
pair term lives in the caller's pair loop (``real_space_pair``); this module supplies the rest.

Why not jax-md's own: in jax-md 0.2.29 ``coulomb_recip_ewald`` takes a cubic side length fixed at
construction (no ``box`` keyword, no strain), ``coulomb_recip_pme`` pops ``box`` from its keywords
before testing for it, so its charge-to-grid map always uses the construction box (wrong under NPT
or strain), and neither adds the self energy. Here the k-vectors are computed from the (strained)
box inside the differentiated function, so forces and stress are exact derivatives; only the set
of integer vectors ``n`` is static, chosen to cover the cut-off sphere for every box within a
given strain margin, and the sphere itself is applied inside (so the energy does not depend on
the margin).
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from rsajax.lattice import integer_vectors, reciprocal_vectors
from rsajax.units import COULOMB_CONSTANT


@dataclasses.dataclass(frozen=True)
class EwaldParameters:
    """Splitting parameter ``alpha`` (1/A), real-space cut-off (A) and k-space cut-off (1/A)."""

    alpha: float
    r_cut: float
    k_cut: float


def ewald_parameters(r_cut: float, accuracy: float = 1e-6) -> EwaldParameters:
    """Balanced parameters: ``erfc(alpha r_cut)`` and ``exp(-k_cut^2 / 4 alpha^2)`` are ~accuracy.

    Args:
        r_cut: real-space cut-off in A (the pair loop must include every pair within it).
        accuracy: relative size of the neglected terms; both sums converge like exp(-s^2) with
            ``s = sqrt(-ln accuracy)``.
    """
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"Ewald accuracy must be in (0, 1), got {accuracy}")
    if r_cut <= 0.0:
        raise ValueError(f"Ewald real-space cut-off must be positive, got {r_cut}")
    s = math.sqrt(-math.log(accuracy))
    alpha = s / r_cut
    return EwaldParameters(alpha=alpha, r_cut=r_cut, k_cut=2.0 * alpha * s)


def reciprocal_integer_vectors(
    box: np.ndarray, k_cut: float, strain_margin: float = 0.0
) -> np.ndarray:
    """(M, 3) int vectors ``n``, one of each pair ``+-n``, ``n != 0``, that can have |k| < k_cut.

    A vector is kept if ``|k| <= k_cut (1 + strain_margin)`` in ``box`` (columns are lattice
    vectors); that covers every box ``(I + eps) box`` with ``||eps|| <= strain_margin``. The half
    space is "first non-zero component positive" (:func:`rsajax.lattice.in_half_space`); the
    order is lexicographic in ``n``.
    """
    box = np.asarray(box, dtype=np.float64)
    n, _ = integer_vectors(box.T, k_cut * (1.0 + strain_margin), half_space=True)  # rows: box.T
    return n


def real_space_pair(r: jnp.ndarray, qq: jnp.ndarray, alpha: float) -> jnp.ndarray:
    """Real-space Ewald energy of pairs at distance ``r`` with charge products ``qq`` (eV)."""
    return COULOMB_CONSTANT * qq * erfc(alpha * r) / r


def reciprocal_energy(
    positions: jnp.ndarray,
    charges: jnp.ndarray,
    box: jnp.ndarray,
    n_vectors: jnp.ndarray,
    alpha: float,
    k_cut: float,
) -> jnp.ndarray:
    """Reciprocal-space Ewald energy (eV).

    Args:
        positions: (N, 3) Cartesian positions (use ``space.transform(box, R_frac)`` in jax-md so
            gradients come out as Cartesian forces).
        charges: (N,) charges in e.
        box: (3, 3) cell, columns are lattice vectors (already strained, if straining).
        n_vectors: (M, 3) integer vectors from :func:`reciprocal_integer_vectors`.
    """
    k = n_vectors.astype(positions.dtype) @ reciprocal_vectors(box.T)  # (M, 3); rows: box.T
    k2 = jnp.sum(k**2, axis=-1)
    inside = k2 < k_cut**2
    safe_k2 = jnp.where(inside, k2, 1.0)
    weight = jnp.where(inside, jnp.exp(-safe_k2 / (4.0 * alpha**2)) / safe_k2, 0.0)
    phase = positions @ k.T  # (N, M)
    s_re = charges @ jnp.cos(phase)
    s_im = charges @ jnp.sin(phase)
    volume = jnp.abs(jnp.linalg.det(box))
    return COULOMB_CONSTANT * 4.0 * jnp.pi / volume * jnp.sum(weight * (s_re**2 + s_im**2))


def self_and_background_energy(charges: jnp.ndarray, box: jnp.ndarray, alpha: float) -> jnp.ndarray:
    """Self energy of the screening Gaussians plus the neutralising background (eV).

    ``-k_e alpha / sqrt(pi) sum q^2 - k_e pi Q^2 / (2 V alpha^2)``; the second is zero for a neutral
    cell (it is what pymatgen and most codes add for a charged one).
    """
    volume = jnp.abs(jnp.linalg.det(box))
    total = jnp.sum(charges)
    self_energy = -alpha / jnp.sqrt(jnp.pi) * jnp.sum(charges**2)
    background = -jnp.pi * total**2 / (2.0 * volume * alpha**2)
    return COULOMB_CONSTANT * (self_energy + background)
