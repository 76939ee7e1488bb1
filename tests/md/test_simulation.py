"""Chunked runs on a cheap Lennard-Jones system: ensembles, reallocation, box checks, blow-up
detection, output files, checkpoint and resume."""

import dataclasses

import numpy as np
import pytest
from ase.io import read
from jax_md import quantity

from rsajax.md.adapter import strain_margin_check
from rsajax.md.integrators import Ensemble, kinetic_energy, thermo
from rsajax.md.output import load_checkpoint
from rsajax.md.protocols import Stage, build_schedule
from rsajax.md.simulation import BlowUpError, BlowUpLimits, Simulation


def hold(T, steps, pressure=0.0):
    return build_schedule([Stage("hold", T=T, steps=steps, pressure_GPa=pressure)], 1.0, T)


def test_kinetic_energy_is_jax_mds_in_float64_and_keeps_float32():
    """The thermo log's kinetic energy sums in the momenta's dtype: jax-md's value under float64,
    and a float32 sum (no float64 request, which warns when x64 is off) for float32 MD."""
    rng = np.random.default_rng(0)
    p, m = rng.normal(size=(7, 3)), rng.uniform(1.0, 30.0, size=(7, 1))
    assert float(kinetic_energy(p, m)) == float(quantity.kinetic_energy(momentum=p, mass=m))
    f32 = kinetic_energy(p.astype(np.float32), m.astype(np.float32))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(float(f32), 0.5 * np.sum(p**2 / m), rtol=1e-6)


def test_nve_conserves_energy(lj_system):
    system, R = lj_system
    sim = Simulation(system, Ensemble("nve", dt_fs=2.0), R, hold(100.0, 1000), progress=False)
    res = sim.run()
    e = np.array([r["E_tot_eV"] for r in res.rows])
    kinetic = np.mean([r["E_kin_eV"] for r in res.rows])
    assert kinetic > 0.5  # 60 atoms near 100 K: 0.78 eV
    assert np.ptp(e) < 2e-3 * kinetic, np.ptp(e)


@pytest.mark.parametrize(
    "kind", ["nvt_langevin", pytest.param("nvt_nose_hoover", marks=pytest.mark.slow)]
)
def test_nvt_reaches_and_holds_target(lj_system, kind):
    system, R = lj_system
    schedule = build_schedule(
        [Stage("hold", T=40.0, steps=10), Stage("hold", T=150.0, steps=1990)], 2.0, 40.0
    )
    ensemble = Ensemble(kind, dt_fs=2.0, friction_per_fs=0.02, tau_T_fs=100.0)
    res = Simulation(system, ensemble, R, schedule, records_per_chunk=50, progress=False).run()
    T = np.array([r["T_K"] for r in res.rows])
    assert T[0] < 80.0
    assert abs(T[100:].mean() - 150.0) < 0.1 * 150.0, T[100:].mean()


def test_npt_holds_pressure_and_reallocates_on_box_change(lj_system):
    system, R = lj_system

    # pretend a host-side structure (e.g. an RSA k-set) covers only 10% strain
    def with_margin(s):
        return dataclasses.replace(
            s,
            box_checks=(*s.box_checks, strain_margin_check(s.box, 0.1, "test k-set")),
            rebuild=lambda box: with_margin(system.rebuild(box)),
        )

    target = 0.2  # GPa; the liquid's NVT pressure is 0.08 GPa: the box must shrink
    sim = Simulation(
        with_margin(system),
        Ensemble("npt", dt_fs=2.0, tau_P_fs=500.0),
        R,
        hold(100.0, 800, target),
        records_per_chunk=2,
        progress=False,
    )
    res = sim.run()
    P = np.array([r["P_GPa"] for r in res.rows])
    V = np.array([r["volume_A3"] for r in res.rows])
    assert V[-1] < 0.9 * V[0] and sim.rebuilds >= 1
    assert not np.allclose(res.system.box, system.box)
    assert abs(P[20:].mean() - target) < 0.04, P[20:].mean()
    # the logged pressure (from the system's stress) is the one jax-md's barostat uses
    state = res.state
    box = sim.integrator.box(state)
    nbrs = res.system.allocate(state.position, box=box)
    ours = thermo(res.system, state, nbrs, box)["pressure"]
    kinetic = quantity.kinetic_energy(momentum=state.momentum, mass=state.mass)
    theirs = quantity.pressure(res.system.energy_fn, state.position, box, kinetic, neighbor=nbrs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


class SmallListSimulation(Simulation):
    """Starts with a list allocated in a larger box: too small, so the first chunk overflows."""

    def initial_state(self):
        state, _ = super().initial_state()
        return state, self.system.allocate(self.R0, box=1.4 * self.system.box)


def test_overflow_redoes_the_chunk_with_a_bigger_list(lj_system):
    system, R = lj_system
    args = (system, Ensemble("nvt_langevin", dt_fs=2.0), R, hold(100.0, 100))
    small = SmallListSimulation(*args, progress=False)
    res_small = small.run()
    res = Simulation(*args, progress=False).run()
    assert res_small.reallocations >= 1 and res.reallocations == 0
    np.testing.assert_allclose(res_small.state.position, res.state.position, atol=1e-12)


@pytest.mark.parametrize(
    "limits, message",
    [
        (BlowUpLimits(min_distance=3.0), "atoms overlap"),
        (BlowUpLimits(max_T_ratio=0.1), "far above the target"),
    ],
)
def test_blow_up_stops_naming_the_step_and_keeps_output(lj_system, tmp_path, limits, message):
    system, R = lj_system
    sim = Simulation(
        system,
        Ensemble("nvt_langevin", dt_fs=2.0),
        R,
        hold(100.0, 200),
        out_dir=tmp_path,
        frame_every=10,
        limits=limits,
        progress=False,
    )
    with pytest.raises(BlowUpError, match=f"step 10: .*{message}"):
        sim.run()
    assert len((tmp_path / "thermo.csv").read_text().splitlines()) == 2  # header + step 10
    assert read(tmp_path / "trajectory.extxyz").info["step"] == 10


class Interrupted(Exception):
    pass


class InterruptedSimulation(Simulation):
    def _records(self, th, positions, boxes, start):
        if start >= 200:
            raise Interrupted
        return super()._records(th, positions, boxes, start)


def test_checkpoint_resume_reproduces_an_uninterrupted_run(lj_system, tmp_path):
    system, R = lj_system
    kwargs = dict(
        log_every=10, records_per_chunk=5, frame_every=50, checkpoint_every=1, progress=False
    )
    schedule = build_schedule(
        [Stage("heat", T_end=200.0, steps=200), Stage("quench", T_end=50.0, steps=200)], 1.0, 50.0
    )
    ensemble = Ensemble("nvt_langevin", dt_fs=2.0)
    full = Simulation(system, ensemble, R, schedule, out_dir=tmp_path / "a", **kwargs).run()
    with pytest.raises(Interrupted):
        InterruptedSimulation(system, ensemble, R, schedule, out_dir=tmp_path / "b", **kwargs).run()
    _, step, _, _ = load_checkpoint(tmp_path / "b", full.state)
    assert step == 200
    resumed = Simulation(system, ensemble, R, schedule, out_dir=tmp_path / "b", **kwargs)
    res = resumed.run(resume=True)
    np.testing.assert_allclose(res.state.position, full.state.position, atol=1e-12)
    log_a = (tmp_path / "a" / "thermo.csv").read_text().splitlines()
    log_b = (tmp_path / "b" / "thermo.csv").read_text().splitlines()
    assert len(log_b) == 41 and log_a[0] == log_b[0]
    np.testing.assert_allclose(
        np.loadtxt(log_b[1:], delimiter=",", usecols=(0, 3, 5)),
        np.loadtxt(log_a[1:], delimiter=",", usecols=(0, 3, 5)),
        rtol=1e-9,
    )
    frames = read(tmp_path / "b" / "trajectory.traj", index=":")
    assert [a.info.get("step") for a in read(tmp_path / "b" / "trajectory.extxyz", index=":")] == [
        50,
        100,
        150,
        200,
        250,
        300,
        350,
        400,
    ]
    assert len(frames) == 8 and np.allclose(
        frames[-1].get_scaled_positions(), np.asarray(full.state.position) % 1.0, atol=1e-9
    )


def test_compiled_chunks_are_shared_by_runs_of_a_system_and_freed_with_it():
    """The compile store lives on the system: runs of one system share the jitted chunk, a new
    system (even one equal in every field) gets its own, and dropping the system frees it (a
    store keyed by ``id`` could hand a dead system's chunk to a new object at the same address)."""
    import gc
    import weakref

    from rsajax.md.teacher import lennard_jones_system
    from tests.md.conftest import triclinic_silica

    def system_and_positions():
        atoms = triclinic_silica(60, seed=2)
        atoms.numbers[:] = 18
        system = lennard_jones_system(atoms.numbers, atoms.cell.array.T, sigma=2.0, epsilon=0.01)
        return system, atoms.get_scaled_positions()

    ensemble, schedule = Ensemble("nve", dt_fs=2.0), hold(100.0, 20)
    system, R = system_and_positions()
    first = Simulation(system, ensemble, R, schedule, progress=False)
    again = Simulation(system, ensemble, R, schedule, progress=False)
    assert again.chunk_fn is first.chunk_fn
    other = Simulation(dataclasses.replace(system), ensemble, R, schedule, progress=False)
    assert other.chunk_fn is not first.chunk_fn
    alive = weakref.ref(system)
    del system, first, again, other
    gc.collect()
    assert alive() is None
