"""Tiny generated datasets and configs for the training tests (EMT-labelled Cu/Ni cells)."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from rsajax.data import attach_labels

#: A tiny MACE: 4x0e+4x1o, two interactions; compiles in seconds on a busy CPU.
TINY_MODEL = {
    "r_max": 4.0,
    "num_bessel": 4,
    "max_ell": 1,
    "hidden_irreps": "4x0e+4x1o",
    "correlation": 2,
    "num_interactions": 2,
    "MLP_irreps": "4x0e",
    "radial_MLP": [8],
}


def emt_structures(
    count: int, seed: int = 0, forces: bool = True, stress: bool = True, rattle: float = 0.05
) -> list:
    """Rattled, strained 4-atom fcc Cu/Ni cells labelled by ASE's EMT (periodic)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.numbers[rng.random(len(atoms)) < 0.4] = 28
        strain = np.eye(3) + rng.normal(0.0, 0.02, (3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.calc = EMT()
        energy = atoms.get_potential_energy()
        f = atoms.get_forces() if forces else None
        s = atoms.get_stress(voigt=False) if stress else None
        attach_labels(atoms, energy=energy, forces=f, stress=s)
        out.append(atoms)
    return out


def write_dataset(path: Path, count: int, seed: int = 0, **kwargs) -> Path:
    """Write ``count`` EMT structures to an extxyz file."""
    ase.io.write(path, emt_structures(count, seed, **kwargs), format="extxyz")
    return path


def tiny_config(tmp_path: Path, train_file: Path, **sections) -> dict:
    """A float64 config for the tiny model; ``sections`` update the defaults section-wise."""
    config = {
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "epochs": 3,
        "dtype": "float64",
        "progress_bar": False,
        "plot": False,
        "data": {
            "train_file": str(train_file),
            "valid_fraction": 0.25,
            "batch_size": 4,
            "valid_batch_size": 8,
            "num_buckets": 1,
        },
        "model": dict(TINY_MODEL),
        "loss": {"energy_weight": 1.0, "forces_weight": 10.0},
        "optimizer": {"lr": 0.01, "ema_decay": 0.0},
        "checkpoint": {"every_steps": 1, "async_save": False},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(name, {}).update(values)
        else:
            config[name] = values
    return config
