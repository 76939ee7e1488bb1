"""The S(Q) objective's gradient by backpropagation through short checkpointed NVE windows.

From each of W start configurations (stored NVT frames, so the starts are canonical samples) a
short NVE trajectory is run with Maxwell-Boltzmann momenta
(:func:`rsajax.md.differentiable.trajectory_frames`, ``jax.checkpoint`` on every step); the
S(Q) of the frames after the first ``skip`` is averaged over frames and windows, and the loss is
differentiated through every integrator step. This is the derivative of a *short-time* average
from fixed starts: it misses the part of the structural response that has not relaxed within the
window and, in NVE, holds the starting kinetic energy fixed. It approaches the ensemble
derivative that reweighting estimates when the window is long compared with the relaxation of
the structure (but short enough that chaotic divergence does not blow the gradient up); it is
cheaper than reweighting when the parameters change so much between samples that the effective
sample size collapses at once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.fit.objective import SQTarget, model_sq, sq_loss
from rsajax.md.adapter import MDSystem
from rsajax.md.differentiable import trajectory_frames


def window_sq_loss(
    system: MDSystem,
    nbrs,
    starts: np.ndarray,
    idx: np.ndarray,
    target: SQTarget,
    *,
    steps: int,
    every: int,
    skip: int = 0,
    dt_fs: float = 1.0,
    temperature_K: float = 300.0,
    seed: int = 0,
) -> Callable:
    """``loss(variables) -> (S(Q) loss, S (K,))`` over NVE windows from ``starts``.

    Args:
        system: a model system; nbrs: a neighbour-list template of capacity M.
        starts: (W, N, 3) fractional start positions; idx: (W, 2, M) their neighbour lists
            (fixed along each window: keep windows short, see
            :func:`rsajax.md.differentiable.check_list_still_valid`).
        steps, every: integrator steps per window and steps between frames.
        skip: frames dropped at the start of each window (the structure has not responded yet).
        seed: window w draws its momenta with seed ``seed + w``.
    """
    n_frames = steps // every
    if not 0 <= skip < n_frames:
        raise ValueError(f"skip={skip} must leave some of the {n_frames} frames of a window")
    starts = jnp.asarray(starts)
    idx = jnp.asarray(idx)
    seeds = seed + jnp.arange(starts.shape[0])

    def loss(variables):
        def one(args):
            R0, i, s = args
            frames_of = trajectory_frames(
                system,
                R0,
                nbrs.set(idx=i),
                steps=steps,
                every=every,
                dt_fs=dt_fs,
                temperature_K=temperature_K,
                seed=s,
            )
            return frames_of(variables)[skip:]

        frames = jax.lax.map(one, (starts, idx, seeds))  # (W, F', N, 3)
        s = model_sq(frames.reshape((-1,) + frames.shape[2:]), target)
        return sq_loss(s, target), s

    return loss
