"""Host-side preparation of a run: the named steps :func:`rsajax.train.loop.train` composes.

Devices and checkpoints, data (read, split, labels checked), the model config from the data's
statistics, the model (abstract until every check passed), the resume point and the optimiser.
Everything here runs before the first compilation, so bad input fails fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from rsajax.data import (
    DatasetStatistics,
    GraphRecord,
    atoms_to_record,
    compute_statistics,
    read_structures,
)
from rsajax.nn.model import MACE, DatasetInfo, MACEConfig, dummy_graph, init_model
from rsajax.nn.rsa import as_rsa_config, make_kset_fn
from rsajax.potential import EnergyFn, energy_fn_from_model, make_potential
from rsajax.train import sharding
from rsajax.train.batches import GlobalBatches
from rsajax.train.checkpoint import Checkpoints, Position
from rsajax.train.config import (
    ConfigError,
    StatisticsConfig,
    TrainConfig,
    flatten,
    load_config,
)
from rsajax.train.loss import TERMS, check_labels
from rsajax.train.optim import learning_rate_schedule, make_optimizer


def configure_jax(cfg: TrainConfig) -> None:
    """Join a multi-host job when asked, and turn on float64 for a float64 run (a global JAX
    flag: it must be set before any array of the run is made)."""
    sharding.initialize_distributed(cfg.parallel)
    if cfg.dtype == "float64":
        jax.config.update("jax_enable_x64", True)


def open_checkpoints(cfg: TrainConfig, resume: bool) -> Checkpoints:
    """The run's checkpoint store; a fresh run refuses a folder that holds checkpoints and
    ``resume`` needs one."""
    out = Path(cfg.output_dir)
    checkpoints = Checkpoints(out / "checkpoints", async_save=cfg.checkpoint.async_save)
    if checkpoints.latest() is not None and not resume:
        raise ConfigError(
            f"{out} already holds checkpoints; pass --resume to continue or choose "
            "another output_dir"
        )
    if resume and checkpoints.latest() is None:
        raise ConfigError(f"--resume: no complete checkpoint in {checkpoints.directory}")
    return checkpoints


def device_mesh(cfg: TrainConfig) -> tuple[Mesh, int]:
    """The data-parallel mesh and the number of stacked sub-batches per step (a multiple of
    its devices)."""
    mesh = sharding.make_mesh(cfg.parallel.num_devices)
    num_sub = cfg.parallel.sub_batches or mesh.size
    if num_sub % mesh.size:
        raise ConfigError(
            f"parallel.sub_batches = {num_sub} is not a multiple of the {mesh.size} devices"
        )
    return mesh, num_sub


@dataclasses.dataclass
class TrainingData:
    """Training and validation batches plus the training-set statistics."""

    train: GlobalBatches
    valid: GlobalBatches
    statistics: DatasetStatistics
    source: str

    @property
    def valid_has_stress(self) -> bool:
        return any(r.stress is not None for r in self.valid.records)

    def label_counts(self) -> dict[str, int]:
        """Training structures that carry each label."""
        return {
            name: sum(getattr(r, name) is not None for r in self.train.records) for name in TERMS
        }

    def check_labels(self, cfg: TrainConfig, energy_fn: EnergyFn, variables: dict) -> None:
        """Every weighted loss term has labels in the training set and a model prediction.

        What the model predicts is found by abstract evaluation (``jax.eval_shape``): no compute.
        """
        batch, _ = self.train.batch(0, 0)
        first = jax.tree_util.tree_map(lambda x: x[0], batch)
        predicted = jax.eval_shape(make_potential(energy_fn), variables, first)
        counts, source = self.label_counts(), self.source
        check_labels(cfg.loss_weights(), counts, set(predicted), source)
        if cfg.stage_two_start is not None:
            weights = cfg.loss_weights(stage_two=True)
            check_labels(weights, counts, set(predicted), source, "stage_two")


def _read(path: str, cfg: TrainConfig) -> list:
    d = cfg.data
    return read_structures(
        path,
        energy_key=d.energy_key,
        forces_key=d.forces_key,
        stress_key=d.stress_key,
        virial_key=d.virial_key,
        dipole_key=d.dipole_key,
    )


def _records(structures: list, r_max: float) -> list[GraphRecord]:
    return [atoms_to_record(atoms, r_max) for atoms in structures]


def validation_split(count: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(validation, training)`` indices into a file of ``count`` structures when the run has no
    ``data.valid_file``: a permutation by ``seed``, its first ``round(valid_fraction * count)``
    (at least one) held out. The one place the split is made, so a run's validation frames can
    be looked up afterwards."""
    order = np.random.default_rng(seed).permutation(count)
    n_valid = max(1, int(round(valid_fraction * count)))
    return order[:n_valid], order[n_valid:]


def load_data(cfg: TrainConfig, sub_batches: int) -> TrainingData:
    """Read, split (``data.valid_fraction`` with ``seed``), build neighbour lists and batches."""
    d = cfg.data
    if not d.train_file:
        raise ConfigError("data.train_file is empty: give the training structures")
    structures = _read(d.train_file, cfg)
    if d.valid_file:
        train, valid = structures, _read(d.valid_file, cfg)
    else:
        valid_index, train_index = validation_split(len(structures), d.valid_fraction, cfg.seed)
        if len(train_index) == 0:
            raise ConfigError(
                f"{d.train_file}: {len(structures)} structure(s) cannot be split "
                "into training and validation; give data.valid_file"
            )
        valid = [structures[i] for i in valid_index]
        train = [structures[i] for i in train_index]
    if d.batch_size % sub_batches:
        raise ConfigError(
            f"data.batch_size = {d.batch_size} is not a multiple of the "
            f"{sub_batches} sub-batches (one per device by default)"
        )
    train_records = _records(train, cfg.model.r_max)
    valid_records = _records(valid, cfg.model.r_max)
    numbers = sorted({int(z) for r in train_records + valid_records for z in r.numbers})
    statistics = compute_statistics(train_records, numbers)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    valid_batch = -(-d.valid_batch_size // sub_batches) * sub_batches
    kset_fn = None
    if cfg.model.long_range is not None:  # RSA: one static k-set size for the whole dataset
        rsa = as_rsa_config(cfg.model.long_range, r_max=cfg.model.r_max)
        kset_fn = make_kset_fn(rsa, train_records + valid_records)
    return TrainingData(
        train=GlobalBatches(
            train_records,
            d.batch_size,
            sub_batches,
            num_buckets=d.num_buckets,
            shuffle=d.shuffle,
            seed=cfg.seed,
            dtype=dtype,
            kset_fn=kset_fn,
        ),
        valid=GlobalBatches(
            valid_records,
            valid_batch,
            sub_batches,
            num_buckets=d.num_buckets,
            shuffle=False,
            seed=cfg.seed,
            dtype=dtype,
            kset_fn=kset_fn,
        ),
        statistics=statistics,
        source=d.train_file,
    )


def dataset_info(stats: DatasetStatistics, normalisation: StatisticsConfig) -> DatasetInfo:
    """What the model takes from the training set: elements, E0s, avg_num_neighbors, and the
    scale and shift that ``normalisation`` (the config's ``statistics`` section) asks for."""
    if normalisation.scaling == "rms_forces":
        scale = stats.rms_forces
    elif normalisation.scaling == "std_energy":
        scale = stats.std_energy_per_atom
    else:
        scale = 1.0
    return DatasetInfo(
        atomic_numbers=tuple(stats.atomic_numbers),
        atomic_energies=tuple(stats.atomic_energies),
        avg_num_neighbors=stats.avg_num_neighbors,
        scale=float(scale) if scale > 0 else 1.0,
        shift=float(stats.mean_interaction_energy) if normalisation.shift else 0.0,
    )


def model_config_from(cfg: TrainConfig, stats: DatasetStatistics) -> MACEConfig:
    """The model's config: the architecture from the config's ``model`` section, the rest from
    the data."""
    return MACEConfig.build(cfg.model, dataset_info(stats, cfg.statistics), dtype=cfg.dtype)


def checked_model(
    cfg: TrainConfig, model_config: MACEConfig, data: TrainingData
) -> tuple[MACE, dict]:
    """(model, variables) after checking that every weighted loss term has labels and a
    prediction; without compiling when possible.

    Short-range configs give only the shapes of the variables (``jax.eval_shape``, no compile):
    :func:`concrete_model` computes them once every check has passed. Other models (e.g. RSA)
    are built by ``init_model`` itself, so the trainer works unchanged for any model it returns.
    """
    if model_config.long_range is None:
        model = MACE(model_config)
        graph = dummy_graph(model_config)
        variables = jax.eval_shape(model.init, jax.random.PRNGKey(cfg.seed), graph)
    else:
        model, variables = init_model(model_config, cfg.seed)
    data.check_labels(cfg, energy_fn_from_model(model), variables)  # abstract evaluation only
    return model, variables


def concrete_model(
    model_config: MACEConfig, seed: int, model: MACE, variables: dict
) -> tuple[MACE, dict]:
    """``(model, variables)`` with computed variables (initialises them if only shapes)."""
    if isinstance(jax.tree_util.tree_leaves(variables)[0], jax.ShapeDtypeStruct):
        return init_model(model_config, seed)
    return model, variables


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


#: The config keys of data files, whose content (not path) decides the run.
DATA_FILE_KEYS = ("data.train_file", "data.valid_file")


def data_digests(cfg: TrainConfig) -> dict[str, str]:
    """SHA-256 of each data file the run reads, by config key (stored in every checkpoint), so
    that a resume from a moved folder sees that only the path changed."""
    paths = flatten(cfg.to_dict())
    digests = {}
    for key in DATA_FILE_KEYS:
        path = Path(str(paths.get(key) or ""))
        if str(path) not in ("", ".") and path.is_file():
            digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@dataclasses.dataclass
class ResumePoint:
    """Where a run starts: the data position, the best validation loss so far and, when resumed,
    the checkpoint step to restore (None: a fresh run)."""

    position: Position = dataclasses.field(default_factory=Position)
    best_valid_loss: float = float("inf")
    step: int | None = None


def resume_point(
    checkpoints: Checkpoints, params, model_config: MACEConfig, cfg: TrainConfig
) -> ResumePoint:
    """The latest checkpoint's position, after checking it fits ``params`` (shapes suffice) and
    warning about config keys changed since it was written (the run then is not exact). A data
    file that moved but whose content the checkpoint's digest matches is no change."""
    step = checkpoints.latest()
    meta = checkpoints.check_compatible(step, params, model_config)
    stored = meta["config"]
    try:  # as this version reads it: keys added since take their defaults, presets are resolved
        stored = load_config(stored).to_dict()
    except ConfigError:
        pass  # compare as written
    old, new = flatten(stored), flatten(cfg.to_dict())
    stored_digests, digests = meta.get("data_digests", {}), data_digests(cfg)
    moved = {k for k in DATA_FILE_KEYS if k in digests and stored_digests.get(k) == digests[k]}
    changed = [
        k
        for k in new
        if not k.startswith(HARMLESS_ON_RESUME) and k not in moved and old.get(k) != new[k]
    ]
    if changed:
        warnings.warn(
            "resuming with config keys changed since the checkpoint: "
            + ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
            + " (the run will differ from an uninterrupted one)",
            stacklevel=3,
        )
    best = meta.get("best_valid_loss", float("inf"))
    return ResumePoint(Position(meta["epoch"], meta["batch"]), best, step)


def build_optimizer(
    cfg: TrainConfig, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax optimiser and its learning-rate schedule (for the log) over the whole run."""
    total_steps = steps_per_epoch * cfg.epochs
    start, lr = cfg.stage_two_start, cfg.stage_two.lr
    stage_two = None if start is None or lr is None else (start * steps_per_epoch, lr)
    optimizer = make_optimizer(cfg.optimizer, cfg.schedule, steps_per_epoch, total_steps, stage_two)
    return optimizer, learning_rate_schedule(cfg.optimizer, cfg.schedule, total_steps, stage_two)
