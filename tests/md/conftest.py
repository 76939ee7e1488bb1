"""Tiny models and structures shared by the MD tests (float64)."""

import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.data import random_silica_box
from rsajax.md.adapter import model_system
from rsajax.nn.model import MACEConfig, init_model


def tiny_config(**overrides) -> MACEConfig:
    """A MACE small enough to compile in seconds (vector features, two interactions)."""
    settings = dict(
        r_max=3.0,
        num_bessel=4,
        max_ell=1,
        num_channels=4,
        max_L=1,
        correlation=1,
        radial_MLP=(16,),
        atomic_numbers=(8, 14),
        atomic_energies=(-1.0, -2.0),
        avg_num_neighbors=4.0,
        MLP_irreps="8x0e",
    )
    settings.update(overrides)
    return MACEConfig(**settings)


def triclinic_silica(n_atoms: int = 30, seed: int = 1):
    """A sheared silica box (all cell angles differ from 90 degrees), wide enough for r_max 3."""
    atoms = random_silica_box(n_atoms, density=1.8, seed=seed)
    shear = np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [0.1, -0.15, 1.05]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    return atoms


@pytest.fixture(scope="session")
def tiny_model():
    return init_model(tiny_config(), seed=0)


@pytest.fixture(scope="session")
def tiny_system(tiny_model):
    """(system, atoms, R) for the tiny model on a 30-atom triclinic silica box."""
    model, variables = tiny_model
    atoms = triclinic_silica()
    system = model_system(model, variables, atoms.numbers, atoms.cell.array.T)
    return system, atoms, jnp.asarray(atoms.get_scaled_positions())


@pytest.fixture(scope="session")
def lj_system():
    """(system, R) for a 60-atom Lennard-Jones liquid in a triclinic box (cheap to compile)."""
    from rsajax.md.teacher import lennard_jones_system

    atoms = triclinic_silica(60, seed=2)
    atoms.numbers[:] = 18
    system = lennard_jones_system(atoms.numbers, atoms.cell.array.T, sigma=2.0, epsilon=0.01)
    return system, jnp.asarray(atoms.get_scaled_positions())
