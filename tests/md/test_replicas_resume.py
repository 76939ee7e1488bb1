"""Replicas: a run split at a checkpoint continues exactly; ``on_chunk`` sees every record."""

import numpy as np
import pytest

from rsajax.md.integrators import Ensemble
from rsajax.md.output import load_checkpoint, save_checkpoint
from rsajax.md.replicas import run_replicas


def test_split_run_with_checkpoint_equals_one_run(lj_system, tmp_path):
    system, R = lj_system
    ensemble = Ensemble("nvt_langevin", dt_fs=2.0)
    T = np.stack([np.linspace(120.0, 60.0, 100), np.linspace(90.0, 30.0, 100)])
    seen = []

    def record(step, states, thermo, positions, boxes):
        seen.append((step, thermo["temperature"].shape, positions.shape, boxes.shape))
        np.testing.assert_allclose(positions[:, -1], np.asarray(states.position), atol=0)
        if step == 60:
            save_checkpoint(tmp_path, states, step, system.box)

    whole = run_replicas(system, ensemble, R, T, seeds=[3, 4], records_per_chunk=2, on_chunk=record)
    n = len(R)
    assert seen[0] == (20, (2, 2), (2, 2, n, 3), (2, 2, 3, 3)) and seen[-1][0] == 100
    assert whole.thermo["temperature"].shape == (2, 10)

    def restore(template):
        state, step, _, _ = load_checkpoint(tmp_path, template)
        assert step == 60
        return state

    rest = run_replicas(
        system, ensemble, R, T, seeds=[3, 4], records_per_chunk=2, start_step=60, restore=restore
    )
    assert rest.thermo["temperature"].shape == (2, 4)
    np.testing.assert_allclose(rest.states.position, whole.states.position, atol=1e-12)
    np.testing.assert_allclose(
        rest.thermo["temperature"], whole.thermo["temperature"][:, 6:], rtol=1e-10
    )


def test_start_step_must_be_a_chunk_boundary(lj_system):
    system, R = lj_system
    with pytest.raises(ValueError, match="chunk boundary"):
        run_replicas(
            system, Ensemble(), R, np.full((1, 40), 50.0), records_per_chunk=2, start_step=30
        )
