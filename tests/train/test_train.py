"""End-to-end training of a tiny MACE on generated EMT data: learning, outputs, exact resume after
SIGKILL, and bad input that fails before any compute."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from rsajax.nn.model import MACE, dummy_graph, load_model
from rsajax.train import CheckpointMismatchError, Checkpoints, ConfigError, cli, train
from rsajax.train import loop as loop_module
from rsajax.train.checkpoint import Position
from rsajax.train.config import load_config
from rsajax.train.optim import make_optimizer
from rsajax.train.setup import model_config_from
from rsajax.train.step import init_state
from tests.train.helpers import tiny_config, write_dataset

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 15
#: 20 structures, 5 held out: 15 training structures in batches of 4 -> 4 steps per epoch.
STEPS_PER_EPOCH = 4


def config_for(tmp: Path, data: Path, name: str) -> dict:
    return tiny_config(
        tmp,
        data,
        output_dir=str(tmp / name),
        epochs=EPOCHS,
        model={"num_interactions": 1},
        loss={"energy_weight": 30.0, "forces_weight": 10.0},
        optimizer={"lr": 0.01, "ema_decay": 0.9},
        checkpoint={"every_steps": 3, "async_save": True},
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("train")
    return tmp, write_dataset(tmp / "emt.xyz", 20, seed=0)


@pytest.fixture(scope="module")
def uninterrupted(dataset):
    tmp, data = dataset
    config = config_for(tmp, data, "full")
    config["plot"] = True
    return train(config)


def test_validation_error_falls(uninterrupted):
    first, last = uninterrupted.history[0], uninterrupted.history[-1]
    assert first["epoch"] == -1 and last["epoch"] == EPOCHS - 1
    # Least-squares E0s and scale/shift start the model near the data; 60 steps of the tiny model
    # must still cut the validation energy error 3x (seen: 218 -> 58 meV/atom), halve the weighted
    # validation loss (seen: 4.37 -> 1.67) and lower the force error (seen: 543 -> 396 meV/A).
    assert last["energy_rmse"] < first["energy_rmse"] / 3, (first, last)
    assert last["valid_loss"] < first["valid_loss"] / 2, (first, last)
    assert last["forces_rmse"] < first["forces_rmse"] / 1.2, (first, last)
    assert uninterrupted.steps == EPOCHS * STEPS_PER_EPOCH


def test_outputs_and_export(uninterrupted):
    out = uninterrupted.output_dir
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(-1, EPOCHS))
    # each row's own time: without pauses, the rows after the first span the time stamps
    rows = [json.loads(x) for x in lines]
    assert all(r["seconds"] > 0 for r in rows)
    spanned = rows[-1]["time"] - rows[0]["time"]
    assert sum(r["seconds"] for r in rows[1:]) == pytest.approx(spanned, abs=0.5)
    assert (out / "learning_curves.png").stat().st_size > 1000
    # One padding bucket: exactly one compilation of each step for the whole run.
    assert uninterrupted.compiles == {"train": 1, "eval": 1}
    model, variables = load_model(uninterrupted.model_dir)
    assert model.config == uninterrupted.model_config
    for a, b in zip(
        jax.tree_util.tree_leaves(variables["params"]),
        jax.tree_util.tree_leaves(uninterrupted.ema),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # E0s come from the training set, not the defaults.
    assert model.config.atomic_numbers == (28, 29)
    assert all(e < -0.01 or e > 0.01 for e in model.config.atomic_energies)
    assert (out / "best_model" / "params.msgpack").is_file()


def test_sigkill_and_resume_gives_the_same_parameters(dataset, uninterrupted):
    tmp, data = dataset
    kill_at = 2 * STEPS_PER_EPOCH + 2  # mid-epoch 2, one step after a checkpoint (every 3)
    kill_and_resume(tmp, config_for(tmp, data, "killed"), kill_at, uninterrupted)


def test_sigkill_inside_stage_two_resumes_exactly(dataset):
    """Killed in the first stage-two epoch, one step after a checkpoint: the resumed run has
    the uninterrupted run's parameters, losses and stage-two ``best``."""
    tmp, data = dataset

    def config(name):
        return dict(config_for(tmp, data, name), epochs=4, stage_two={"fraction": 0.5})

    reference = train(config("stage_two_full"))
    assert [r["stage"] for r in reference.history] == [1, 1, 1, 2, 2]
    kill_and_resume(tmp, config("stage_two_killed"), 2 * STEPS_PER_EPOCH + 2, reference)
    runs = ("stage_two_full", "stage_two_killed")
    best = [Checkpoints(tmp / n / "checkpoints").best.latest_step() for n in runs]
    assert best[0] == best[1] and best[0] >= 3 * STEPS_PER_EPOCH  # a stage-two epoch's end


def test_resume_knows_a_moved_data_file_by_its_content(dataset, uninterrupted, tmp_path):
    """A run folder resumed with its training file at another path (a copied work folder): no
    warning while the content is the checkpoint's; a warning naming the key once it differs."""
    from rsajax.train.setup import resume_point

    tmp, data = dataset
    checkpoints = Checkpoints(uninterrupted.output_dir / "checkpoints")

    def point(train_file: Path):
        cfg = load_config(dict(config_for(tmp, train_file, "full"), plot=True))
        return resume_point(checkpoints, uninterrupted.params, uninterrupted.model_config, cfg)

    moved = tmp_path / "moved.xyz"
    moved.write_bytes(data.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert point(moved).step == uninterrupted.steps
    edited = tmp_path / "edited.xyz"
    edited.write_bytes(data.read_bytes() + b"\n")
    with pytest.warns(UserWarning, match="data.train_file"):
        point(edited)


def kill_and_resume(tmp: Path, config: dict, kill_at: int, reference) -> None:
    """Run ``config`` in a subprocess killed (SIGKILL) after step ``kill_at``, resume it through
    the command line, and compare parameters, EMA export and validation losses with
    ``reference`` (the same config run without interruption)."""
    name = Path(config["output_dir"]).name
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.train.kill_run", str(path), str(kill_at)],
        cwd=REPO,
        env=dict(os.environ, JAX_ENABLE_X64="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    checkpoints = Checkpoints(tmp / name / "checkpoints")
    stored = checkpoints.latest()
    assert stored is not None and stored < kill_at
    # Resume through the command line, with an override that does not change the math.
    assert cli.main(["train", str(path), "--resume", "--set", "progress_bar=false"]) == 0
    checkpoints = Checkpoints(tmp / name / "checkpoints")
    assert checkpoints.latest() == reference.steps
    params = checkpoints.read_params()
    _, exported = load_model(tmp / name / "model")
    for mine, theirs in ((params, reference.params), (exported["params"], reference.ema)):
        for a, b in zip(
            jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    log = [json.loads(x) for x in (tmp / name / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [r["epoch"] for r in reference.history]
    for mine, theirs in zip(log, reference.history, strict=True):
        assert mine["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-10)


def test_stage_two_trains_and_validates_with_its_own_weights_and_learning_rate(tmp_path):
    data = write_dataset(tmp_path / "d.xyz", 8, seed=0)  # 2 validation structures: one batch
    # 3 epochs, fraction 0.3: the last ceil(0.9) = 1 epoch is stage two
    two = {"fraction": 0.3, "energy_weight": 50.0, "forces_weight": 2.0, "lr": 0.003}
    result = train(tiny_config(tmp_path, data, stage_two=two))
    assert [r["stage"] for r in result.history] == [1, 1, 1, 2]
    for record in result.history:
        w_e, w_f = (50.0, 2.0) if record["stage"] == 2 else (1.0, 10.0)
        expected = (
            w_e * (record["energy_rmse"] / 1e3) ** 2 + w_f * (record["forces_rmse"] / 1e3) ** 2
        )
        assert record["valid_loss"] == pytest.approx(expected, rel=1e-9)
    assert [r["lr"] for r in result.history[1:]] == pytest.approx([0.01, 0.01, 0.003])
    assert result.compiles["train"] == 2  # one train step per stage (one batch shape)


def test_stage_two_weights_are_checked_against_the_labels_before_compute(tmp_path, no_compute):
    data = write_dataset(tmp_path / "nostress.xyz", 6, seed=1, stress=False)
    two = {"fraction": 0.5, "stress_weight": 1.0}
    with pytest.raises(ValueError, match=r"no training structure has stress .*stage_two\.stress_w"):
        train(tiny_config(tmp_path, data, stage_two=two))


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if the loop gets as far as building a train step."""

    def forbidden(*args, **kwargs):
        raise AssertionError("training compute was reached")

    monkeypatch.setattr(loop_module, "make_train_step", forbidden)


def test_forces_weighted_without_forces_fails_early(tmp_path, no_compute):
    data = write_dataset(tmp_path / "noforces.xyz", 6, seed=1, forces=False)
    config = tiny_config(tmp_path, data, loss={"forces_weight": 10.0})
    with pytest.raises(ValueError, match=r"noforces\.xyz: no training structure has forces"):
        train(config)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_dipole_weighted_for_a_model_without_dipoles_fails_early(tmp_path, no_compute):
    data = write_dataset(tmp_path / "d.xyz", 6, seed=1)
    config = tiny_config(tmp_path, data, loss={"dipole_weight": 1.0})
    with pytest.raises(ValueError, match="does not predict dipole"):
        train(config)


def test_unknown_key_fails_before_reading_data(tmp_path, no_compute):
    config = tiny_config(tmp_path, tmp_path / "missing.xyz", optimizer={"lrr": 0.1})
    with pytest.raises(ConfigError, match=r"optimizer\.lrr.*optimizer\.lr"):
        train(config)


def test_checkpoint_from_another_model_shape_fails_early(tmp_path, no_compute):
    data = write_dataset(tmp_path / "d.xyz", 6, seed=1)
    config = tiny_config(tmp_path, data)
    # Write a checkpoint of a wider model directly (no training needed to make one).
    wide = load_config(tiny_config(tmp_path, data, model={"hidden_irreps": "8x0e+8x1o"}))
    from rsajax.train.setup import load_data

    stats = load_data(wide, 1).statistics
    model_config = model_config_from(wide, stats)
    abstract = jax.eval_shape(
        MACE(model_config).init, jax.random.PRNGKey(0), dummy_graph(model_config)
    )
    variables = jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), abstract)
    optimizer = make_optimizer(wide.optimizer, wide.schedule, 1, 1)
    store = Checkpoints(tmp_path / "run" / "checkpoints", async_save=False)
    store.save(
        "last",
        init_state(variables["params"], optimizer, 0, False),
        Position(0, 1),
        wide.to_dict(),
        model_config,
    )
    store.close()
    with pytest.raises(CheckpointMismatchError, match="another model shape.*hidden_irreps"):
        train(config, resume=True)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(config)
