"""Protocol stages -> per-step temperature and pressure schedules."""

import numpy as np
import pytest

from rsajax.md.protocols import Stage, build_schedule, stage_from_dict


def test_melt_quench_schedule():
    stages = [
        Stage("heat", T_end=3000.0, steps=100),
        Stage("hold", steps=50, pressure_GPa=1.0),
        Stage("quench", T_end=300.0, rate_K_per_ps=1000.0, name="q1000"),
        Stage("anneal", T=600.0, rate_K_per_ps=3000.0, time_ps=0.01),
    ]
    s = build_schedule(stages, dt_fs=2.0, T_initial=300.0)
    heat, hold = slice(0, 100), slice(100, 150)
    np.testing.assert_allclose(s.T_K[heat], 300.0 + 2700.0 * np.arange(1, 101) / 100)
    assert np.all(s.T_K[hold] == 3000.0) and np.all(s.pressure_GPa[hold] == 1.0)
    # 2700 K at 1000 K/ps = 2.7 ps = 1350 steps of 2 fs
    quench = s.T_K[s.stage == 2]
    assert len(quench) == 1350 and quench[-1] == 300.0
    np.testing.assert_allclose(np.diff(quench), -1000.0 * 2e-3)
    anneal = s.T_K[s.stage == 3]  # 300 -> 600 at 3000 K/ps is 50 steps, hold 5, back 50
    assert len(anneal) == 105 and anneal.max() == 600.0 and anneal[-1] == 300.0
    assert s.labels == ("heat", "hold", "q1000", "anneal") and s.steps == len(s.pressure_GPa)


def test_stage_errors():
    with pytest.raises(ValueError, match="exactly one of"):
        Stage("quench", T_end=300.0, steps=10, rate_K_per_ps=100.0)
    with pytest.raises(ValueError, match="unknown"):
        Stage("melt", T=3000.0, steps=10)
    with pytest.raises(ValueError, match="unknown keys"):
        stage_from_dict({"kind": "hold", "steps": 10, "temperature": 300})
    with pytest.raises(ValueError, match="negative"):
        build_schedule([Stage("quench", T_end=-5.0, steps=10)], 1.0, 300.0)
