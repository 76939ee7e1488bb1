"""The training configuration: a tree of dataclasses read from YAML or TOML.

Every key has a default and a help text (``key(default, "help")``); the help texts are appended to
each class docstring and rendered into ``docs/train_config.md`` by :mod:`rsajax.train.docs`. Any key
can be overridden from the command line (``--optimizer.lr 1e-3`` or ``--set optimizer.lr=1e-3``).
An unknown key is an error that lists the closest valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from rsajax.documented import documented, key
from rsajax.errors import InputError
from rsajax.nn.model import MACEArchitecture
from rsajax.train.loss import TERMS


@documented
class DataConfig:
    """Where the structures come from and how they are batched."""

    train_file: str = key("", "extxyz (or any ASE-readable) file with the training structures")
    valid_file: str = key("", "validation structures; empty: split valid_fraction off train_file")
    valid_fraction: float = key(0.1, "fraction of train_file held out when valid_file is empty")
    batch_size: int = key(4, "structures per optimiser step (the global batch over all devices)")
    valid_batch_size: int = key(8, "structures per validation batch (global)")
    num_buckets: int = key(2, "padding buckets: distinct batch shapes, i.e. compilations")
    shuffle: bool = key(True, "reshuffle the training set every epoch (order = f(seed, epoch))")
    energy_key: str = key("energy", "name of the energy label in the file")
    forces_key: str = key("forces", "name of the forces label in the file")
    stress_key: str = key("stress", "name of the stress label in the file")
    virial_key: str = key("virial", "name of a virial label (converted to stress)")
    dipole_key: str = key("dipole", "name of the dipole label in the file")


@documented
class StatisticsConfig:
    """Normalisation taken from the training set (see :mod:`rsajax.data.statistics`). E0s are
    always the least-squares fit of total energies to element counts."""

    scaling: str = key("rms_forces", "scale of ScaleShiftMACE: rms_forces, std_energy or none")
    shift: bool = key(True, "shift = mean interaction energy per atom (else 0)")


@documented
class LossConfig:
    """Weighted loss over energy per atom, forces, stress and dipole."""

    kind: str = key("mse", "mse or huber")
    huber_delta: float = key(0.01, "Huber delta (in the units of each residual)")
    energy_weight: float = key(1.0, "weight of the energy-per-atom term, (eV/atom)^-2")
    forces_weight: float = key(100.0, "weight of the forces term, (eV/A)^-2")
    stress_weight: float = key(0.0, "weight of the stress term, (eV/A^3)^-2")
    dipole_weight: float = key(0.0, "weight of the dipole term (models that predict dipoles)")


@documented
class StageTwoConfig:
    """A second stage of training with other loss weights and learning rate (mace-torch's
    ``--stage_two``): in the last epochs the energy term dominates the loss. Forces fix the
    energy surface only up to a constant per connected region of configurations; how the energy
    changes between densities, phases or compositions comes from the energy (and stress) labels,
    whose term is usually small next to the forces' while the force error is large. The weights
    that are null keep their ``loss`` value."""

    fraction: float = key(
        0.0, "the last ceil(fraction x epochs) epochs are stage two; 0: none (mace-torch: 0.25)"
    )
    energy_weight: float | None = key(1000.0, "stage-two energy weight; null: loss.energy_weight")
    forces_weight: float | None = key(100.0, "stage-two forces weight; null: loss.forces_weight")
    stress_weight: float | None = key(None, "stage-two stress weight; null: loss.stress_weight")
    dipole_weight: float | None = key(None, "stage-two dipole weight; null: loss.dipole_weight")
    lr: float | None = key(1e-3, "constant learning rate of stage two; null: keep the schedule")


@documented
class OptimizerConfig:
    """optax optimiser, gradient clipping and parameter EMA."""

    name: str = key("adam", "adam, adamw or amsgrad")
    lr: float = key(1e-2, "peak learning rate")
    beta1: float = key(0.9, "first-moment decay")
    beta2: float = key(0.999, "second-moment decay")
    eps: float = key(1e-8, "denominator epsilon")
    weight_decay: float = key(0.0, "decoupled weight decay (adamw only)")
    clip_norm: float = key(10.0, "clip gradients to this global norm; 0 disables")
    ema_decay: float = key(
        0.99, "EMA decay of the evaluated parameters, warmed up as min(d, (1+t)/(10+t)); 0: off"
    )


@documented
class ScheduleConfig:
    """Learning-rate schedule: linear warm-up, then constant, cosine or reduce-on-plateau."""

    kind: str = key("constant", "constant, cosine or plateau")
    warmup_steps: int = key(0, "linear warm-up from 0 to lr over this many steps")
    final_lr_factor: float = key(0.01, "cosine: final lr = lr * final_lr_factor")
    plateau_factor: float = key(0.8, "plateau: multiply lr by this when the loss stalls")
    plateau_patience: int = key(
        5, "plateau: epochs without improvement of the mean training loss before reducing"
    )
    plateau_cooldown: int = key(0, "plateau: epochs to wait after a reduction")
    plateau_rtol: float = key(1e-4, "plateau: relative improvement that counts")


@documented
class CheckpointConfig:
    """orbax checkpoints (atomic writes) and exported models."""

    every_steps: int = key(100, "write the `last` checkpoint every this many steps (0: per epoch)")
    keep_best: bool = key(True, "keep a `best` checkpoint (lowest validation loss)")
    async_save: bool = key(True, "write checkpoints in a background thread")


@documented
class ParallelConfig:
    """Data parallelism over a device mesh (jax.sharding), single- or multi-host."""

    num_devices: int = key(0, "devices on the mesh's data axis; 0: all")
    sub_batches: int = key(0, "stacked sub-batches per step; 0: one per device (multiple of it)")
    multi_host: bool = key(False, "call jax.distributed.initialize() before anything else")
    coordinator_address: str = key("", "multi-host coordinator host:port (empty: auto-detect)")
    num_processes: int = key(0, "multi-host process count (0: auto-detect)")
    process_id: int = key(-1, "this process's id (-1: auto-detect)")


@documented
class TrainConfig:
    """Everything ``rsajax train`` needs."""

    output_dir: str = key("runs/train", "checkpoints, logs, plots and the exported model go here")
    seed: int = key(0, "seed of parameters, data split and shuffling")
    epochs: int = key(100, "passes over the training set")
    dtype: str = key("float32", "float32 or float64 for model and data")
    progress_bar: bool = key(True, "show a tqdm progress bar with rate and ETA")
    plot: bool = key(True, "write learning_curves.png at the end")
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: MACEArchitecture = dataclasses.field(default_factory=MACEArchitecture)
    statistics: StatisticsConfig = dataclasses.field(default_factory=StatisticsConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    stage_two: StageTwoConfig = dataclasses.field(default_factory=StageTwoConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    parallel: ParallelConfig = dataclasses.field(default_factory=ParallelConfig)

    def loss_weights(self, stage_two: bool = False) -> dict[str, float]:
        """Loss term -> weight in stage one (``loss``) or stage two (``stage_two``, null keys
        falling back to ``loss``)."""
        weights = {name: getattr(self.loss, f"{name}_weight") for name in TERMS}
        if stage_two:
            for name in TERMS:
                value = getattr(self.stage_two, f"{name}_weight")
                weights[name] = weights[name] if value is None else value
        return weights

    @property
    def stage_two_start(self) -> int | None:
        """The first (0-based) epoch of stage two, None without one. A fraction rather than an
        epoch, so that stage two keeps its share when a preset or the command line changes
        ``epochs``."""
        if self.stage_two.fraction <= 0:
            return None
        return self.epochs - math.ceil(self.stage_two.fraction * self.epochs)

    def in_stage_two(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) trains with the stage-two loss and learning rate."""
        start = self.stage_two_start
        return start is not None and epoch >= start

    def to_dict(self) -> dict:
        """Every key as plain YAML/JSON values (tuples as lists)."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class ConfigError(InputError):
    """A training configuration that cannot be used."""


CHOICES = {
    "dtype": ("float32", "float64"),
    "loss.kind": ("mse", "huber"),
    "optimizer.name": ("adam", "adamw", "amsgrad"),
    "schedule.kind": ("constant", "cosine", "plateau"),
    "statistics.scaling": ("rms_forces", "std_energy", "none"),
}


def all_keys(cls=TrainConfig, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Dotted key -> field, for every leaf key of the config tree."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out.update(all_keys(kind, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f
    return out


def _unknown(name: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    tail = name.rsplit(".", 1)[-1]
    close += [k for k in valid if k.rsplit(".", 1)[-1] == tail and k not in close]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {name!r}{hint} (see docs/train_config.md)")


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Convert a YAML/TOML/command-line value to the field's type, or raise ConfigError."""
    try:
        return _convert(value, kind)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"config key {name!r}: cannot use {value!r} as {_type_name(kind)}"
        ) from err


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``: bool, int, float, str, list, dict, ``tuple[T, ...]`` or a union of
    them (first arm that fits; ``None``/"null"/"none" for an optional one); ValueError if none."""
    if kind is Any:
        return value
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or isinstance(value, str) and value.strip().lower() in ("null", "none")
        ):
            return None
        for arm in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arm)
            except (TypeError, ValueError):
                continue
        raise ValueError(value)
    if origin is tuple:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_convert(v, args[0]) for v in items)
    if kind is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if not isinstance(value, bool | int):
            raise ValueError(value)
        return bool(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer() or isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, list | tuple | dict):
            raise ValueError(value)
        return int(value)
    if kind is float:
        return float(value)
    if kind is str:
        if not isinstance(value, str | int | float):
            raise ValueError(value)
        return str(value)
    if kind is list:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        return list(value if isinstance(value, list | tuple) else [value])
    if kind is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value) or {}
        if not isinstance(value, dict):
            raise ValueError(value)
        return dict(value)
    return value


def _build(cls, values: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        if name not in names:
            raise _unknown(prefix + name, list(all_keys()))
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"config section {prefix + name!r} must be a mapping")
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, kind)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # a section that checks itself (the model's)
        raise ConfigError(f"config section {prefix.rstrip('.')!r}: {err}") from err


def validate(config: TrainConfig) -> TrainConfig:
    """Check choices and ranges; raise ConfigError naming the key."""
    flat = flatten(config.to_dict())
    for name, choices in CHOICES.items():
        if flat[name] not in choices:
            raise ConfigError(f"config key {name!r} = {flat[name]!r}; choose from {choices}")
    positive = (
        "epochs",
        "data.batch_size",
        "data.valid_batch_size",
        "data.num_buckets",
        "optimizer.lr",
    )
    for name in positive:
        if not flat[name] > 0:
            raise ConfigError(f"config key {name!r} must be > 0, got {flat[name]!r}")
    if not 0.0 <= config.optimizer.ema_decay < 1.0:
        raise ConfigError("config key 'optimizer.ema_decay' must be in [0, 1)")
    if not 0.0 <= config.data.valid_fraction < 1.0:
        raise ConfigError("config key 'data.valid_fraction' must be in [0, 1)")
    if not 0.0 <= config.stage_two.fraction < 1.0:
        raise ConfigError(
            f"config key 'stage_two.fraction' = {config.stage_two.fraction} must be in [0, 1) "
            "(0: no stage two)"
        )
    two = config.stage_two
    for name in (*(f"{t}_weight" for t in TERMS), "lr"):
        value = getattr(two, name)
        if value is not None and (value < 0 or name == "lr" and value == 0):
            bound = "> 0" if name == "lr" else ">= 0"
            raise ConfigError(f"config key 'stage_two.{name}' must be {bound} or null")
    return config


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, stopping at leaf keys of the config tree."""
    keys = all_keys()
    out = {}
    for name, value in tree.items():
        full = prefix + name
        if isinstance(value, dict) and full not in keys:
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def _nest(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key {name!r}: {p!r} is not a section")
        node[leaf] = value
    return tree


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """``--a.b 1``, ``--a.b=1`` and ``--set a.b=1`` -> {"a.b": "1"}."""
    out, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--set":
            if i + 1 >= len(tokens) or "=" not in tokens[i + 1]:
                raise ConfigError("--set needs KEY=VALUE")
            name, value = tokens[i + 1].split("=", 1)
            i += 2
        elif token.startswith("--") and "=" in token:
            name, value = token[2:].split("=", 1)
            i += 1
        elif token.startswith("--"):
            if i + 1 >= len(tokens):
                raise ConfigError(f"{token} needs a value")
            name, value = token[2:], tokens[i + 1]
            i += 2
        else:
            raise ConfigError(f"unexpected argument {token!r}; overrides look like --key value")
        out[name] = value
    return out


def read_file(path: str | Path) -> dict:
    """A YAML (.yaml/.yml) or TOML (.toml) file as a nested dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot parse ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    return data


def load_config(
    source: str | Path | dict | TrainConfig | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """A validated TrainConfig from a file path, nested dict or TrainConfig, plus dotted overrides.

    Relative data paths in a file are taken relative to the file's folder.
    """
    if isinstance(source, TrainConfig):
        tree = source.to_dict()
    elif isinstance(source, dict):
        tree = source
    elif source is None:
        tree = {}
    else:
        tree = read_file(source)
        base = Path(source).resolve().parent
        for name in ("train_file", "valid_file"):
            value = tree.get("data", {}).get(name) if isinstance(tree.get("data"), dict) else None
            if value and not Path(value).is_absolute():
                tree["data"][name] = str(base / value)
    flat = flatten(tree)
    valid = list(all_keys())
    for name, value in (overrides or {}).items():
        if name not in valid:
            raise _unknown(name, valid)
        flat[name] = value
    for name in flat:
        if name not in valid:
            raise _unknown(name, valid)
    return validate(_build(TrainConfig, _nest(flat)))


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the full config (every key) as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
