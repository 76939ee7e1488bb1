"""Langevin and NVE molecular dynamics of a BKS system in jax-md, in chunks of jitted steps.

Units: eV, A, amu, so jax-md's time unit is sqrt(amu A^2 / eV) = 10.18 fs; ``dt`` and friction are
given in fs here and converted once. Temperatures are passed as arrays of the simulation dtype
from the start (a ramp that starts as a Python float changes dtype inside ``lax.scan``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import minimize, quantity, simulate, space

from rsajax.teachers.bks import BKSSystem

#: jax-md's time unit for eV, A, amu, in fs.
TIME_UNIT_FS = 10.180505
#: Boltzmann constant in eV/K.
KB = 8.617333262e-5


@dataclasses.dataclass
class Trajectory:
    """A running simulation: jax-md state, neighbour list and the jitted chunk function."""

    system: BKSSystem
    chunk_fn: Callable
    steps_per_chunk: int
    state: object
    neighbors: object
    dtype: object = jnp.float64
    steps_done: int = 0
    reallocations: int = 0

    def run(self, temperatures_K: np.ndarray) -> np.ndarray:
        """Advance one step per entry of ``temperatures_K`` (thermostat target; ignored by NVE).

        The length must be a multiple of ``steps_per_chunk``. Returns the (steps,) kinetic
        temperature after each step. A neighbour-list overflow reallocates (with more room) and
        repeats the chunk from its start, so results do not depend on the capacity.
        """
        temperatures_K = np.asarray(temperatures_K, dtype=np.float64)
        if len(temperatures_K) % self.steps_per_chunk:
            raise ValueError(
                f"{len(temperatures_K)} steps is not a multiple of {self.steps_per_chunk}"
            )
        kinetic = []
        for chunk in temperatures_K.reshape(-1, self.steps_per_chunk):
            kT = jnp.asarray(chunk * KB, dtype=self.dtype)
            while True:
                state, neighbors, t_kin = self.chunk_fn(self.state, self.neighbors, kT)
                if not bool(neighbors.did_buffer_overflow):
                    break
                self.reallocations += 1
                if self.reallocations > 20:
                    raise RuntimeError("neighbour list keeps overflowing; is the system exploding?")
                self.neighbors = self.system.neighbor_fn.allocate(
                    self.state.position, extra_capacity=8 * self.reallocations
                )
            self.state, self.neighbors = state, neighbors
            self.steps_done += self.steps_per_chunk
            kinetic.append(np.asarray(t_kin))
        return np.concatenate(kinetic) if kinetic else np.zeros(0)

    def energy(self) -> float:
        """Potential energy (eV) of the current state."""
        return float(self.system.energy_fn(self.state.position, self.neighbors))


def start(
    system: BKSSystem,
    positions_frac: np.ndarray,
    temperature_K: float,
    key: jax.Array,
    *,
    dt_fs: float = 1.0,
    friction_per_fs: float | None = 0.01,
    steps_per_chunk: int = 50,
    dtype=jnp.float64,
) -> Trajectory:
    """Start Langevin dynamics (or NVE when ``friction_per_fs`` is None) with Maxwell velocities.

    Args:
        positions_frac: (N, 3) fractional coordinates of ``system.box``.
        friction_per_fs: Langevin friction gamma in 1/fs (0.01 = 100 fs relaxation time).
        dtype: float64 (exact) or float32 (about 3x faster on CPU; labels are float64 anyway).
    """
    dt = dt_fs / TIME_UNIT_FS
    kT0 = jnp.asarray(temperature_K * KB, dtype=dtype)
    R = jnp.asarray(positions_frac, dtype=dtype)
    neighbors = system.neighbor_fn.allocate(R)
    # a shift in the simulation dtype (a float64 box would promote float32 positions)
    _, shift_fn = space.periodic_general(
        jnp.asarray(system.box, dtype), fractional_coordinates=True
    )
    if friction_per_fs is None:
        init_fn, apply_fn = simulate.nve(system.energy_fn, shift_fn, dt)
    else:
        gamma = friction_per_fs * TIME_UNIT_FS
        init_fn, apply_fn = simulate.nvt_langevin(system.energy_fn, shift_fn, dt, kT0, gamma=gamma)
    mass = jnp.asarray(system.masses, dtype=dtype)[:, None]
    state = init_fn(key, R, mass=mass, kT=kT0, neighbor=neighbors)
    nve = friction_per_fs is None
    update = system.neighbor_fn.update

    @jax.jit
    def chunk_fn(state, neighbors, kT):
        def step(carry, kT_step):
            state, neighbors = carry
            state = (
                apply_fn(state, neighbor=neighbors)
                if nve
                else apply_fn(state, neighbor=neighbors, kT=kT_step)
            )
            neighbors = update(state.position, neighbors)
            t_kin = quantity.temperature(momentum=state.momentum, mass=state.mass) / KB
            return (state, neighbors), t_kin

        (state, neighbors), t_kin = jax.lax.scan(step, (state, neighbors), kT)
        return state, neighbors, t_kin

    return Trajectory(system, chunk_fn, steps_per_chunk, state, neighbors, dtype=dtype)


def kinetic_energy(trajectory: Trajectory) -> float:
    """Kinetic energy (eV) of the current state."""
    s = trajectory.state
    return float(quantity.kinetic_energy(momentum=s.momentum, mass=s.mass))


#: FIRE's largest time steps, tried in turn: a step that carries a pair past the BKS maximum
#: (about 1.2 A for Si-O) into the wall gives a huge force and NaN on the next step (seen with a
#: random 384-atom start at 2.2 g/cm3, an Si-O pair at 0.27 A after 29 steps at 0.05).
FIRE_DT_MAX = (0.05, 0.02, 0.005)


def relax(system: BKSSystem, positions_frac: np.ndarray, steps: int = 300) -> np.ndarray:
    """FIRE minimisation (jax-md) of a random start so MD does not begin by exploding; (N, 3).

    Tries the time-step limits of :data:`FIRE_DT_MAX` in turn until the relaxed positions are
    finite (a NaN energy or force turns every position NaN on the next step; a start that
    relaxes at the first keeps exactly its old result)."""
    for dt_max in FIRE_DT_MAX:
        R = _fire(system, positions_frac, steps, dt_max)
        if np.isfinite(R).all():
            return R
    raise RuntimeError(
        f"FIRE relaxation of {len(positions_frac)} atoms gave non-finite positions or energy "
        f"with every dt_max in {FIRE_DT_MAX}; the start has atoms too close or is too dense"
    )


def _fire(system: BKSSystem, positions_frac: np.ndarray, steps: int, dt_max: float):
    """``steps`` FIRE steps with time steps up to ``dt_max``; (N, 3) fractional positions."""
    init_fn, apply_fn = minimize.fire_descent(
        system.energy_fn, system.shift_fn, dt_start=min(0.01, dt_max), dt_max=dt_max
    )
    R = jnp.asarray(positions_frac, dtype=jnp.float64)
    neighbors = system.neighbor_fn.allocate(R)
    for _ in range(4):  # a few passes in case the list overflows as the structure changes
        state = init_fn(R, neighbor=neighbors)

        @jax.jit
        def run(state, neighbors):
            def step(carry, _):
                state, neighbors = carry
                state = apply_fn(state, neighbor=neighbors)
                return (state, system.neighbor_fn.update(state.position, neighbors)), None

            return jax.lax.scan(step, (state, neighbors), None, length=steps)[0]

        state, new_neighbors = run(state, neighbors)
        if not bool(new_neighbors.did_buffer_overflow):
            return np.asarray(state.position)
        neighbors = system.neighbor_fn.allocate(R, extra_capacity=32)
    raise RuntimeError("FIRE relaxation: neighbour list keeps overflowing")
