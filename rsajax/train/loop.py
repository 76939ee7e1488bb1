"""The trainer: data, statistics, model, sharded steps, validation, checkpoints, logs, export.

Every check that can fail (config keys, files, labels against loss weights, batch size against
devices, checkpoint shape) runs before the first compilation. See :func:`train`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from rsajax.nn.model import MACE, MACEConfig, dummy_graph, init_model
from rsajax.potential import energy_fn_from_model
from rsajax.train import sharding
from rsajax.train.checkpoint import Checkpoints, Position, export_model
from rsajax.train.config import ConfigError, TrainConfig, flatten, load_config, save_config
from rsajax.train.metrics import accumulate, finalize
from rsajax.train.optim import current_lr, learning_rate_schedule, make_optimizer
from rsajax.train.setup import TrainingData, load_data, model_config_from
from rsajax.train.step import init_state, make_eval_step, make_train_step

Callback = Callable[[str, dict], None]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    history: one dict per validation (epoch -1 is before training, when not resumed).
    compiles: traces of the train and eval steps (one per distinct batch shape).
    params / ema: final parameters (host numpy); ema is None without EMA.
    """

    output_dir: Path
    model_dir: Path
    model_config: MACEConfig
    history: list[dict]
    compiles: dict[str, int]
    steps: int
    params: dict
    ema: dict | None

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


#: Keys that may change on --resume without changing the step sequence (a multi-host job's
#: process ids and coordinator differ per process and per launch by design).
HARMLESS_ON_RESUME = (
    "output_dir",
    "progress_bar",
    "plot",
    "checkpoint.",
    "parallel.process_id",
    "parallel.coordinator_address",
)


def _warn_changed(stored: dict, cfg: TrainConfig) -> None:
    """Warn about config keys that differ from the checkpoint's (the run then is not exact)."""
    old, new = flatten(stored), flatten(cfg.to_dict())
    changed = [k for k in new if not k.startswith(HARMLESS_ON_RESUME) and old.get(k) != new[k]]
    if changed:
        warnings.warn(
            "resuming with config keys changed since the checkpoint: "
            + ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
            + " (the run will differ from an uninterrupted one)",
            stacklevel=3,
        )


def _log(path: Path, record: dict) -> None:
    if jax.process_index() != 0:
        return  # one log per run, also on multi-host clusters
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, epoch: int) -> list[dict]:
    """Keep records of epochs before ``epoch`` (a resumed run rewrites the rest).

    Every process reads the old log; only process 0 rewrites it, after all have read it.
    """
    records = []
    if path.is_file():
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in records if r["epoch"] < epoch]
    _barrier("read metrics.jsonl")
    if jax.process_index() == 0 and path.is_file():
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept


def _barrier(name: str) -> None:
    """Wait for every process of a multi-host run (no-op for one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def plot_learning_curves(history: Sequence[dict], path: Path) -> Path:
    """Loss and validation RMSEs against epoch, as a PNG.

    A bare ``Figure`` (no pyplot): it draws without touching the global backend, so a notebook
    that trains keeps showing its own figures inline.
    """
    from matplotlib.figure import Figure

    names = [k for k in ("energy_rmse", "forces_rmse", "stress_rmse") if k in history[-1]]
    fig = Figure(figsize=(4 * (1 + len(names)), 3.2))
    axes = fig.subplots(1, 1 + len(names))
    axes = np.atleast_1d(axes)
    epochs = [r["epoch"] for r in history]
    train = [(r["epoch"], r["train_loss"]) for r in history if r.get("train_loss") is not None]
    if train:
        axes[0].semilogy(*zip(*train, strict=True), label="train")
    axes[0].semilogy(epochs, [r["valid_loss"] for r in history], label="valid")
    axes[0].set(xlabel="epoch", ylabel="loss")
    axes[0].legend()
    units = {"energy_rmse": "meV/atom", "forces_rmse": "meV/A", "stress_rmse": "GPa"}
    for ax, name in zip(axes[1:], names, strict=True):
        ax.semilogy(epochs, [r[name] for r in history])
        ax.set(xlabel="epoch", ylabel=f"valid {name.replace('_', ' ')} ({units[name]})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _model_for_checks(model_config: MACEConfig, seed: int):
    """(model, variables) for the pre-flight checks, without compiling when possible.

    Short-range configs use the Module that :func:`init_model` builds and only the shapes of its
    variables (``jax.eval_shape``, no compile). Other models (e.g. RSA) are built by
    ``init_model`` itself, so the trainer works unchanged for any model it returns.
    """
    if model_config.long_range is None:
        model = MACE(model_config)
        graph = dummy_graph(model_config)
        return model, jax.eval_shape(model.init, jax.random.PRNGKey(seed), graph)
    return init_model(model_config, seed)


def train(
    config: str | Path | dict | TrainConfig,
    overrides: dict | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train a model as described by ``config`` (a file, a nested dict or a TrainConfig).

    Args:
        overrides: dotted keys -> values, e.g. ``{"optimizer.lr": 1e-3}``.
        resume: continue from ``output_dir``'s last checkpoint (same step sequence as a run that
            was never interrupted). Without it, an output_dir with checkpoints is an error.
        callbacks: ``fn(event, info)`` called with ``"step"`` after every step (info: step,
            epoch, batch, loss as a device scalar: ``float()`` waits for it) and ``"epoch"``
            after every validation (info: the log record plus ``model``, the Flax module, and
            ``variables``, the validated ``{"params", "constants"}``: EMA parameters when EMA is
            on).
    Returns:
        :class:`TrainResult`; the exported model is in ``result.model_dir``.
    """
    cfg = load_config(config, overrides)
    sharding.initialize_distributed(cfg.parallel)
    if cfg.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    checkpoints = Checkpoints(ckpt_dir, async_save=cfg.checkpoint.async_save)
    if checkpoints.latest() is not None and not resume:
        raise ConfigError(
            f"{out} already holds checkpoints; pass --resume to continue or choose "
            "another output_dir"
        )
    if resume and checkpoints.latest() is None:
        raise ConfigError(f"--resume: no complete checkpoint in {ckpt_dir}")

    mesh = sharding.make_mesh(cfg.parallel.num_devices)
    num_sub = cfg.parallel.sub_batches or mesh.size
    if num_sub % mesh.size:
        raise ConfigError(
            f"parallel.sub_batches = {num_sub} is not a multiple of the {mesh.size} devices"
        )
    data: TrainingData = load_data(cfg, num_sub)
    model_config = model_config_from(cfg, data.statistics)
    model, variables = _model_for_checks(model_config, cfg.seed)
    data.check_labels(cfg, energy_fn_from_model(model), variables)  # abstract evaluation only
    position, best, meta = Position(), float("inf"), None
    if resume:
        meta = checkpoints.check_compatible(checkpoints.latest(), variables["params"], model_config)
        position, best = Position(meta["epoch"], meta["batch"]), meta.get("best_valid_loss", best)
        _warn_changed(meta["config"], cfg)
    if isinstance(jax.tree_util.tree_leaves(variables)[0], jax.ShapeDtypeStruct):
        model, variables = init_model(model_config, cfg.seed)  # checks passed: now compute
    energy_fn = energy_fn_from_model(model)

    steps_per_epoch = len(data.train)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(cfg.optimizer, cfg.schedule, steps_per_epoch, total_steps)
    schedule_fn = learning_rate_schedule(cfg.optimizer, cfg.schedule, total_steps)
    rep, dat = sharding.replicated(mesh), sharding.data_sharding(mesh)
    constants = sharding.put_global({k: v for k, v in variables.items() if k != "params"}, rep)
    state = init_state(variables["params"], optimizer, cfg.seed, cfg.optimizer.ema_decay > 0)
    state = sharding.put_global(jax.device_get(state), rep)

    if resume:
        state = checkpoints.restore(checkpoints.latest(), state)
    out.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        save_config(cfg, out / "config.yaml")
    log_path = out / "metrics.jsonl"
    history = _truncate_log(log_path, position.epoch) if resume else []
    if not resume and log_path.exists() and jax.process_index() == 0:
        log_path.unlink()

    weights = {
        "energy": cfg.loss.energy_weight,
        "forces": cfg.loss.forces_weight,
        "stress": cfg.loss.stress_weight,
        "dipole": cfg.loss.dipole_weight,
    }
    counter: dict[str, int] = {"train": 0, "eval": 0}
    loss_args = (weights, cfg.loss.kind, cfg.loss.huber_delta)
    train_step = sharding.shard_step(
        make_train_step(
            energy_fn,
            optimizer,
            *loss_args,
            cfg.optimizer.ema_decay,
            weights["stress"] > 0,
            counter,
        ),
        mesh,
        num_sharded=2,
    )
    eval_step = sharding.shard_step(
        make_eval_step(energy_fn, *loss_args, data.valid_has_stress, counter),
        mesh,
        2,
        donate_state=False,
    )

    def validate(epoch: int, train_losses: list[float]) -> dict:
        params = state.ema if state.ema is not None else state.params
        total = None
        for batch, active in data.valid.batches(0):
            sums = eval_step(
                params, constants, sharding.put_global(batch, dat), sharding.put_global(active, dat)
            )
            total = accumulate(total, jax.device_get(sums))
        step = int(jax.device_get(state.step))
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": float(np.mean(train_losses)) if train_losses else None,
            "valid_loss": total["loss_sum"] / max(total["loss_n"], 1.0),
            "lr": float(current_lr(state.opt_state, schedule_fn, max(step - 1, 0))),
            "time": time.time(),
            **finalize(total),
        }
        _log(log_path, record)
        history.append(record)
        # The callbacks also get the validated parameters (EMA when on), e.g. to score a held-out
        # subset every epoch; the log keeps the JSON record only.
        evaluated = {
            **record,
            "model": model,
            "variables": {"params": params, "constants": constants},
        }
        for callback in callbacks:
            callback("epoch", evaluated)
        return record

    def save_last(pos: Position) -> None:
        checkpoints.save(
            "last",
            state,
            pos,
            cfg.to_dict(),
            model_config,
            {"best_valid_loss": best, "compiles": dict(counter)},
        )

    if not history:
        validate(-1, [])
    bar = tqdm(
        total=total_steps,
        initial=position.epoch * steps_per_epoch + position.batch,
        disable=not cfg.progress_bar or jax.process_index() != 0,
        unit="step",
        dynamic_ncols=True,
        file=sys.stderr,
    )
    every = cfg.checkpoint.every_steps
    step = int(jax.device_get(state.step))
    for epoch in range(position.epoch, cfg.epochs):
        start = position.batch if epoch == position.epoch else 0
        train_losses = []
        for index, (batch, active) in enumerate(data.train.batches(epoch, start), start):
            state, metrics = train_step(
                state, constants, sharding.put_global(batch, dat), sharding.put_global(active, dat)
            )
            step += 1
            # Losses stay on the device: reading one waits for the step, so the host reads only
            # every 10 steps and can build the next batches while the device computes.
            train_losses.append(metrics["loss"])
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(epoch=epoch, loss=f"{float(metrics['loss']):.4g}")
            if every and step % every == 0 and index + 1 < steps_per_epoch:
                save_last(Position(epoch, index + 1))
            for callback in callbacks:
                info = {"step": step, "epoch": epoch, "batch": index, "loss": metrics["loss"]}
                callback("step", info)
        record = validate(epoch, [float(x) for x in jax.device_get(train_losses)])
        bar.set_postfix(epoch=epoch, valid_loss=f"{record['valid_loss']:.4g}")
        eval_params = state.ema if state.ema is not None else state.params
        if cfg.checkpoint.keep_best and record["valid_loss"] < best:
            best = record["valid_loss"]
            checkpoints.save(
                "best",
                state,
                Position(epoch + 1, 0),
                cfg.to_dict(),
                model_config,
                {"best_valid_loss": best},
            )
            export_model(out / "best_model", model_config, eval_params, constants)
        save_last(Position(epoch + 1, 0))
    bar.close()
    checkpoints.wait()
    checkpoints.close()
    eval_params = state.ema if state.ema is not None else state.params
    model_dir = export_model(out / "model", model_config, eval_params, constants)
    if cfg.plot and jax.process_index() == 0:
        plot_learning_curves(history, out / "learning_curves.png")
    summary = {
        "compiles": dict(counter),
        "steps": int(jax.device_get(state.step)),
        "devices": mesh.size,
        "sub_batches": num_sub,
    }
    if jax.process_index() == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if cfg.progress_bar and jax.process_index() == 0:
        print(
            f"train step compiled {counter['train']} time(s), eval step {counter['eval']} "
            f"(buckets: {len(data.train.dataset.buckets)} train, "
            f"{len(data.valid.dataset.buckets)} valid); model written to {model_dir}",
            file=sys.stderr,
        )
    host = jax.device_get(state)
    return TrainResult(
        output_dir=out,
        model_dir=model_dir,
        model_config=model_config,
        history=history,
        compiles=dict(counter),
        steps=summary["steps"],
        params=host.params,
        ema=host.ema,
    )
