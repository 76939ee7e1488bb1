"""DiffTRe-style trajectory reweighting (Thaler and Zavadlav, Nat. Commun. 12, 6884 (2021)).

Frames ``x_i`` sampled in the canonical ensemble of parameters theta0 are reused for nearby
parameters theta with the weights ``w_i = exp(-beta (U_theta(x_i) - U_theta0(x_i))) / Z``
(normalised to sum 1). An ensemble average becomes ``<O>_theta ~ sum_i w_i O(x_i)``, and its
gradient with respect to theta needs only ``dU_theta(x_i) / dtheta``: no backpropagation through
the dynamics. At theta = theta0 this is ``d<O>/dtheta = -beta cov(O, dU/dtheta)``.

The estimate degrades as the weights concentrate on few frames. The effective sample size
``N_eff = 1 / sum_i w_i^2`` (Kish) measures that; below a fraction of the number of frames (DiffTRe
uses 0.9 for small systems; a 192-atom glass at 300 K needs less, see the experiment) the frames
are sampled afresh with the current parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.fit.objective import SQTarget, sq_loss
from rsajax.fit.sampling import Samples, frame_energies
from rsajax.md.adapter import MDSystem


def reweighting_weights(u_new, u_ref, beta: float) -> jnp.ndarray:
    """(F,) normalised weights ``exp(-beta (u_new - u_ref))`` of frames with energies (F,)."""
    log_w = -beta * (jnp.asarray(u_new) - jnp.asarray(u_ref))
    return jax.nn.softmax(log_w)


def effective_fraction(weights) -> jnp.ndarray:
    """Kish effective sample size over the number of frames, ``1 / (F sum w^2)`` in (0, 1]."""
    w = jnp.asarray(weights)
    return 1.0 / (w.shape[0] * jnp.sum(w**2))


def reweighted_mean(observables, weights) -> jnp.ndarray:
    """``sum_i w_i O_i``: (F, ...) per-frame observables and (F,) weights -> (...)."""
    return jnp.tensordot(jnp.asarray(weights), jnp.asarray(observables), axes=1)


def reweighted_sq_loss(
    system: MDSystem, nbrs, samples: Samples, frame_s: np.ndarray, target: SQTarget
) -> Callable:
    """``loss(variables) -> (S(Q) loss, (effective fraction, reweighted S (K,)))``.

    Args:
        system, nbrs: the model system and a neighbour-list template of the samples' capacity.
        samples: frames from :func:`rsajax.fit.sampling.sample_nvt` at the reference parameters.
        frame_s: (F, K) S(Q) of each frame (:func:`rsajax.fit.objective.frame_sq`); fixed,
            since the frames do not move when the parameters do.
    """
    u_ref = jnp.asarray(samples.energies)
    obs = jnp.asarray(frame_s)
    beta = samples.beta

    def loss(variables):
        u = frame_energies(system, nbrs, variables, samples.positions, samples.idx)
        w = reweighting_weights(u, u_ref, beta)
        s = reweighted_mean(obs, w)
        return sq_loss(s, target), (effective_fraction(w), s)

    return loss
