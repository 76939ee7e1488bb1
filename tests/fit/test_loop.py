"""The fit's outer loop: teacher term, resampling on a small sample size, checkpoint round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.io import read

from rsajax.analysis.structure_factor import reciprocal_grid
from rsajax.demo import default_dataset
from rsajax.fit.loop import FitCheckpoints, FitSettings, SQFit
from rsajax.fit.objective import make_target
from rsajax.fit.teacher import teacher_errors, teacher_graph, teacher_loss
from rsajax.md.adapter import model_system
from rsajax.nn.model import init_model
from tests.md.conftest import tiny_config


@pytest.fixture(scope="module")
def setup():
    frames = read(default_dataset(), "240:248")  # 96-atom quench and anneal frames (BKS labels)
    glass = frames[-1]
    model, variables = init_model(tiny_config(), seed=0)
    teacher = teacher_graph(frames[:3], model.config.r_max)
    grid = reciprocal_grid(glass.cell.array, 4.0, shell_width=0.2, max_per_shell=None)
    qc = np.linspace(0.5, 4.5, 20)
    target = make_target(grid, glass.cell.array, glass.numbers, qc, 1.0 + 0.05 * qc, (1.0, 4.0))
    system = model_system(model, variables, glass.numbers, glass.cell.array.T)
    return model, variables, system, target, teacher, glass


def make_fit(setup, **changes):
    model, variables, system, target, teacher, glass = setup
    settings = FitSettings(frames=4, every=5, equilibrate=5, learning_rate=1e-3, **changes)
    return SQFit(model, system, variables["constants"], target, teacher, settings)


def test_teacher_errors_match_the_loss(setup):
    model, variables, *_ = setup
    one = teacher_graph(read(default_dataset(), "247:248"), model.config.r_max)
    errors = teacher_errors(model, variables, one)
    mse = teacher_loss(model, {"energy": 0.0, "forces": 1.0})(variables, one)
    # forces loss = mean over atoms of the mean square component error = MSE of components
    assert errors["forces_rmse"] == pytest.approx(1000.0 * float(np.sqrt(mse)), rel=1e-6)


@pytest.mark.slow
def test_resampling_follows_the_sample_size_and_the_teacher_term_trains(setup):
    model, variables, *_, glass = setup
    R0 = jnp.asarray(glass.get_scaled_positions())
    never = make_fit(setup, min_effective_fraction=0.0, sq_weight=0.0, teacher_weight=1.0)
    never.sample(variables["params"], R0, seed=0)
    params, opt = variables["params"], never.optimizer.init(variables["params"])
    losses = []
    for step in range(4):
        params, opt, record = never.step(params, opt, seed=step)
        assert not record["resampled"]
        losses.append(record["teacher_loss"])
    assert losses[-1] < losses[0]
    always = make_fit(setup, min_effective_fraction=1.01)
    always.sample(variables["params"], R0, seed=0)
    first = always.samples.positions
    _, _, record = always.step(variables["params"], always.optimizer.init(params), seed=5)
    assert record["resampled"] and not np.allclose(always.samples.positions, first)


@pytest.mark.slow
def test_checkpoint_round_trip_resumes_the_same_loss(setup, tmp_path):
    model, variables, *_, glass = setup
    fit = make_fit(setup)
    fit.sample(variables["params"], jnp.asarray(glass.get_scaled_positions()), seed=0)
    params, opt, _ = fit.step(variables["params"], fit.optimizer.init(variables["params"]), 1)
    (value, _), _ = fit.value_and_grad(params)
    store = FitCheckpoints(tmp_path / "ckpt")
    store.save(1, params, opt, fit.samples, {"step": 1, "history": [{"loss": 1.0}]})
    template = fit.optimizer.init(variables["params"])
    params2, opt2, samples, meta = FitCheckpoints(tmp_path / "ckpt").restore(
        variables["params"], template, fit.settings.temperature_K
    )
    assert meta["step"] == 1 and meta["history"] == [{"loss": 1.0}]
    leaves = jax.tree_util.tree_leaves((params, opt))
    restored = jax.tree_util.tree_leaves((params2, opt2))
    for a, b in zip(leaves, restored, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    resumed = make_fit(setup)
    resumed.adopt(samples)
    (value2, _), _ = resumed.value_and_grad(params2)
    assert float(value2) == pytest.approx(float(value), rel=1e-10)
