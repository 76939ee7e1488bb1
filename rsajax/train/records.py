"""What a training run writes besides checkpoints: config.yaml, metrics.jsonl, learning curves,
summary.json. On a multi-host cluster only process 0 writes; every process keeps the history."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from rsajax.train.config import TrainConfig, save_config


def is_writer() -> bool:
    """True on the one process that writes the run's files (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait for every process of a multi-host run (no-op for one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


class RunLog:
    """The run folder's config, metrics log and history (one dict per validation)."""

    def __init__(self, output_dir: Path, history: list[dict]):
        self.output_dir = output_dir
        self.path = output_dir / "metrics.jsonl"
        self.history = history

    @classmethod
    def open(cls, cfg: TrainConfig, resume_epoch: int | None) -> RunLog:
        """Create the folder and write ``config.yaml``. A fresh run (``resume_epoch`` None) starts
        an empty log; a resumed one keeps the records of epochs before ``resume_epoch`` (the
        rest are rewritten as the run repeats them)."""
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if is_writer():
            save_config(cfg, out / "config.yaml")
        log = cls(out, [])
        if resume_epoch is not None:
            log.history = log._truncate(resume_epoch)
        elif log.path.exists() and is_writer():
            log.path.unlink()
        return log

    def _truncate(self, epoch: int) -> list[dict]:
        """Records of epochs before ``epoch``. Every process reads the old log; only process 0
        rewrites it, after all have read it."""
        records = []
        if self.path.is_file():
            text = self.path.read_text()
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        kept = [r for r in records if r["epoch"] < epoch]
        barrier("read metrics.jsonl")
        if is_writer() and self.path.is_file():
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def append(self, record: dict) -> None:
        """Add one validation record to the history and the log file."""
        self.history.append(record)
        if is_writer():
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def finish(self, summary: dict, plot: bool) -> None:
        """Write ``summary.json`` and, when ``plot``, ``learning_curves.png``."""
        if not is_writer():
            return
        if plot:
            plot_learning_curves(self.history, self.output_dir / "learning_curves.png")
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2))


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
    stage_two = [r["epoch"] for r in history if r.get("stage") == 2]
    if stage_two:  # the loss weights change here: the loss curve jumps
        for ax in axes:
            ax.axvline(min(stage_two) - 0.5, color="grey", linestyle=":", label="stage two")
        axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def print_compile_report(counter: dict[str, int], data, model_dir: Path) -> None:
    """One line on stderr: how often each step compiled, per padding bucket, and where the
    model went."""
    print(
        f"train step compiled {counter['train']} time(s), eval step {counter['eval']} "
        f"(buckets: {len(data.train.dataset.buckets)} train, "
        f"{len(data.valid.dataset.buckets)} valid); model written to {model_dir}",
        file=sys.stderr,
    )
