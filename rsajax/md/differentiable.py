"""Differentiable MD: gradients of a trajectory observable with respect to model parameters.

Two observables of a short NVE trajectory (velocity Verlet from jax-md) started from fixed
positions and Maxwell-Boltzmann momenta: the mean potential energy
(:func:`mean_energy_observable`), and the frames themselves (:func:`trajectory_frames`), from
which any differentiable structural quantity follows (e.g. a neutron S(Q) with
:func:`rsajax.analysis.structure_factor.weighted_structure_factor`). ``jax.grad`` goes through
every integrator step; ``jax.checkpoint`` on each step (remat) keeps only the per-step carries for
the backward pass and recomputes the model's intermediates, so memory grows with the number of
steps times the state size, not times the model's activations.

The neighbour list is fixed over the trajectory (a trajectory of a few hundred fs moves atoms by
less than the skin); :func:`check_list_still_valid` verifies that afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from jax_md import simulate, space

from rsajax.md.adapter import MDSystem


def _nve(system: MDSystem, variables, R0, nbrs, dt_fs: float, temperature_K: float, seed: int):
    """``(initial state, step(state) -> state, energy(R) -> E)`` of NVE with ``variables``."""

    def energy(R, neighbor, **kwargs):
        return system.energy_with_params(variables, R, neighbor, **kwargs)

    mass = jnp.asarray(system.masses, R0.dtype)[:, None]
    kT = jnp.asarray(temperature_K * units.kB, R0.dtype)
    init_fn, apply_fn = simulate.nve(energy, system.shift_fn, dt_fs * units.fs)
    state = init_fn(jax.random.PRNGKey(seed), R0, kT, mass=mass, neighbor=nbrs)
    return state, lambda state: apply_fn(state, neighbor=nbrs), lambda R: energy(R, nbrs)


def _check_model_system(system: MDSystem) -> None:
    if system.energy_with_params is None:
        raise ValueError("differentiable MD needs a model system (energy with parameters)")


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
    _check_model_system(system)
    R0 = jnp.asarray(R0)

    def observable(variables):
        state, advance, energy = _nve(system, variables, R0, nbrs, dt_fs, temperature_K, seed)

        def step(state, _):
            state = advance(state)
            return state, energy(state.position)

        if remat:
            step = jax.checkpoint(step)
        state, energies = jax.lax.scan(step, state, None, length=steps)
        return jnp.mean(energies), state.position

    return observable


def trajectory_frames(
    system: MDSystem,
    R0,
    nbrs,
    *,
    steps: int,
    every: int = 1,
    dt_fs: float = 1.0,
    temperature_K: float = 300.0,
    seed: int = 0,
    remat: bool = True,
) -> Callable:
    """``frames(variables) -> (steps // every, N, 3)`` Cartesian positions (A) after steps
    ``every, 2 every, ...``, differentiable in ``variables``.

    Cartesian, not fractional: jax-md's ``space.transform`` has a custom JVP that passes a
    fractional coordinate's tangent through unchanged, so inside a jax-md trajectory the
    derivative of a *fractional* position is the Cartesian one. The frames are therefore mapped
    with ``space.transform`` (value ``R @ box.T``, derivative correct); ``R @ box.T`` by hand
    would multiply the derivative by the box a second time.
    The same start, momenta and fixed neighbour list as :func:`mean_energy_observable`.

    Args:
        system: a model system (:func:`rsajax.md.adapter.model_system`).
        R0: (N, 3) fractional start; nbrs: its neighbour list, used for every step.
        steps: integrator steps; every: record one frame per ``every`` steps (divides ``steps``).
        remat: wrap each step in ``jax.checkpoint``.
    """
    _check_model_system(system)
    if steps < 1 or every < 1 or steps % every:
        raise ValueError(f"steps={steps} must be a positive multiple of every={every}")
    R0 = jnp.asarray(R0)
    box = jnp.asarray(system.box, R0.dtype)

    def frames(variables):
        state, advance, _ = _nve(system, variables, R0, nbrs, dt_fs, temperature_K, seed)
        if remat:
            advance = jax.checkpoint(advance)

        def stride(state, _):
            state = jax.lax.fori_loop(0, every, lambda _, s: advance(s), state)
            return state, state.position

        _, positions = jax.lax.scan(stride, state, None, length=steps // every)
        return space.transform(box, positions)

    return frames


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
