"""rsajax models inside jax-md: NVE energy conservation, differentiable MD through the model, and
(slow) BKS NPT at the target pressure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.md.differentiable import check_list_still_valid, mean_energy_observable
from rsajax.md.integrators import Ensemble
from rsajax.md.protocols import Stage, build_schedule
from rsajax.md.simulation import BlowUpLimits, Simulation
from tests.md.test_replicas_differentiable import directional_check

# a random model has no short-range repulsion; atoms may pass close without harm to the check
LOOSE = BlowUpLimits(min_distance=0.05)


def test_model_nve_conserves_energy(tiny_system):
    system, _, R = tiny_system
    schedule = build_schedule([Stage("hold", T=300.0, steps=200)], 1.0, 300.0)
    res = Simulation(
        system,
        Ensemble("nve", dt_fs=1.0),
        R,
        schedule,
        records_per_chunk=20,
        limits=LOOSE,
        progress=False,
    ).run()
    e = np.array([r["E_tot_eV"] for r in res.rows])
    kinetic = np.mean([r["E_kin_eV"] for r in res.rows])
    assert kinetic > 0.5
    assert np.ptp(e) < 2e-3 * kinetic, np.ptp(e)


@pytest.mark.slow
def test_model_gradient_through_trajectory(tiny_model):
    from rsajax.md.adapter import model_system
    from tests.md.conftest import triclinic_silica

    model, variables = tiny_model
    atoms = triclinic_silica()
    system = model_system(
        model, variables, atoms.numbers, atoms.cell.array.T, skin=0.9, strain_skin=0.0
    )
    R = jnp.asarray(atoms.get_scaled_positions())
    nbrs = system.allocate(R)
    observable = jax.jit(mean_energy_observable(system, R, nbrs, steps=20, temperature_K=300.0))
    direction = jax.tree_util.tree_map(
        lambda x: jax.random.normal(jax.random.PRNGKey(1), x.shape, x.dtype), variables
    )
    direction = {
        "params": direction["params"],
        "constants": jax.tree_util.tree_map(jnp.zeros_like, variables["constants"]),
    }
    along, finite, _ = directional_check(observable, variables, direction, 1e-5)
    np.testing.assert_allclose(along, finite, rtol=1e-5)
    check_list_still_valid(system, R, observable(variables)[1])


@pytest.mark.slow
def test_bks_npt_holds_target_pressure():
    """96-atom BKS silica at 3000 K and 0 GPa (NPT from 2.2 g/cm^3)."""
    from rsajax.data import random_silica_box
    from rsajax.md.simulation import relax
    from rsajax.md.teacher import bks_system

    atoms = random_silica_box(96, seed=0)
    system = bks_system(atoms.numbers, atoms.cell.array.T, strain_margin=0.1)
    R = relax(system, jnp.asarray(atoms.get_scaled_positions()), 300)
    schedule = build_schedule([Stage("hold", T=3000.0, steps=3000, pressure_GPa=0.0)], 1.0, 3000.0)
    ensemble = Ensemble("npt", dt_fs=1.0, tau_T_fs=100.0, tau_P_fs=500.0)
    res = Simulation(system, ensemble, R, schedule, records_per_chunk=20, progress=False).run()
    P = np.array([r["P_GPa"] for r in res.rows[100:]])
    T = np.array([r["T_K"] for r in res.rows[100:]])
    rho = np.array([r["density_g_cm3"] for r in res.rows])
    # per-record pressure fluctuates by ~2.6 GPa at 96 atoms; block standard error ~0.3 GPa
    assert abs(P.mean()) < 1.0, P.mean()
    assert abs(T.mean() - 3000.0) < 150.0, T.mean()
    assert rho[100:].mean() > 1.05 * rho[0]  # the barostat compressed the 2.2 g/cm^3 start
