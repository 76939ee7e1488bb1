"""A differentiable neutron S(Q) objective against a target curve over a chosen Q range.

The model's S_N(Q) is computed directly on the simulation box's reciprocal lattice
(:func:`rsajax.analysis.structure_factor.weighted_structure_factor`), averaged over frames and
over |q| shells. It is *not* obtained by Fourier transforming g(r): the repository has no
forward g(r) -> S(Q) transform, and one over a g(r) cut at L/2 would smear the first sharp
diffraction peak (FSDP) by ripples of width 2 pi / L, about the FSDP's own width in the boxes
that fit a CPU. The direct sum is exact on the box's q-vectors; its noise at low Q comes from the
few vectors in each shell, and the objective copes with it by (1) weighting each shell by its
number of vectors (a shell's standard error is about S / sqrt(n)), (2) shells 0.1 1/A wide, and
(3) averaging over frames.

The target is any curve (Q, S): an experiment (interpolated linearly onto the shell-mean |q|) or
another simulation's S(Q) on the same grid (the teacher's glass, same box: no interpolation).

``loss = sum_k w_k (S_k - T_k)^2 / sum_k w_k`` over the shells with ``q_lo <= q_k <= q_hi``,
with ``w_k = n_k`` (vectors in shell k) times ``fsdp_weight`` inside the FSDP range.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from rsajax.analysis.structure_factor import QGrid, weighted_structure_factor
from rsajax.analysis.weights import neutron_lengths
from rsajax.errors import InputError


@dataclass(frozen=True)
class SQTarget:
    """A target S(Q) on the shells of one box's q-grid, with the loss weights.

    Attributes:
        grid: the q-vectors (:func:`rsajax.analysis.structure_factor.reciprocal_grid`).
        cell: (3, 3) lattice vectors as rows, A (the box the grid belongs to).
        species: (N,) atomic numbers of the simulated atoms.
        lengths: (S,) neutron scattering lengths in ``np.unique(species)`` order.
        q: (K,) shell-mean |q|, 1/A (NaN for empty shells); K = grid.n_shells.
        counts: (K,) q-vectors per shell.
        target: (K,) target S(Q) (1 where unused).
        weight: (K,) loss weight of each shell, 0 outside the Q range and on empty shells.
        fsdp_range: (lo, hi) 1/A, the FSDP window (weighted up).
    """

    grid: QGrid
    cell: np.ndarray
    species: np.ndarray
    lengths: np.ndarray
    q: np.ndarray
    counts: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    fsdp_range: tuple[float, float]

    @property
    def used(self) -> np.ndarray:
        """(K,) bool: the shells that enter the loss."""
        return self.weight > 0


def shell_mean_q(grid: QGrid) -> tuple[np.ndarray, np.ndarray]:
    """``(q, counts)``: (K,) mean |q| of each shell's vectors (NaN where empty) and (K,) counts."""
    counts = np.bincount(grid.shell, minlength=grid.n_shells)
    total = np.bincount(
        grid.shell, weights=np.linalg.norm(grid.vectors, axis=1), minlength=grid.n_shells
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    return q, counts


def make_target(
    grid: QGrid,
    cell: np.ndarray,
    species: np.ndarray,
    q_curve: np.ndarray,
    s_curve: np.ndarray,
    q_range: tuple[float, float] = (1.0, 4.0),
    fsdp_range: tuple[float, float] = (1.2, 1.9),
    fsdp_weight: float = 3.0,
) -> SQTarget:
    """A target from a curve ``(q_curve, s_curve)`` (K',) interpolated onto the grid's shells.

    Args:
        grid, cell: the simulation box's q-grid and its lattice vectors (rows, A).
        species: (N,) atomic numbers of the simulated atoms (for the neutron weights).
        q_range: shells with mean |q| in this range (1/A) enter the loss.
        fsdp_range: shells in this range get ``fsdp_weight`` times their count as weight.
    """
    q_curve = np.asarray(q_curve, dtype=np.float64)
    s_curve = np.asarray(s_curve, dtype=np.float64)
    if q_curve.shape != s_curve.shape or q_curve.ndim != 1:
        raise InputError(f"target curve: q {q_curve.shape} and S {s_curve.shape} must be 1-D alike")
    order = np.argsort(q_curve)
    q_curve, s_curve = q_curve[order], s_curve[order]
    lo, hi = q_range
    if lo < q_curve[0] or hi > q_curve[-1]:
        raise InputError(
            f"target curve covers {q_curve[0]:.3f}-{q_curve[-1]:.3f} 1/A, the fit range "
            f"{lo}-{hi} 1/A does not lie inside it"
        )
    q, counts = shell_mean_q(grid)
    used = (counts > 0) & (q >= lo) & (q <= hi)
    if not used.any():
        raise InputError(f"no q-vector shell of the box lies in the fit range {lo}-{hi} 1/A")
    target = np.ones(grid.n_shells)
    target[used] = np.interp(q[used], q_curve, s_curve)
    in_fsdp = (q >= fsdp_range[0]) & (q <= fsdp_range[1])
    weight = np.where(used, counts * np.where(in_fsdp, fsdp_weight, 1.0), 0.0)
    species = np.asarray(species)
    return SQTarget(
        grid=grid,
        cell=np.asarray(cell, dtype=np.float64),
        species=species,
        lengths=neutron_lengths(np.unique(species)),
        q=q,
        counts=counts,
        target=target,
        weight=weight / weight.sum(),
        fsdp_range=tuple(fsdp_range),
    )


def model_sq(frames, target: SQTarget) -> jnp.ndarray:
    """(K,) neutron S(Q) of Cartesian ``frames`` (F, N, 3) or (N, 3), averaged over frames,
    on the target's grid; differentiable in ``frames``."""
    _, s = weighted_structure_factor(
        frames, target.cell, target.species, target.grid, target.lengths
    )
    return s


def frame_sq(frames, target: SQTarget) -> np.ndarray:
    """(F, K) S(Q) of each frame separately (host arrays; for reweighting)."""
    frames = np.asarray(frames)
    return np.stack([np.asarray(model_sq(f, target)) for f in frames])


def sq_loss(s, target: SQTarget) -> jnp.ndarray:
    """Weighted mean squared deviation of ``s`` (K,) from the target over the used shells."""
    w = jnp.asarray(target.weight)
    return jnp.sum(w * (s - jnp.asarray(target.target)) ** 2)
