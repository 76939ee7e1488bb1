"""Host-side preparation of a run: read and split data, check labels, model config from statistics.

Everything here runs before the first compilation, so bad input fails fast.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from rsajax.data import (
    DatasetStatistics,
    GraphRecord,
    atoms_to_record,
    compute_statistics,
    read_structures,
)
from rsajax.nn.model import MACEConfig
from rsajax.nn.rsa import as_rsa_config, make_kset_fn
from rsajax.potential import EnergyFn, make_potential
from rsajax.train.batches import GlobalBatches
from rsajax.train.config import ConfigError, TrainConfig
from rsajax.train.loss import TERMS, check_labels


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
        weights = {name: getattr(cfg.loss, f"{name}_weight") for name in TERMS}
        check_labels(weights, self.label_counts(), set(predicted), self.source)


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


def load_data(cfg: TrainConfig, sub_batches: int) -> TrainingData:
    """Read, split (``data.valid_fraction`` with ``seed``), build neighbour lists and batches."""
    d = cfg.data
    if not d.train_file:
        raise ConfigError("data.train_file is empty: give the training structures")
    structures = _read(d.train_file, cfg)
    if d.valid_file:
        train, valid = structures, _read(d.valid_file, cfg)
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(structures))
        n_valid = max(1, int(round(d.valid_fraction * len(structures))))
        if n_valid >= len(structures):
            raise ConfigError(
                f"{d.train_file}: {len(structures)} structure(s) cannot be split "
                "into training and validation; give data.valid_file"
            )
        valid = [structures[i] for i in order[:n_valid]]
        train = [structures[i] for i in order[n_valid:]]
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


def model_config_from(cfg: TrainConfig, stats: DatasetStatistics) -> MACEConfig:
    """The model's MACEConfig: hyperparameters from the config, normalisation from the data."""
    m, s = cfg.model, cfg.statistics
    if s.scaling == "rms_forces":
        scale = stats.rms_forces
    elif s.scaling == "std_energy":
        scale = stats.std_energy_per_atom
    else:
        scale = 1.0
    scale = scale if scale > 0 else 1.0
    energies = stats.atomic_energies
    fields = dict(
        r_max=m.r_max,
        num_bessel=m.num_bessel,
        num_polynomial_cutoff=m.num_polynomial_cutoff,
        max_ell=m.max_ell,
        hidden_irreps=m.hidden_irreps,
        correlation=m.correlation,
        num_interactions=m.num_interactions,
        MLP_irreps=m.MLP_irreps,
        radial_MLP=tuple(m.radial_MLP),
        model_type=m.model_type,
        interaction_first=m.interaction_first,
        interaction=m.interaction,
        long_range=m.long_range,
        avg_num_neighbors=stats.avg_num_neighbors,
        atomic_numbers=tuple(stats.atomic_numbers),
        atomic_energies=tuple(energies),
        scale=float(scale),
        shift=float(stats.mean_interaction_energy) if s.shift else 0.0,
        dtype=cfg.dtype,
    )
    clash = set(m.extra) & set(fields)
    if clash:
        raise ConfigError(f"model.extra repeats keys set elsewhere: {sorted(clash)}")
    try:
        return MACEConfig(**fields, **m.extra)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model config: {err}") from err
