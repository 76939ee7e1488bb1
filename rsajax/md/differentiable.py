"""Differentiable MD: gradients of a trajectory observable with respect to model parameters.

The observable here is the mean potential energy along a short NVE trajectory (velocity Verlet
from jax-md) started from fixed positions and Maxwell-Boltzmann momenta. ``jax.grad`` goes
through every integrator step; ``jax.checkpoint`` on each step (remat) keeps only the per-step
carries for the backward pass and recomputes the model's intermediates, so memory grows with the
number of steps times the state size, not times the model's activations.

The neighbour list is fixed over the trajectory (a trajectory of a few hundred fs moves atoms by
less than the skin); :func:`check_list_still_valid` verifies that afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from jax_md import simulate

from rsajax.md.adapter import MDSystem


def mean_energy_observable(
    system: MDSystem,
    R0,
    nbrs,
    *,
    steps: int,
    dt_fs: float = 1.0,
    temperature_K: float = 300.0,
    seed: int = 0,
    remat: bool = True,
) -> Callable:
    """``observable(variables) -> (mean potential energy over the steps (eV), final R)``.

    Args:
        system: a model system (:func:`rsajax.md.adapter.model_system`).
        R0: (N, 3) fractional start; nbrs: its neighbour list, used for every step.
        remat: wrap each step in ``jax.checkpoint``.
    """
    if system.energy_with_params is None:
        raise ValueError("differentiable MD needs a model system (energy with parameters)")
    R0 = jnp.asarray(R0)
    mass = jnp.asarray(system.masses, R0.dtype)[:, None]
    kT = jnp.asarray(temperature_K * units.kB, R0.dtype)
    key = jax.random.PRNGKey(seed)

    def observable(variables):
        def energy(R, neighbor, **kwargs):
            return system.energy_with_params(variables, R, neighbor, **kwargs)

        init_fn, apply_fn = simulate.nve(energy, system.shift_fn, dt_fs * units.fs)
        state = init_fn(key, R0, kT, mass=mass, neighbor=nbrs)

        def step(state, _):
            state = apply_fn(state, neighbor=nbrs)
            return state, energy(state.position, nbrs)

        if remat:
            step = jax.checkpoint(step)
        state, energies = jax.lax.scan(step, state, None, length=steps)
        return jnp.mean(energies), state.position

    return observable


def check_list_still_valid(system: MDSystem, R0, R1) -> None:
    """Raise if an atom moved more than half the skin between ``R0`` and ``R1`` (fractional)."""
    d = np.asarray(R1, np.float64) - np.asarray(R0, np.float64)
    d -= np.round(d)
    moved = np.linalg.norm(d @ np.asarray(system.box).T, axis=-1).max()
    if moved > system.skin / 2:
        raise RuntimeError(
            f"an atom moved {moved:.3f} A, more than half the skin "
            f"({system.skin} A): the fixed neighbour list is no longer complete; "
            "shorten the trajectory"
        )
