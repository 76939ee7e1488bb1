"""Optimiser pieces: warm-up and cosine schedules, reduce-on-plateau, EMA warm-up, units."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.train.config import load_config
from rsajax.train.metrics import EV_PER_A3_IN_GPA, finalize
from rsajax.train.optim import (
    current_lr,
    ema_decay_at,
    learning_rate_schedule,
    make_optimizer,
)


def test_warmup_then_cosine_reaches_the_final_factor():
    cfg = load_config(
        {
            "optimizer": {"lr": 0.1},
            "schedule": {"kind": "cosine", "warmup_steps": 10, "final_lr_factor": 0.01},
        }
    )
    lr = learning_rate_schedule(cfg.optimizer, cfg.schedule, total_steps=110)
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(float(lr(5)), 0.05)
    np.testing.assert_allclose(float(lr(10)), 0.1)
    np.testing.assert_allclose(float(lr(110)), 0.001, rtol=1e-6)


def test_warmup_then_constant():
    cfg = load_config({"optimizer": {"lr": 0.2}, "schedule": {"warmup_steps": 4}})
    lr = learning_rate_schedule(cfg.optimizer, cfg.schedule, total_steps=100)
    np.testing.assert_allclose([float(lr(s)) for s in (0, 2, 4, 50)], [0.0, 0.1, 0.2, 0.2])


@pytest.mark.parametrize("name", ["adam", "adamw", "amsgrad"])
def test_optimizers_step_and_clip(name):
    cfg = load_config(
        {"optimizer": {"name": name, "lr": 0.1, "clip_norm": 1.0, "weight_decay": 0.01}}
    )
    opt = make_optimizer(cfg.optimizer, cfg.schedule, steps_per_epoch=1, total_steps=1)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    updates, _ = opt.update({"w": jnp.array([100.0, 0.0, 0.0])}, state, params, value=1.0)
    # Adam-type first step moves each coordinate with a non-zero gradient by about lr.
    assert abs(float(updates["w"][0]) + 0.1) < 0.01


def test_reduce_on_plateau_lowers_the_rate_after_patience_epochs():
    cfg = load_config(
        {
            "optimizer": {"lr": 0.1, "clip_norm": 0.0},
            "schedule": {"kind": "plateau", "plateau_factor": 0.5, "plateau_patience": 2},
        }
    )
    steps_per_epoch = 3
    opt = make_optimizer(cfg.optimizer, cfg.schedule, steps_per_epoch, total_steps=100)
    lr = learning_rate_schedule(cfg.optimizer, cfg.schedule, 100)
    params = {"w": jnp.ones(2)}
    state = opt.init(params)
    rates = []
    for step in range(5 * steps_per_epoch):  # a loss that never improves
        _, state = opt.update({"w": jnp.ones(2)}, state, params, value=jnp.asarray(1.0))
        rates.append(float(current_lr(state, lr, step)))
    # Epoch 1 sets the best loss; every 2 epochs without improvement halve the rate.
    per_epoch = rates[steps_per_epoch - 1 :: steps_per_epoch]
    np.testing.assert_allclose(per_epoch, [0.1, 0.1, 0.05, 0.05, 0.025])
    assert rates[0] == pytest.approx(0.1)


def test_ema_decay_warms_up_like_torch_ema():
    np.testing.assert_allclose(float(ema_decay_at(0, 0.99)), 0.1)
    np.testing.assert_allclose(float(ema_decay_at(10, 0.99)), 11 / 20)
    np.testing.assert_allclose(float(ema_decay_at(10_000, 0.99)), 0.99)


def test_finalize_converts_to_mev_and_gpa():
    total = {
        "energy_sq": 4e-6,
        "energy_abs": 2e-3,
        "energy_n": 1.0,
        "forces_sq": 0.09,
        "forces_abs": 0.3,
        "forces_n": 1.0,
        "stress_sq": 1e-6,
        "stress_abs": 1e-3,
        "stress_n": 1.0,
    }
    out = finalize(total)
    np.testing.assert_allclose([out["energy_rmse"], out["forces_mae"]], [2.0, 300.0])
    np.testing.assert_allclose(out["stress_rmse"], 1e-3 * EV_PER_A3_IN_GPA)
    assert "dipole_rmse" not in out
    assert finalize({"energy_sq": 0.0, "energy_abs": 0.0, "energy_n": 0.0}) == {}
