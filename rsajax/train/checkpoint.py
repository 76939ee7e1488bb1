"""orbax checkpoints of a training run: ``last`` (every N steps and at the end) and ``best``.

A checkpoint holds the :class:`~rsajax.train.step.TrainState` (params, optimiser state, EMA, RNG,
step) and JSON metadata: the data-iterator position (epoch, batch), the full training config, the
model config and the best validation loss. orbax writes into a temporary folder and renames it
when complete, so a run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from rsajax.errors import InputError
from rsajax.nn.model import MACEConfig, save_model

FORMAT = "rsajax-train-checkpoint"
VERSION = 1


class CheckpointMismatchError(InputError):
    """A checkpoint that does not fit the model being trained."""


@dataclasses.dataclass
class Position:
    """Where the data iterator stands: the next batch to train on is ``batch`` of ``epoch``."""

    epoch: int = 0
    batch: int = 0


def _manager(path: Path, async_save: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, create=True, enable_async_checkpointing=async_save
    )
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(path.resolve(), options=options, item_handlers=handlers)


def _shapes(tree) -> dict[str, tuple]:
    """keypath -> shape for leaves that are arrays, ShapeDtypeStructs or orbax metadata."""
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {jax.tree_util.keystr(p): tuple(x.shape) for p, x in flat}


class Checkpoints:
    """The ``last`` and ``best`` orbax checkpoint managers of one run directory."""

    def __init__(self, directory: str | Path, async_save: bool = True):
        self.directory = Path(directory)
        self.last = _manager(self.directory / "last", async_save)
        self.best = _manager(self.directory / "best", async_save)

    def save(
        self,
        which: str,
        state,
        position: Position,
        config: dict,
        model_config: MACEConfig,
        extra: dict | None = None,
    ) -> None:
        """Write ``state`` with metadata as checkpoint ``which`` ("last" or "best")."""
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "epoch": position.epoch,
            "batch": position.batch,
            "config": config,
            "model_config": model_config.to_dict(),
            **(extra or {}),
        }
        manager = self.last if which == "last" else self.best
        step = int(jax.device_get(state.step))
        if manager.latest_step() == step:
            return  # already written (e.g. at an epoch end that is also an every-N step)
        manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )

    def latest(self) -> int | None:
        """Step of the newest complete ``last`` checkpoint, or None."""
        return self.last.latest_step()

    def read_meta(self, step: int, which: str = "last") -> dict:
        manager = self.last if which == "last" else self.best
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointMismatchError(f"{self.directory}: not an rsajax training checkpoint")
        return meta

    def check_compatible(self, step: int, params, model_config: MACEConfig) -> dict:
        """Compare the stored model config and parameter shapes with ``params`` (arrays or
        ``jax.ShapeDtypeStruct``); raise :class:`CheckpointMismatchError` naming the
        differences. Reads metadata only. Returns the checkpoint's metadata."""
        meta = self.read_meta(step)
        stored = meta["model_config"]
        current = model_config.to_dict()
        shape_keys = (
            "hidden_irreps",
            "max_ell",
            "num_interactions",
            "correlation",
            "MLP_irreps",
            "radial_MLP",
            "num_bessel",
            "atomic_numbers",
            "long_range",
            "interaction_first",
            "interaction",
            "model_type",
        )
        differ = [
            f"{k}: checkpoint {stored.get(k)!r} vs config {_jsonable(current.get(k))!r}"
            for k in shape_keys
            if _jsonable(stored.get(k)) != _jsonable(current.get(k))
        ]
        tree = self.last.item_metadata(step)["state"]
        tree = getattr(tree, "tree", tree)
        want, have = _shapes(params), _shapes(tree["params"])
        bad = sorted(set(want) ^ set(have)) + [k for k in want if k in have and want[k] != have[k]]
        if differ or bad:
            detail = "; ".join(differ) or "parameter shapes differ"
            raise CheckpointMismatchError(
                f"{self.directory / 'last' / str(step)}: checkpoint is for another model shape "
                f"({detail}; {len(bad)} parameter arrays differ, e.g. {bad[:3]}). Use a new "
                "output_dir or the matching model config."
            )
        return meta

    def restore(self, step: int, state, which: str = "last"):
        """The stored state, with the structure, dtypes and shardings of ``state``."""
        manager = self.last if which == "last" else self.best
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(state))
        )
        return restored["state"]

    def read_params(self, step: int | None = None, which: str = "last") -> dict:
        """Stored ``params`` as host numpy arrays, without a target (for inspection and tests).

        Works whatever mesh wrote the checkpoint (e.g. a multi-host run read by one process):
        every array is restored whole onto this process's first device.
        """
        manager = self.last if which == "last" else self.best
        step = manager.latest_step() if step is None else step
        tree = manager.item_metadata(step)["state"]
        tree = getattr(tree, "tree", tree)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree_util.tree_map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
            tree,
            is_leaf=lambda x: hasattr(x, "shape"),
        )
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
        )
        return jax.tree_util.tree_map(np.asarray, restored["state"]["params"])

    def wait(self) -> None:
        """Block until background writes are complete."""
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.last.close()
        self.best.close()


def _jsonable(value: Any) -> Any:
    """Tuples -> lists, so configs compare equal to their JSON round trip."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def export_model(
    directory: str | Path, model_config: MACEConfig, params: dict, constants: dict
) -> Path:
    """A standalone model directory (:func:`rsajax.nn.model.save_model`) that the ASE calculator,
    ``rsajax md`` and notebooks load with :func:`rsajax.nn.model.load_model`."""
    variables = {"params": jax.device_get(params), **jax.device_get(constants)}
    if jax.process_index() != 0:
        return Path(directory)  # one writer on multi-host clusters
    return save_model(directory, model_config, variables)
