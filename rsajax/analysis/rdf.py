"""Partial radial distribution functions g_ab(r) and coordination numbers.

Pairs come from a periodic neighbour list (vesin), so any triclinic cell works and ``r_max`` may
exceed half the box (all images are counted). Two estimators share one normalisation:

- :func:`partial_rdf`: a histogram (numpy), for analysis;
- :func:`smooth_partial_rdf`: Gaussian-smeared counts in JAX, differentiable in positions, on a
  fixed pair list (``pairs``), for gradient-based fitting to a target g(r).

``g_ab(r) = V / (N_a N_b) * n_ab(r) / (4 pi r^2)`` where ``n_ab(r) dr`` counts ordered pairs
(i in a, j in b) with distance in [r, r + dr].
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import vesin

from rsajax.analysis.structure_factor import species_onehot

Array = jnp.ndarray | np.ndarray


def pair_list(positions: Array, cell: Array, r_max: float) -> tuple[np.ndarray, ...]:
    """Ordered pairs within ``r_max`` (both i->j and j->i): ``(i, j, shifts, distances)``.

    Vector of pair p is ``positions[j] - positions[i] + shifts[p] @ cell``.
    """
    nl = vesin.NeighborList(cutoff=float(r_max), full_list=True)
    i, j, s, d = nl.compute(
        np.asarray(positions, dtype=np.float64), np.asarray(cell, dtype=np.float64), True, "ijSd"
    )
    return i.astype(np.int64), j.astype(np.int64), s.astype(np.int64), d


@dataclass(frozen=True)
class RDF:
    """Partial g_ab(r), averaged over frames.

    Attributes:
        r: (B,) bin centres, A.
        g: (S, S, B) partial g_ab(r).
        species: (S,) atomic numbers.
        density: number density N / V, 1/A^3 (frame mean).
        concentrations: (S,) c_a.
    """

    r: np.ndarray
    g: np.ndarray
    species: np.ndarray
    density: float
    concentrations: np.ndarray

    def pair(self, za: int, zb: int) -> np.ndarray:
        """(B,) g_ab(r) for atomic numbers ``za``, ``zb``."""
        ia = int(np.flatnonzero(self.species == za)[0])
        ib = int(np.flatnonzero(self.species == zb)[0])
        return self.g[ia, ib]

    def running_coordination(self, za: int, zb: int) -> np.ndarray:
        """(B,) mean number of b neighbours of an a atom within the upper edge of each bin."""
        dr = self.r[1] - self.r[0]
        cb = self.concentrations[np.flatnonzero(self.species == zb)[0]]
        # exact shell volumes, the inverse of the histogram normalisation
        vol = 4.0 / 3.0 * np.pi * ((self.r + dr / 2) ** 3 - (self.r - dr / 2) ** 3)
        shell = vol * self.density * cb * self.pair(za, zb)
        return np.cumsum(shell)

    def first_minimum(self, za: int, zb: int, search: float = 1.2) -> float:
        """Position of the first minimum after the first peak of g_ab (A).

        The minimum is searched from the highest peak up to ``search`` A beyond it, on g
        smoothed by a 3-bin running mean; for Si-O in silica this lands at about 2.0-2.3 A.
        """
        g = np.convolve(self.pair(za, zb), np.ones(3) / 3.0, mode="same")
        peak = int(np.argmax(g))
        dr = self.r[1] - self.r[0]
        stop = min(len(g), peak + int(round(search / dr)) + 1)
        return float(self.r[peak + int(np.argmin(g[peak:stop]))])

    def mean_distance(self, za: int, zb: int, r_cut: float | None = None) -> float:
        """Mean a-b distance over pairs closer than ``r_cut`` (default: first minimum), A.

        More robust than the position of the highest bin for short, noisy runs.
        """
        r_cut = self.first_minimum(za, zb) if r_cut is None else r_cut
        shell = np.diff(self.running_coordination(za, zb), prepend=0.0)
        inside = self.r < r_cut
        return float(np.sum(self.r[inside] * shell[inside]) / np.sum(shell[inside]))

    def coordination(self, za: int, zb: int, r_cut: float | None = None) -> float:
        """Mean number of b neighbours of an a atom within ``r_cut`` (default: first minimum)."""
        r_cut = self.first_minimum(za, zb) if r_cut is None else r_cut
        n = self.running_coordination(za, zb)
        return float(n[np.searchsorted(self.r, r_cut) - 1])


def partial_rdf(
    positions: Array, cells: Array, species: Array, r_max: float = 8.0, n_bins: int = 400
) -> RDF:
    """Histogram estimate of the partial g_ab(r) over frames.

    Args:
        positions: (F, N, 3) or (N, 3), A.
        cells: (F, 3, 3) or (3, 3) lattice vectors as rows, A.
        species: (N,) atomic numbers.
    """
    positions = np.asarray(positions, dtype=np.float64)
    positions = positions[None] if positions.ndim == 2 else positions
    cells = np.broadcast_to(np.asarray(cells, dtype=np.float64), (len(positions), 3, 3))
    kinds, onehot = species_onehot(species)
    label = np.argmax(onehot, axis=1)
    n_s = len(kinds)
    n_a = onehot.sum(axis=0)
    edges = np.linspace(0.0, r_max, n_bins + 1)
    r = 0.5 * (edges[1:] + edges[:-1])
    shell_vol = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = np.zeros((n_s, n_s, n_bins))
    dens = []
    for pos, cell in zip(positions, cells, strict=True):
        vol = abs(np.linalg.det(cell))
        i, j, _, d = pair_list(pos, cell, r_max)
        key = (label[i] * n_s + label[j]) * n_bins + np.minimum((d / r_max * n_bins), n_bins - 1)
        hist = np.bincount(key.astype(np.int64), minlength=n_s * n_s * n_bins)
        g += hist.reshape(n_s, n_s, n_bins) * vol / np.outer(n_a, n_a)[..., None] / shell_vol
        dens.append(len(pos) / vol)
    return RDF(
        r=r,
        g=g / len(positions),
        species=kinds,
        density=float(np.mean(dens)),
        concentrations=n_a / n_a.sum(),
    )


def smooth_partial_rdf(
    positions: Array,
    cell: Array,
    onehot: Array,
    pairs: tuple[Array, Array, Array],
    r: Array,
    sigma: float = 0.05,
) -> jnp.ndarray:
    """Differentiable g_ab(r) with each pair distance smeared by a Gaussian of width ``sigma``.

    Args:
        positions: (N, 3), A.
        cell: (3, 3) lattice vectors as rows, A.
        onehot: (N, S) species indicator.
        pairs: ``(i, j, shifts)`` from :func:`pair_list` with a cutoff above max(r) + 4 sigma
            (fixed while positions move by less than the margin).
        r: (B,) radii where g is evaluated, A (> 0).
        sigma: Gaussian width, A.

    Returns:
        (S, S, B) smooth partial g_ab(r); it converges to the histogram as sigma -> 0.
    """
    i, j, shifts = (jnp.asarray(p) for p in pairs)
    positions = jnp.asarray(positions)
    cell = jnp.asarray(cell, positions.dtype)
    onehot = jnp.asarray(onehot, positions.dtype)
    r = jnp.asarray(r, positions.dtype)
    vec = positions[j] - positions[i] + shifts.astype(positions.dtype) @ cell
    d = jnp.sqrt(jnp.sum(vec**2, axis=-1))
    kernel = jnp.exp(-0.5 * ((d[:, None] - r[None, :]) / sigma) ** 2) / (
        jnp.sqrt(2.0 * jnp.pi) * sigma
    )  # (P, B) density of pair distances
    n_ab = jnp.einsum("pa,pb,pk->abk", onehot[i], onehot[j], kernel)
    n_a = onehot.sum(axis=0)
    vol = jnp.abs(jnp.linalg.det(cell))
    return n_ab * vol / (n_a[:, None, None] * n_a[None, :, None]) / (4.0 * jnp.pi * r**2)
