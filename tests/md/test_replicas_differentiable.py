"""Replicas advanced with vmap equal separate runs; gradients through a trajectory match finite
differences (with and without remat), for the mean energy and for an observable of the frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.md.differentiable import (
    check_list_still_valid,
    mean_energy_observable,
    trajectory_frames,
)
from rsajax.md.integrators import Ensemble
from rsajax.md.protocols import Schedule, Stage, build_schedule
from rsajax.md.replicas import run_replicas, stack_schedules
from rsajax.md.simulation import Simulation
from rsajax.md.teacher import lennard_jones_system


@pytest.mark.slow
def test_vmapped_replicas_equal_separate_runs(lj_system):
    system, R = lj_system
    ensemble = Ensemble("nvt_langevin", dt_fs=2.0)
    fast = build_schedule([Stage("quench", T_end=20.0, rate_K_per_ps=500.0)], 2.0, 120.0)
    slow = build_schedule([Stage("quench", T_end=20.0, rate_K_per_ps=250.0)], 2.0, 120.0)
    T, P = stack_schedules([fast, slow])
    assert T.shape == (2, 200) and T[0, 100:].max() == 20.0 and T[1, -1] == 20.0
    res = run_replicas(system, ensemble, R, T, P, seeds=[3, 4], records_per_chunk=20)
    assert res.thermo["temperature"].shape == (2, 20)
    for i, (seed, schedule) in enumerate([(3, fast), (4, slow)]):
        schedule = Schedule(T[i], P[i], np.zeros(200, np.int32), ("quench",))
        single = Simulation(
            system, ensemble, R, schedule, seed=seed, records_per_chunk=20, progress=False
        ).run()
        np.testing.assert_allclose(res.states.position[i], single.state.position, atol=1e-9)
        np.testing.assert_allclose(
            res.thermo["temperature"][i], [r["T_K"] for r in single.rows], rtol=1e-8
        )


def directional_check(observable, variables, direction, h):
    grad = jax.grad(lambda v: observable(v)[0])(variables)
    along = sum(
        jnp.vdot(g, d)
        for g, d in zip(
            jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(direction), strict=True
        )
    )
    shift = jax.tree_util.tree_map(lambda v, d: v + h * d, variables, direction)
    back = jax.tree_util.tree_map(lambda v, d: v - h * d, variables, direction)
    finite = (observable(shift)[0] - observable(back)[0]) / (2 * h)
    return float(along), float(finite), grad


def test_gradient_through_trajectory_matches_finite_differences(lj_system):
    lj, R = lj_system
    system = lennard_jones_system(lj.numbers, lj.box, sigma=2.0, epsilon=0.01, skin=1.0)
    nbrs = system.allocate(R)
    direction = {"sigma": jnp.asarray(1.0), "epsilon": jnp.asarray(0.01)}
    observable = jax.jit(
        mean_energy_observable(system, R, nbrs, steps=30, dt_fs=2.0, temperature_K=50.0)
    )
    along, finite, grad = directional_check(observable, system.variables, direction, 1e-4)
    assert abs(along) > 1e-3
    np.testing.assert_allclose(along, finite, rtol=1e-6)
    check_list_still_valid(system, R, observable(system.variables)[1])


@pytest.mark.slow
def test_remat_changes_memory_not_gradients(lj_system):
    lj, R = lj_system
    system = lennard_jones_system(lj.numbers, lj.box, sigma=2.0, epsilon=0.01, skin=1.0)
    nbrs = system.allocate(R)
    grads = [
        jax.grad(
            lambda v, remat=remat: mean_energy_observable(
                system, R, nbrs, steps=30, dt_fs=2.0, temperature_K=50.0, remat=remat
            )(v)[0]
        )(system.variables)
        for remat in (True, False)
    ]
    np.testing.assert_allclose(grads[0]["sigma"], grads[1]["sigma"], rtol=1e-10)
    np.testing.assert_allclose(grads[0]["epsilon"], grads[1]["epsilon"], rtol=1e-10)


def test_frames_follow_the_trajectory_and_their_gradient_matches_finite_differences(lj_system):
    """Cartesian frames every 10 steps end where the energy observable's trajectory ends; the
    gradient of their mean square displacement (minimum image) equals central differences (a
    hand-made ``R @ box.T`` of jax-md's fractional positions gets it 10x wrong here)."""
    lj, R = lj_system
    system = lennard_jones_system(lj.numbers, lj.box, sigma=2.0, epsilon=0.01, skin=1.0)
    nbrs = system.allocate(R)
    settings = dict(steps=30, dt_fs=2.0, temperature_K=50.0)
    frames = jax.jit(trajectory_frames(system, R, nbrs, every=10, **settings))
    out = frames(system.variables)
    assert out.shape == (3,) + R.shape
    final = mean_energy_observable(system, R, nbrs, **settings)(system.variables)[1]
    box = jnp.asarray(system.box)
    np.testing.assert_allclose(out[-1], final @ box.T, rtol=0, atol=1e-10)
    inverse = jnp.linalg.inv(box.T)

    def msd(variables):
        d = (frames(variables) - R @ box.T) @ inverse
        d = (d - jnp.round(d)) @ box.T
        return jnp.mean(jnp.sum(d * d, axis=-1)), None

    direction = {"sigma": jnp.asarray(1.0), "epsilon": jnp.asarray(0.01)}
    along, finite, _ = directional_check(msd, system.variables, direction, 1e-4)
    assert abs(along) > 1e-4
    np.testing.assert_allclose(along, finite, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        trajectory_frames(system, R, nbrs, steps=30, every=7)
