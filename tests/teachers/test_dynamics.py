"""MD with the BKS teacher: NVE energy conservation, Langevin ramp in float32 and float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.io import read

from rsajax.teachers import bks_silica, dynamics
from tests.teachers.test_dataset import DEFAULT_DATASET


def liquid_frame(target_K: float = 3000.0):
    """The shipped 96-atom quench frame closest to ``target_K``."""
    frames = [a for a in read(DEFAULT_DATASET, ":") if a.info["stage"] == "quench"]
    frames = [a for a in frames if len(a) == 96]
    return min(frames, key=lambda a: abs(a.info["temperature_K"] - target_K))


def total_energy_drift(atoms, dt_fs: float, steps: int) -> tuple[float, float]:
    """(drift in eV/atom/ps from a linear fit, RMS fluctuation in eV/atom) of an NVE run."""
    system = bks_silica(atoms.numbers, atoms.cell.array.T, skin=1.0)
    traj = dynamics.start(
        system,
        atoms.get_scaled_positions(),
        3000.0,
        jax.random.PRNGKey(0),
        dt_fs=dt_fs,
        friction_per_fs=None,
        steps_per_chunk=25,
    )
    energies = []
    for _ in range(steps // 25):
        traj.run(np.zeros(25))
        energies.append(traj.energy() + dynamics.kinetic_energy(traj))
    energies = np.array(energies) / len(atoms)
    times_ps = np.arange(1, len(energies) + 1) * 25 * dt_fs / 1000.0
    slope = np.polyfit(times_ps, energies, 1)[0]
    return float(slope), float(np.std(energies - energies.mean()))


def test_nve_conserves_energy_in_the_liquid():
    atoms = liquid_frame()
    drift, fluctuation = total_energy_drift(atoms, dt_fs=1.0, steps=500)
    # measured (1 ps, dt 1 fs): drift 7e-6 eV/atom/ps, RMS fluctuation 1.4e-4 eV/atom
    assert abs(drift) < 2e-4
    assert fluctuation < 5e-4


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_langevin_temperature_ramp_runs_in_both_dtypes(dtype):
    # kT enters lax.scan as an array of the simulation dtype (a Python float start breaks scan)
    atoms = liquid_frame(1000.0)
    system = bks_silica(atoms.numbers, atoms.cell.array.T, skin=1.0)
    traj = dynamics.start(
        system,
        atoms.get_scaled_positions(),
        1000.0,
        jax.random.PRNGKey(1),
        friction_per_fs=0.05,
        steps_per_chunk=50,
        dtype=dtype,
    )
    kinetic = traj.run(np.linspace(1000.0, 2000.0, 200))
    assert traj.state.position.dtype == dtype
    assert np.all(np.isfinite(kinetic))
    assert 500.0 < kinetic[-50:].mean() < 3000.0  # a 20 fs thermostat follows the ramp


def test_relax_retries_with_smaller_steps_when_fire_blows_up(monkeypatch):
    """A FIRE run that ends in NaN (as a random 384-atom start did with dt_max 0.05: an Si-O pair
    thrown to 0.27 A) is redone with the next, smaller dt_max; when all fail, one clear error."""
    from rsajax.teachers import structures

    start = structures.random_silica(32, 2.2, np.random.default_rng(3))
    system = bks_silica(start.numbers, start.cell.array.T, skin=1.0)
    positions = start.get_scaled_positions()
    real_fire, tried = dynamics._fire, []

    def fire_that_blows_up_at_large_steps(system, positions, steps, dt_max):
        tried.append(dt_max)
        out = real_fire(system, positions, steps, dt_max)
        return np.full_like(out, np.nan) if dt_max > 0.03 else out

    monkeypatch.setattr(dynamics, "_fire", fire_that_blows_up_at_large_steps)
    with jax.enable_x64(True):
        relaxed = dynamics.relax(system, positions, 60)
        assert tried == [0.05, 0.02] and np.isfinite(relaxed).all()
        assert np.allclose(relaxed, real_fire(system, positions, 60, 0.02))
        neighbors = system.neighbor_fn.allocate(jnp.asarray(relaxed))
        start_neighbors = system.neighbor_fn.allocate(jnp.asarray(positions))
        assert system.energy_fn(relaxed, neighbors) < system.energy_fn(positions, start_neighbors)
        monkeypatch.setattr(dynamics, "FIRE_DT_MAX", (0.05, 0.04))
        with pytest.raises(RuntimeError, match="non-finite positions or energy"):
            dynamics.relax(system, positions, 60)
