"""optax optimiser from the config: clipping, Adam/AdamW/AMSGrad, schedules, and a parameter EMA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import optax.contrib

from rsajax.train.config import OptimizerConfig, ScheduleConfig


def learning_rate_schedule(
    opt: OptimizerConfig,
    schedule: ScheduleConfig,
    total_steps: int,
    stage_two: tuple[int, float] | None = None,
) -> optax.Schedule:
    """Step -> learning rate: linear warm-up to ``opt.lr``, then constant or cosine decay; from
    step ``stage_two[0]`` on, the constant ``stage_two[1]`` when given.

    Reduce-on-plateau is applied on top (see :func:`make_optimizer`); its schedule here is constant.
    """
    stage_one = _stage_one_schedule(opt, schedule, total_steps)
    if stage_two is None:
        return stage_one
    start, lr = stage_two
    return optax.join_schedules([stage_one, optax.constant_schedule(lr)], [start])


def _stage_one_schedule(
    opt: OptimizerConfig, schedule: ScheduleConfig, total_steps: int
) -> optax.Schedule:
    warmup = max(int(schedule.warmup_steps), 0)
    if schedule.kind == "cosine":
        decay_steps = max(total_steps, warmup + 1)
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup else opt.lr,
            peak_value=opt.lr,
            warmup_steps=warmup,
            decay_steps=decay_steps,
            end_value=opt.lr * schedule.final_lr_factor,
        )
    if warmup == 0:
        return optax.constant_schedule(opt.lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, opt.lr, warmup), optax.constant_schedule(opt.lr)], [warmup]
    )


def make_optimizer(
    opt: OptimizerConfig,
    schedule: ScheduleConfig,
    steps_per_epoch: int,
    total_steps: int,
    stage_two: tuple[int, float] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """The full gradient transformation. ``update`` takes ``value=loss`` (reduce-on-plateau).

    Reduce-on-plateau monitors the training loss averaged over each epoch
    (``accumulation_size = steps_per_epoch``), so patience and cooldown count epochs.
    ``stage_two``: (first step, constant learning rate) of stage two, or None.
    """
    lr = learning_rate_schedule(opt, schedule, total_steps, stage_two)
    if opt.name == "adam":
        core = optax.adam(lr, b1=opt.beta1, b2=opt.beta2, eps=opt.eps)
    elif opt.name == "adamw":
        core = optax.adamw(
            lr, b1=opt.beta1, b2=opt.beta2, eps=opt.eps, weight_decay=opt.weight_decay
        )
    elif opt.name == "amsgrad":
        core = optax.amsgrad(lr, b1=opt.beta1, b2=opt.beta2, eps=opt.eps)
    else:
        raise ValueError(f"unknown optimizer {opt.name!r}; choose adam, adamw or amsgrad")
    parts = []
    if opt.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(opt.clip_norm))
    parts.append(core)
    if schedule.kind == "plateau":
        parts.append(
            optax.contrib.reduce_on_plateau(
                factor=schedule.plateau_factor,
                patience=schedule.plateau_patience,
                rtol=schedule.plateau_rtol,
                cooldown=schedule.plateau_cooldown,
                accumulation_size=max(steps_per_epoch, 1),
            )
        )
    return optax.chain(*parts)


def current_lr(opt_state, schedule_fn: optax.Schedule, step) -> jax.Array:
    """The learning rate of ``step`` including any reduce-on-plateau scale in ``opt_state``."""
    scale = jnp.asarray(1.0)
    for part in opt_state:
        if isinstance(part, optax.contrib.ReduceLROnPlateauState):
            scale = part.scale
    return schedule_fn(step) * scale


def ema_decay_at(step, decay: float) -> jax.Array:
    """Decay used after ``step`` updates: ``min(decay, (1 + step) / (10 + step))``, the warm-up of
    torch_ema (``use_num_updates``) that mace-torch uses, so early EMAs follow the parameters."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema, params, decay):
    """``ema <- decay * ema + (1 - decay) * params`` leafwise."""
    return jax.tree_util.tree_map(
        lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, params
    )
