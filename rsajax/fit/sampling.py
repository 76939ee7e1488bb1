"""NVT frames of a model, stored with their neighbour lists, for trajectory reweighting.

Reweighting needs the potential energy of every stored frame under *new* parameters, so each
frame keeps the jax-md neighbour list it was sampled with (``idx``, (2, M) per frame, one
capacity for all): the energy of a frame is then ``system.energy_with_params(variables, R,
nbrs.set(idx=idx_f))``, batched over frames with ``jax.lax.map``.

Sampling is Langevin NVT (jax-md ``simulate.nvt_langevin``): DiffTRe's reweighting formula
``w_i ~ exp(-beta (U_theta(x_i) - U_theta0(x_i)))`` holds for the canonical ensemble.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from jax_md import simulate, space

from rsajax.md.adapter import MDSystem


@dataclasses.dataclass(frozen=True)
class Samples:
    """Frames of one NVT run and what reweighting needs of them.

    Attributes:
        positions: (F, N, 3) fractional coordinates.
        idx: (F, 2, M) the Sparse neighbour list of each frame.
        cartesian: (F, N, 3) Cartesian positions, A.
        energies: (F,) potential energies (eV) under the sampling parameters.
        temperature_K: the thermostat's temperature.
        last: (N, 3) fractional positions at the end of the run (the next run starts there).
    """

    positions: np.ndarray
    idx: np.ndarray
    cartesian: np.ndarray
    energies: np.ndarray
    temperature_K: float
    last: np.ndarray

    @property
    def beta(self) -> float:
        """1 / (k_B T) in 1/eV."""
        return 1.0 / (units.kB * self.temperature_K)


def frame_energies(system: MDSystem, nbrs, variables, positions, idx) -> jnp.ndarray:
    """(F,) energies of fractional ``positions`` (F, N, 3) with lists ``idx`` (F, 2, M) under
    ``variables``; differentiable in ``variables``. ``nbrs`` is any list of the system with
    capacity M (its other fields are not read)."""

    def one(args):
        R, i = args
        return system.energy_with_params(variables, R, nbrs.set(idx=i))

    return jax.lax.map(one, (jnp.asarray(positions), jnp.asarray(idx)))


def _langevin(system: MDSystem, temperature_K: float, dt_fs: float, friction_per_fs: float):
    """``(init_fn, advance(variables, state, nbrs, n))``, jitted once per system and settings
    (kept in ``system.compiled``, so repeated sampling in an outer loop does not recompile)."""
    key = ("sq_fit_langevin", temperature_K, dt_fs, friction_per_fs)
    if key in system.compiled:
        return system.compiled[key]

    def energy(R, neighbor, variables=None, **kwargs):
        return system.energy_with_params(variables, R, neighbor, **kwargs)

    kT = temperature_K * units.kB
    init_fn, apply_fn = simulate.nvt_langevin(
        energy, system.shift_fn, dt_fs * units.fs, kT, gamma=friction_per_fs / units.fs
    )

    @partial(jax.jit, static_argnums=3)
    def advance(variables, state, nbrs, n):
        def body(_, carry):
            state, nbrs = carry
            state = apply_fn(state, neighbor=nbrs, variables=variables)
            return state, nbrs.update(state.position)

        return jax.lax.fori_loop(0, n, body, (state, nbrs))

    system.compiled[key] = (init_fn, advance)
    return init_fn, advance


def _energies_fn(system: MDSystem):
    if "sq_fit_energies" not in system.compiled:
        system.compiled["sq_fit_energies"] = jax.jit(partial(frame_energies, system))
    return system.compiled["sq_fit_energies"]


def sample_nvt(
    system: MDSystem,
    variables,
    R0,
    *,
    frames: int,
    every: int,
    equilibrate: int = 0,
    temperature_K: float = 300.0,
    dt_fs: float = 1.0,
    friction_per_fs: float = 0.02,
    seed: int = 0,
    nbrs=None,
) -> tuple[Samples, object]:
    """Langevin NVT from fractional ``R0`` (N, 3): ``equilibrate`` steps, then ``frames`` frames
    one every ``every`` steps.

    Returns ``(samples, nbrs)``; ``nbrs`` is the last neighbour list (template for
    :func:`frame_energies`; all frames share its capacity). A list that overflows is
    reallocated and the stretch since the last frame is run again.
    """
    if system.energy_with_params is None:
        raise ValueError("sample_nvt needs a model system (energy with parameters)")
    R0 = jnp.asarray(R0)
    if nbrs is None:
        nbrs = system.allocate(R0)
    mass = jnp.asarray(system.masses, R0.dtype)[:, None]
    init_fn, advance = _langevin(system, float(temperature_K), float(dt_fs), float(friction_per_fs))
    state = init_fn(jax.random.PRNGKey(seed), R0, mass=mass, neighbor=nbrs, variables=variables)

    def run(state, nbrs, n):
        while True:
            new_state, new_nbrs = advance(variables, state, nbrs, n)
            if not bool(new_nbrs.did_buffer_overflow):
                return new_state, new_nbrs
            nbrs = system.allocate(state.position, extra_capacity=8)

    if equilibrate:
        state, nbrs = run(state, nbrs, equilibrate)
    positions, idx = [], []
    for _ in range(frames):
        state, nbrs = run(state, nbrs, every)
        positions.append(np.asarray(state.position))
        idx.append(np.asarray(nbrs.idx))
    # A reallocation only grows the list: pad earlier frames to the last list's capacity with
    # the padding index N, so one template list serves every frame.
    width = nbrs.idx.shape[1]
    if max(i.shape[1] for i in idx) > width:
        raise RuntimeError("the neighbour list shrank during sampling; cannot share one capacity")
    n = R0.shape[0]
    idx = np.stack([np.pad(i, ((0, 0), (0, width - i.shape[1])), constant_values=n) for i in idx])
    positions = np.stack(positions)
    energies = np.asarray(_energies_fn(system)(nbrs, variables, positions, idx))
    box = jnp.asarray(system.box, positions.dtype)
    return (
        Samples(
            positions=positions,
            idx=idx,
            cartesian=np.asarray(space.transform(box, jnp.asarray(positions))),
            energies=energies,
            temperature_K=float(temperature_K),
            last=positions[-1],
        ),
        nbrs,
    )
