"""``rsajax demo``: its MD protocol and its melt report (the training and MD themselves are the
commands' own tests)."""

import json

import numpy as np

from rsajax.demo import (
    CORE_REPULSION,
    MD_STAGES_PS,
    md_config,
    melt_verdict,
    write_melt_report,
)
from rsajax.md.protocols import build_schedule, stage_from_dict
from tests.analysis.test_melt import _crystal, _frames, _write_run


def test_md_protocol_melts_at_the_given_temperature(tmp_path):
    config = md_config(tmp_path / "model", tmp_path / "start.extxyz", tmp_path / "md", 1.0, 6000.0)
    dt = config["ensemble"]["dt_fs"]
    schedule = build_schedule(
        [stage_from_dict(s) for s in config["stages"]], dt, config["initial_temperature_K"]
    )
    assert schedule.labels == ("heat", "hot", "quench", "glass")
    hot = schedule.T_K[schedule.stage == 1]
    np.testing.assert_allclose(hot, 6000.0)
    assert len(hot) * dt / 1000 == MD_STAGES_PS[1][1]
    assert schedule.T_K[-1] == 300.0
    # the wall sits inside the closest pairs of the shipped data (Si-O 1.18, O-O 1.77, Si-Si 2.19)
    assert config["core_repulsion"] == CORE_REPULSION
    radii = CORE_REPULSION["radii"]
    assert radii["Si-O"] < 1.18 and radii["O-O"] < 1.77 and radii["Si-Si"] < 2.19
    # frames close enough to unwrap (O moves ~1.5 A in 50 fs at 6000 K) and many in the hold
    frame_fs = config["output"]["frame_every"] * dt
    assert frame_fs <= 50 and len(hot) * dt / frame_fs >= 20
    # --md-scale stretches every stage
    longer = md_config(tmp_path / "m", tmp_path / "s", tmp_path / "o", 2.0, 4000.0)
    assert [s["time_ps"] for s in longer["stages"]] == [2 * t for _, t in MD_STAGES_PS]
    assert longer["stages"][1] == {"kind": "hold", "time_ps": 2 * MD_STAGES_PS[1][1], "name": "hot"}


def test_melt_report(tmp_path, capsys):
    crystal = _crystal()
    rng = np.random.default_rng(1)
    still = rng.normal(0.0, 0.1, (22, len(crystal), 3))
    walk = np.cumsum(rng.normal(0.0, 0.6, (22, len(crystal), 3)), axis=0)
    _write_run(tmp_path / "md_sr", _frames(crystal, walk))
    _write_run(tmp_path / "md_lr", _frames(crystal, still))
    verdicts = [
        melt_verdict("sr", tmp_path / "md_sr", crystal, None),
        melt_verdict("lr", tmp_path / "md_lr", crystal, "blow-up at step 200"),
        melt_verdict("xx", tmp_path / "missing", crystal, None),
    ]
    printed = capsys.readouterr().out
    assert "SR MELTED: O MSD" in printed
    assert "!! LR NOT MELTED" in printed and "stopped early" in printed
    assert "!! XX: NOT MELTED: the melt check failed" in printed
    assert [v["melted"] for v in verdicts] == [True, False, False]
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.md").write_text("# summary\n")
    path = write_melt_report(tmp_path / "report", verdicts)
    saved = json.loads(path.read_text())
    assert saved[0]["msd_A2"]["O"] > saved[0]["msd_threshold_A2"]
    assert saved[1]["rings_start"] == saved[1]["rings_end"]
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert summary.startswith("# summary\n") and "## Melt check" in summary
    assert "| sr | yes |" in summary and "| lr | **NO** |" in summary
