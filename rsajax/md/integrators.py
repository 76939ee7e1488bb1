"""jax-md integrators (NVE, Nose-Hoover NVT, Langevin NVT, Nose-Hoover NPT) behind one interface.

Units are eV, A, amu; jax-md's time unit is then ``ase.units.fs`` * 10.18 fs. Times are given in
fs and temperatures in K here, converted once. ``kT`` and the pressure enter every step as arrays
of the state's float dtype (a ramp that starts as a Python float changes dtype inside
``lax.scan``). jax-md's NPT is isotropic and evaluates the energy twice per step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from jax_md import simulate

from rsajax.errors import InputError
from rsajax.md.adapter import MDSystem

KINDS = ("nve", "nvt_langevin", "nvt_nose_hoover", "npt")
#: Boltzmann constant (eV/K) and 1 GPa in eV/A^3.
KB = units.kB
GPA = units.GPa


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """Integrator settings.

    Attributes:
        kind: one of :data:`KINDS`.
        dt_fs: time step (fs).
        friction_per_fs: Langevin friction (1/fs); 0.01 is a 100 fs relaxation time.
        tau_T_fs, tau_P_fs: Nose-Hoover thermostat and barostat time scales (fs).
    """

    kind: str = "nvt_langevin"
    dt_fs: float = 1.0
    friction_per_fs: float = 0.01
    tau_T_fs: float = 100.0
    tau_P_fs: float = 1000.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"ensemble kind {self.kind!r} unknown; choose from {KINDS}")
        if not self.dt_fs > 0:
            raise InputError(f"dt_fs must be positive, got {self.dt_fs}")

    @property
    def dt(self) -> float:
        """Time step in jax-md's units."""
        return self.dt_fs * units.fs


@dataclasses.dataclass(frozen=True)
class Integrator:
    """``init(key, R, nbrs, kT, pressure) -> state``; ``step(state, nbrs, kT, pressure) -> state``;
    ``box(state) -> (3, 3)`` current box. ``pressure`` (eV/A^3) is used by NPT only."""

    init: Callable
    step: Callable
    box: Callable
    ensemble: Ensemble


def make_integrator(
    system: MDSystem, ensemble: Ensemble, kT0: float, pressure0: float = 0.0
) -> Integrator:
    """Integrator for ``system``; ``kT0`` (eV) and ``pressure0`` (eV/A^3) are the defaults
    jax-md builds with (the NPT barostat mass uses ``kT0``)."""
    energy_fn, shift_fn, dt = system.energy_fn, system.shift_fn, ensemble.dt
    box0 = np.asarray(system.box)
    kind = ensemble.kind

    def fixed_box(state):
        return jnp.asarray(box0, dtype=state.position.dtype)

    if kind == "npt":
        init_fn, apply_fn = simulate.npt_nose_hoover(
            energy_fn,
            shift_fn,
            dt,
            pressure0,
            kT0,
            barostat_kwargs={"tau": ensemble.tau_P_fs * units.fs},
            thermostat_kwargs={"tau": ensemble.tau_T_fs * units.fs},
        )

        def init(key, R, nbrs, kT, pressure):
            box = jnp.asarray(box0, dtype=R.dtype)
            return init_fn(key, R, box, mass=_mass(system, R), kT=kT, neighbor=nbrs)

        def step(state, nbrs, kT, pressure):
            return apply_fn(state, neighbor=nbrs, kT=kT, pressure=pressure)

        return Integrator(init, step, simulate.npt_box, ensemble)

    if kind == "nve":
        init_fn, apply_fn = simulate.nve(energy_fn, shift_fn, dt)
    elif kind == "nvt_langevin":
        gamma = ensemble.friction_per_fs / units.fs
        init_fn, apply_fn = simulate.nvt_langevin(energy_fn, shift_fn, dt, kT0, gamma=gamma)
    else:
        init_fn, apply_fn = simulate.nvt_nose_hoover(
            energy_fn, shift_fn, dt, kT0, tau=ensemble.tau_T_fs * units.fs
        )

    def init(key, R, nbrs, kT, pressure):
        return init_fn(key, R, mass=_mass(system, R), kT=kT, neighbor=nbrs)

    def step(state, nbrs, kT, pressure):
        if kind == "nve":
            return apply_fn(state, neighbor=nbrs)
        return apply_fn(state, neighbor=nbrs, kT=kT)

    return Integrator(init, step, fixed_box, ensemble)


def _mass(system: MDSystem, R: jnp.ndarray) -> jnp.ndarray:
    return jnp.asarray(system.masses, dtype=R.dtype)[:, None]


def kinetic_energy(momentum: jnp.ndarray, mass: jnp.ndarray) -> jnp.ndarray:
    """``sum p^2 / 2m`` (eV) of momenta (N, 3) and masses (N, 1), summed in the momenta's dtype.

    Not jax-md's ``quantity.kinetic_energy``: that sums with an explicit float64 dtype, which
    under float32 MD (x64 off) is truncated to float32 anyway and warns at every compile. In
    float64 both are the same operations.
    """
    return 0.5 * jnp.sum(momentum**2 / mass)


def thermo(system: MDSystem, state, nbrs, box: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """Instantaneous T (K), kinetic / potential energy (eV), volume (A^3), stress (3, 3) and
    pressure (eV/A^3, kinetic + virial). Stress is the model's: ``(1/V) dE/d eps`` (ASE sign)
    with the strain applied through jax-md's ``perturbation``. For a system with a long-range
    (RSA) part (``system.energy_parts_fn``) also ``long_range`` (eV), the part of the potential
    energy the RSA branch contributes, from the same evaluation; absent otherwise."""
    R = state.position
    parts = system.energy_parts_fn

    def energy(eps):
        perturbation = jnp.eye(3, dtype=R.dtype) + eps
        if parts is not None:
            return parts(R, nbrs, box=box, perturbation=perturbation)
        return system.energy_fn(R, nbrs, box=box, perturbation=perturbation), None

    (e_pot, e_long_range), de_deps = jax.value_and_grad(energy, has_aux=True)(
        jnp.zeros((3, 3), R.dtype)
    )
    volume = jnp.abs(jnp.linalg.det(box))
    kinetic = kinetic_energy(state.momentum, state.mass)
    stress = de_deps / volume
    n_atoms = R.shape[0]
    pressure = (2.0 * kinetic / 3.0 - jnp.trace(de_deps) / 3.0) / volume
    temperature = 2.0 * kinetic / (3.0 * n_atoms * KB)
    out = {
        "temperature": temperature,
        "kinetic": kinetic,
        "potential": e_pot,
        "volume": volume,
        "pressure": pressure,
        "stress": stress,
    }
    if e_long_range is not None:
        out["long_range"] = e_long_range
    return out
