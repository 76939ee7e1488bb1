"""The trainer: :func:`train` composes named steps (:mod:`rsajax.train.setup`) and hands the
built objects to a :class:`TrainingLoop`, which runs epochs of sharded steps, validation,
checkpoints and logs.

Every check that can fail (config keys, files, labels against loss weights, batch size against
devices, checkpoint shape) runs before the first compilation.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rsajax.nn.model import MACE, MACEConfig
from rsajax.potential import energy_fn_from_model
from rsajax.train import sharding
from rsajax.train.checkpoint import Checkpoints, Position, export_model
from rsajax.train.config import TrainConfig, load_config
from rsajax.train.metrics import accumulate, finalize
from rsajax.train.optim import current_lr
from rsajax.train.records import RunLog, is_writer, print_compile_report
from rsajax.train.setup import (
    ResumePoint,
    TrainingData,
    build_optimizer,
    checked_model,
    concrete_model,
    configure_jax,
    data_digests,
    device_mesh,
    load_data,
    model_config_from,
    open_checkpoints,
    resume_point,
)
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


class TrainingLoop:
    """Epochs of sharded train steps over objects built elsewhere, with validation after every
    epoch, ``last``/``best`` checkpoints and the run log.

    Args:
        cfg: the run's config (epochs, loss, EMA, checkpoint cadence; stored in checkpoints).
        data: training and validation batches. model, model_config, variables: the model and its
            computed ``{"params", "constants"}``. optimizer, learning_rate: optax optimiser and
            its schedule (logged). checkpoints: the run's store. mesh: the data-parallel mesh.
        log: the run log (history and metrics.jsonl). callbacks: see :func:`train`.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        data: TrainingData,
        model: MACE,
        model_config: MACEConfig,
        variables: dict,
        optimizer: optax.GradientTransformation,
        learning_rate: optax.Schedule,
        checkpoints: Checkpoints,
        mesh: Mesh,
        log: RunLog,
        callbacks: Sequence[Callback] = (),
    ):
        self.cfg, self.data, self.model, self.model_config = cfg, data, model, model_config
        self.learning_rate, self.checkpoints = learning_rate, checkpoints
        self.mesh, self.log, self.callbacks = mesh, log, tuple(callbacks)
        self.counter: dict[str, int] = {"train": 0, "eval": 0}
        self.best = float("inf")
        rep, self._data_sharding = sharding.replicated(mesh), sharding.data_sharding(mesh)
        self.constants = sharding.put_global(
            {k: v for k, v in variables.items() if k != "params"}, rep
        )
        state = init_state(variables["params"], optimizer, cfg.seed, cfg.optimizer.ema_decay > 0)
        self.state = sharding.put_global(jax.device_get(state), rep)
        self.optimizer = optimizer
        self.data_digests = data_digests(cfg)  # in every checkpoint: resumes see moved files
        self._clock = time.perf_counter()  # for each record's "seconds" (:meth:`_tick`)
        self._built: dict[bool, tuple[Callable, Callable]] = {}

    def steps(self, epoch: int) -> tuple[Callable, Callable]:
        """The train and eval steps of ``epoch``'s stage. Stage two's loss weights are constants
        of its own compiled steps, built when it begins (one more compilation per batch shape)."""
        stage_two = self.cfg.in_stage_two(epoch)
        if stage_two not in self._built:
            self._built[stage_two] = self._steps(self.cfg.loss_weights(stage_two))
        return self._built[stage_two]

    def _steps(self, weights: dict[str, float]) -> tuple[Callable, Callable]:
        """The jitted, sharded train and eval steps (each counts its compilations)."""
        loss = self.cfg.loss
        energy_fn = energy_fn_from_model(self.model)
        loss_args = (weights, loss.kind, loss.huber_delta)
        train_step = make_train_step(
            energy_fn,
            self.optimizer,
            *loss_args,
            ema_decay=self.cfg.optimizer.ema_decay,
            compute_stress=weights["stress"] > 0,
            counter=self.counter,
        )
        eval_step = make_eval_step(
            energy_fn,
            *loss_args,
            compute_stress=self.data.valid_has_stress,
            counter=self.counter,
        )
        return (
            sharding.shard_step(train_step, self.mesh, num_sharded=2),
            sharding.shard_step(eval_step, self.mesh, num_sharded=2, donate_state=False),
        )

    def restore(self, start: ResumePoint) -> None:
        """Continue from checkpoint ``start.step`` (state and best validation loss)."""
        self.state = self.checkpoints.restore(start.step, self.state)
        self.best = start.best_valid_loss

    @property
    def eval_params(self) -> dict:
        """The parameters validated and exported: the EMA when on."""
        return self.state.ema if self.state.ema is not None else self.state.params

    def _put(self, tree):
        return sharding.put_global(tree, self._data_sharding)

    def _tick(self) -> float:
        """Seconds this process spent since the previous record (or since it began): summed over
        ``metrics.jsonl`` they are a run's own time, without the pauses between sittings that
        the ``time`` stamps of a resumed run include."""
        now = time.perf_counter()
        elapsed, self._clock = now - self._clock, now
        return elapsed

    def validate(self, epoch: int, train_losses: list[float]) -> dict:
        """Score the validation set, log the record and call the ``"epoch"`` callbacks."""
        params, total = self.eval_params, None
        _, eval_step = self.steps(epoch)
        for batch, active in self.data.valid.batches(0):
            sums = eval_step(params, self.constants, self._put(batch), self._put(active))
            total = accumulate(total, jax.device_get(sums))
        step = int(jax.device_get(self.state.step))
        lr = current_lr(self.state.opt_state, self.learning_rate, max(step - 1, 0))
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": float(np.mean(train_losses)) if train_losses else None,
            "valid_loss": total["loss_sum"] / max(total["loss_n"], 1.0),
            "lr": float(lr),
            "stage": 2 if self.cfg.in_stage_two(epoch) else 1,
            "time": time.time(),
            "seconds": self._tick(),
            **finalize(total),
        }
        self.log.append(record)
        # The callbacks also get the validated parameters (EMA when on), e.g. to score a held-out
        # subset every epoch; the log keeps the JSON record only.
        variables = {"params": params, "constants": self.constants}
        for callback in self.callbacks:
            callback("epoch", {**record, "model": self.model, "variables": variables})
        return record

    def save(self, which: str, position: Position) -> None:
        """Checkpoint ``which`` ("last" or "best") at ``position``."""
        extra = {"best_valid_loss": self.best, "data_digests": self.data_digests}
        if which == "last":
            extra["compiles"] = dict(self.counter)
        config = self.cfg.to_dict()
        self.checkpoints.save(which, self.state, position, config, self.model_config, extra)

    def export(self, directory: Path) -> Path:
        """Write the evaluated parameters as a standalone model directory."""
        return export_model(directory, self.model_config, self.eval_params, self.constants)

    def train_epoch(self, epoch: int, start: int, bar: tqdm) -> list:
        """Steps over the training batches of ``epoch`` from batch ``start``; returns the losses
        (device scalars)."""
        every, steps_per_epoch = self.cfg.checkpoint.every_steps, len(self.data.train)
        step = int(jax.device_get(self.state.step))
        losses = []
        train_step, _ = self.steps(epoch)
        for index, (batch, active) in enumerate(self.data.train.batches(epoch, start), start):
            self.state, metrics = train_step(
                self.state, self.constants, self._put(batch), self._put(active)
            )
            step += 1
            # Losses stay on the device: reading one waits for the step, so the host reads only
            # every 10 steps and can build the next batches while the device computes.
            losses.append(metrics["loss"])
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(epoch=epoch, loss=f"{float(metrics['loss']):.4g}")
            if every and step % every == 0 and index + 1 < steps_per_epoch:
                self.save("last", Position(epoch, index + 1))
            for callback in self.callbacks:
                info = {"step": step, "epoch": epoch, "batch": index, "loss": metrics["loss"]}
                callback("step", info)
        return losses

    def end_epoch(self, epoch: int, losses: list, bar: tqdm) -> None:
        """Validate; keep a ``best`` checkpoint and model when it improved; checkpoint ``last``."""
        record = self.validate(epoch, [float(x) for x in jax.device_get(losses)])
        bar.set_postfix(epoch=epoch, valid_loss=f"{record['valid_loss']:.4g}")
        if self.cfg.checkpoint.keep_best and record["valid_loss"] < self.best:
            self.best = record["valid_loss"]
            self.save("best", Position(epoch + 1, 0))
            self.export(self.log.output_dir / "best_model")
        self.save("last", Position(epoch + 1, 0))

    def run(self, position: Position) -> None:
        """Train from ``position`` to the last epoch (validating first when nothing is logged)."""
        if not self.log.history:
            self.validate(-1, [])
        steps_per_epoch = len(self.data.train)
        bar = tqdm(
            total=steps_per_epoch * self.cfg.epochs,
            initial=position.epoch * steps_per_epoch + position.batch,
            disable=not self.cfg.progress_bar or not is_writer(),
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        for epoch in range(position.epoch, self.cfg.epochs):
            start = position.batch if epoch == position.epoch else 0
            if epoch == self.cfg.stage_two_start:
                # the validation loss has other weights from here on: `best` is chosen among
                # stage-two epochs (a checkpoint inside this epoch still held stage one's best)
                self.best = float("inf")
            self.end_epoch(epoch, self.train_epoch(epoch, start, bar), bar)
        bar.close()
        self.checkpoints.wait()
        self.checkpoints.close()


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
    configure_jax(cfg)
    checkpoints = open_checkpoints(cfg, resume)
    mesh, num_sub = device_mesh(cfg)
    data = load_data(cfg, num_sub)
    model_config = model_config_from(cfg, data.statistics)
    model, variables = checked_model(cfg, model_config, data)
    start = ResumePoint()
    if resume:
        start = resume_point(checkpoints, variables["params"], model_config, cfg)
    model, variables = concrete_model(model_config, cfg.seed, model, variables)  # checks passed
    optimizer, learning_rate = build_optimizer(cfg, len(data.train))
    loop = TrainingLoop(
        cfg=cfg,
        data=data,
        model=model,
        model_config=model_config,
        variables=variables,
        optimizer=optimizer,
        learning_rate=learning_rate,
        checkpoints=checkpoints,
        mesh=mesh,
        log=RunLog.open(cfg, start.position.epoch if resume else None),
        callbacks=callbacks,
    )
    if resume:
        loop.restore(start)
    loop.run(start.position)
    return finish(loop, num_sub)


def finish(loop: TrainingLoop, num_sub: int) -> TrainResult:
    """Export the model, write the summary (and plot), report compilations; the run's result."""
    model_dir = loop.export(loop.log.output_dir / "model")
    steps = int(jax.device_get(loop.state.step))
    summary = {"compiles": dict(loop.counter), "steps": steps, "devices": loop.mesh.size}
    loop.log.finish({**summary, "sub_batches": num_sub}, plot=loop.cfg.plot)
    if loop.cfg.progress_bar and is_writer():
        print_compile_report(loop.counter, loop.data, model_dir)
    host = jax.device_get(loop.state)
    return TrainResult(
        output_dir=loop.log.output_dir,
        model_dir=model_dir,
        model_config=loop.model_config,
        history=loop.log.history,
        compiles=dict(loop.counter),
        steps=steps,
        params=host.params,
        ema=host.ema,
    )
