"""The train and eval steps on stacked, sharded batches (see :mod:`rsajax.train.sharding`).

Predictions come only from :func:`rsajax.potential.make_potential`. Each step is vmapped over the
D stacked sub-batches; the loss is the mean of the sub-batch losses over the active ones. Each
function counts its own traces in ``counter`` (a Python side effect that runs once per
compilation), which is how the loop reports how often it compiled.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from rsajax.potential import EnergyFn, make_potential
from rsajax.train.loss import loss_terms, total_loss
from rsajax.train.metrics import error_sums
from rsajax.train.optim import ema_decay_at, ema_update


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training (checkpointed as one pytree).

    step: () int. params: trainable ``params`` collection. opt_state: optax state. ema: EMA of
    params (same tree) or None. rng: (2,) uint32 key, split once per step.
    """

    step: jax.Array
    params: dict
    opt_state: optax.OptState
    ema: dict | None
    rng: jax.Array


def init_state(
    params: dict, optimizer: optax.GradientTransformation, seed: int, use_ema: bool
) -> TrainState:
    """A fresh state at step 0."""
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        ema=jax.tree_util.tree_map(jnp.copy, params) if use_ema else None,
        rng=jax.random.PRNGKey(seed),
    )


def _masked_mean(values: jax.Array, active: jax.Array) -> jax.Array:
    """Mean of (D,) values over active sub-batches."""
    w = active.astype(values.dtype)
    return jnp.sum(values * w) / jnp.maximum(jnp.sum(w), 1.0)


def make_train_step(
    energy_fn: EnergyFn,
    optimizer: optax.GradientTransformationExtraArgs,
    weights: dict[str, float],
    kind: str,
    delta: float,
    ema_decay: float,
    compute_stress: bool,
    counter: dict,
) -> Callable:
    """``step(state, constants, batch, active) -> (state, metrics)`` (not yet jitted).

    Args:
        weights: loss weight per term. kind, delta: mse/huber. ema_decay: 0 disables the EMA.
        compute_stress: differentiate the strain (needed when stress is in the loss).
        counter: dict whose ``"train"`` entry counts traces.
    """
    potential = make_potential(energy_fn, compute_stress=compute_stress)

    def sub_batch_loss(params, constants, graph):
        predictions = potential({"params": params, **constants}, graph)
        terms = loss_terms(predictions, graph, kind, delta)
        return total_loss(terms, weights), terms

    def step(state: TrainState, constants, batch, active):
        counter["train"] = counter.get("train", 0) + 1  # runs at trace time only

        def global_loss(params):
            losses, terms = jax.vmap(sub_batch_loss, in_axes=(None, None, 0))(
                params, constants, batch
            )
            means = {k: _masked_mean(v, active) for k, v in terms.items()}
            return _masked_mean(losses, active), means

        (loss, terms), grads = jax.value_and_grad(global_loss, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params, value=loss)
        params = optax.apply_updates(state.params, updates)
        ema = None
        if state.ema is not None:
            ema = ema_update(state.ema, params, ema_decay_at(state.step, ema_decay))
        rng, _ = jax.random.split(state.rng)
        new = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, ema=ema, rng=rng
        )
        metrics = {
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            **{f"loss_{k}": v for k, v in terms.items()},
        }
        return new, metrics

    return step


def make_eval_step(
    energy_fn: EnergyFn,
    weights: dict[str, float],
    kind: str,
    delta: float,
    compute_stress: bool,
    counter: dict,
) -> Callable:
    """``evaluate(params, constants, batch, active) -> sums`` (not yet jitted): error sums for
    :mod:`rsajax.train.metrics` plus ``loss_sum`` and ``loss_n`` (sum over active sub-batches)."""
    potential = make_potential(energy_fn, compute_stress=compute_stress)

    def sub_batch(params, constants, graph):
        predictions = potential({"params": params, **constants}, graph)
        sums = error_sums(predictions, graph)
        sums["loss_sum"] = total_loss(loss_terms(predictions, graph, kind, delta), weights)
        return sums

    def evaluate(params, constants, batch, active):
        counter["eval"] = counter.get("eval", 0) + 1  # runs at trace time only
        sums = jax.vmap(sub_batch, in_axes=(None, None, 0))(params, constants, batch)
        w = active.astype(sums["loss_sum"].dtype)
        out = {k: jnp.sum(v * w) for k, v in sums.items()}
        out["loss_n"] = jnp.sum(w)
        return out

    return evaluate
