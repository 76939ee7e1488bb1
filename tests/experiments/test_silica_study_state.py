"""experiments/silica_study/state.py and run.py's per-model analysis cache: a study run carried
between machines without a shared disk keeps every finished piece and resumes the rest."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments.silica_study import run, state  # noqa: E402


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_work_folder(out: Path) -> None:
    """A work folder as the study leaves it mid-way: data, a finished SR training, an unfinished
    RSA training, the teacher melt-quenched and analysed, SR's melt-quench checkpointed."""
    for f in state.KEPT_FILES:
        write(out / f, f"{f}\n")
    write(out / "data/data.json", json.dumps({"teacher": "bks-glass"}))
    write(out / "train/sr/summary.json", "{}")
    write(out / "train/sr/model/config.json", '{"r_max": 5.0}')
    (out / "train/sr/model/params.msgpack").write_bytes(bytes(range(256)))
    write(out / "train/sr/metrics.jsonl", '{"epoch": 0}\n')
    write(out / "train/sr/checkpoints/ckpt_0/x", "large optimiser state")
    write(out / "train/rsa/checkpoints/last/40/state", "unfinished")
    write(out / "train/rsa/metrics.jsonl", "".join(f'{{"epoch": {e}}}\n' for e in (-1, 0, 1)))
    write(out / "data/train.xyz", "1\nframe\nSi 0 0 0\n" * 30)
    write(out / "data/train_no_supercooled.xyz", "needed by no unfinished training")
    write(out / "md/teacher/done.json", json.dumps({"seconds": 1.0}))
    write(out / "md/teacher/melt.json", "[]")
    for phase in ("melt", "quench"):
        write(out / f"md/teacher/{phase}/done.json", "{}")
    write(out / "md/teacher/rep0/trajectory.extxyz", "frames the analysis replaces")
    write(out / "analysis/teacher.json", '{"entry": {}}')
    (out / "analysis/teacher.pkl").write_bytes(b"pickled curves")
    checkpoint = out / "md/sr/melt/checkpoint.npz"
    checkpoint.parent.mkdir(parents=True)
    np.savez(checkpoint, leaf_0=np.zeros(3), step=np.asarray(400), box=np.eye(3),
             meta=np.asarray(json.dumps({"offset": 0})))  # fmt: skip
    for k in range(2):
        write(out / f"md/sr/rep{k}/thermo.jsonl", f'{{"step": {k}}}\n' * 50)
        write(out / f"md/sr/rep{k}/trajectory.extxyz", "1\nframe\nSi 0 0 0\n" * 20)
        write(out / f"md/sr/rep{k}/thermo.csv", "rebuilt from the JSONL on resume")


def test_save_keeps_finished_and_resumable_pieces_only(tmp_path):
    out, kept = tmp_path / "out", tmp_path / "state" / "cpu"
    fake_work_folder(out)
    manifest = state.save(out, kept)
    files = set(manifest["files"])
    assert {"data/test.xyz", "train/sr/model/params.msgpack", "train/sr/metrics.jsonl"} <= files
    assert {"analysis/teacher.pkl", "md/teacher/done.json", "md/teacher/quench/done.json"} <= files
    assert {"md/sr/melt/checkpoint.npz", "md/sr/rep1/trajectory.extxyz.gz"} <= files
    assert not any(f.startswith("train/sr/checkpoints") for f in files)
    # the unfinished training whole, with the frames it trains on (not the ablation's)
    assert {"train/rsa/checkpoints/last/40/state", "train/rsa/metrics.jsonl"} <= files
    assert "data/train.xyz.gz" in files and not any("no_supercooled" in f for f in files)
    assert "md/teacher/rep0/trajectory.extxyz" not in files  # the analysis cache replaces it
    assert not any(f.endswith("thermo.csv") for f in files)
    assert manifest["models"]["teacher"] == "melt-quenched and analysed"
    assert manifest["teacher"] == "bks-glass"  # the variant that made the data
    assert manifest["models"]["sr"].startswith("trained; melt-quench unfinished")
    assert "step 400" in manifest["models"]["sr"]
    assert manifest["models"]["rsa"] == "training unfinished after 2 epochs (kept: --resume)"
    assert json.loads((kept / "manifest.json").read_text()) == manifest
    zipped = kept / "md/sr/rep0/thermo.jsonl.gz"
    assert zipped.stat().st_size < (out / "md/sr/rep0/thermo.jsonl").stat().st_size
    assert gzip.decompress(zipped.read_bytes()) == (out / "md/sr/rep0/thermo.jsonl").read_bytes()


def test_restore_rebuilds_the_kept_files_and_never_overwrites(tmp_path):
    out, kept, fresh = tmp_path / "out", tmp_path / "state" / "cpu", tmp_path / "fresh"
    fake_work_folder(out)
    manifest = state.save(out, kept)
    write(fresh / "data/test.xyz", "newer work")
    copied = state.restore(kept, fresh, log=lambda _: None)
    assert copied == len(manifest["files"]) - 1
    assert (fresh / "data/test.xyz").read_text() == "newer work"
    for rel in manifest["files"]:
        rel = rel.removesuffix(".gz")
        if rel != "data/test.xyz":
            assert (fresh / rel).read_bytes() == (out / rel).read_bytes(), rel
    assert state.restore(kept, fresh, log=lambda _: None) == 0


def test_restore_never_mixes_a_kept_training_into_one_the_folder_holds(tmp_path):
    out, kept, fresh = tmp_path / "out", tmp_path / "state" / "cpu", tmp_path / "fresh"
    fake_work_folder(out)
    state.save(out, kept)
    write(fresh / "train/rsa/checkpoints/last/80/state", "a later checkpoint of this folder")
    state.restore(kept, fresh, log=lambda _: None)
    assert sorted(p.name for p in (fresh / "train/rsa/checkpoints/last").iterdir()) == ["80"]
    assert (fresh / "data/train.xyz").read_bytes() == (out / "data/train.xyz").read_bytes()


def test_save_replaces_the_old_state_and_refuses_an_empty_folder(tmp_path):
    out, kept = tmp_path / "out", tmp_path / "state" / "cpu"
    fake_work_folder(out)
    write(kept / "md/old/stale.json", "{}")
    state.save(out, kept)
    assert not (kept / "md/old").exists() and not kept.with_name("cpu.new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="nothing finished"):
        state.save(tmp_path / "empty", kept)
    with pytest.raises(SystemExit, match="no saved state"):
        state.restore(tmp_path / "empty", out)


def test_analysis_is_kept_per_model_and_redone_when_the_run_changes(tmp_path, monkeypatch):
    from experiments.silica_study import analysis

    calls = []

    def analyze_model(model, md_dir, preset):
        calls.append(model)
        return {"glass": ("merged", [])}

    monkeypatch.setattr(analysis, "analyze_model", analyze_model)
    monkeypatch.setattr(analysis, "model_entry", lambda runs, melt, md: {"melt": melt})
    monkeypatch.setattr(run, "_save_runs", lambda folder, model, runs: write(
        folder / f"{model}.pkl", "curves"))  # fmt: skip
    preset = run.PRESETS["quick"]
    phases = {"melt": {"steps": 40, "steps_run_here": 20, "atom_steps_per_s": 9.0}}
    done = write(tmp_path / "md/sr/done.json", json.dumps({"melt": [1], "phases": phases}))
    assert run.analyzed_entry("sr", preset, tmp_path, redo=False) == {"melt": [1]}
    cached = run.analyzed_entry("sr", preset, tmp_path, redo=False)
    assert calls == ["sr"]  # the second call read the cache
    # and read the MD time from done.json: an old file timed only the last sitting's 20 steps
    assert cached["melt"] == [1] and (cached["md_steps"], cached["md_steps_timed"]) == (40, 20)
    run.analyzed_entry("sr", preset, tmp_path, redo=True)
    done.write_text(json.dumps({"melt": [2], "phases": {}}))  # the melt-quench was run again
    assert run.analyzed_entry("sr", preset, tmp_path, redo=False) == {"melt": [2]}
    assert calls == ["sr"] * 3


def test_finished_only_leaves_out_running_melt_quenches(tmp_path):
    out, kept = tmp_path / "out", tmp_path / "state" / "cpu"
    fake_work_folder(out)
    manifest = state.save(out, kept, unfinished=False)
    assert not any(f.startswith("md/sr/") for f in manifest["files"])
    assert "md/teacher/done.json" in manifest["files"]
    assert manifest["models"]["sr"] == "trained; melt-quench unfinished at step 400 (not kept)"
    assert manifest["models"]["rsa"] == "training unfinished after 2 epochs (not kept)"
    assert not any(
        f.startswith("train/rsa") or f.startswith("data/train") for f in manifest["files"]
    )


def test_training_without_training_frames_says_how_to_make_them(tmp_path):
    from experiments.silica_study import training

    with pytest.raises(FileNotFoundError, match="delete data/data.json"):
        training.train_model(run.PRESETS["quick"], "sr", tmp_path / "data", tmp_path / "sr", False)
