"""The S(Q) objective: target interpolation, weights, and that the loss is differentiable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.analysis.structure_factor import reciprocal_grid
from rsajax.data import random_silica_box
from rsajax.errors import InputError
from rsajax.fit.objective import frame_sq, make_target, model_sq, shell_mean_q, sq_loss


@pytest.fixture(scope="module")
def box():
    atoms = random_silica_box(48, density=2.2, seed=3)
    grid = reciprocal_grid(atoms.cell.array, 4.0, shell_width=0.1, max_per_shell=None)
    return atoms, grid


def test_target_interpolates_the_curve_and_weights_by_counts(box):
    atoms, grid = box
    qc = np.linspace(0.2, 6.0, 300)
    target = make_target(grid, atoms.cell.array, atoms.numbers, qc, 1.0 + 0.1 * qc, (1.0, 3.5))
    q, counts = shell_mean_q(grid)
    used = target.used
    assert np.all((q[used] >= 1.0) & (q[used] <= 3.5))
    np.testing.assert_allclose(target.target[used], 1.0 + 0.1 * q[used], rtol=1e-12)
    assert np.isclose(target.weight.sum(), 1.0)
    # FSDP shells weigh fsdp_weight (3) times their vector count, the others once
    fsdp = used & (q >= 1.2) & (q <= 1.9)
    other = used & ~fsdp
    ratio_fsdp = target.weight[fsdp] / counts[fsdp]
    ratio_other = target.weight[other] / counts[other]
    np.testing.assert_allclose(ratio_fsdp, 3.0 * ratio_other[0])
    np.testing.assert_allclose(ratio_other, ratio_other[0])


def test_target_outside_the_curve_is_one_clear_error(box):
    atoms, grid = box
    qc = np.linspace(1.5, 6.0, 10)
    with pytest.raises(InputError, match="does not lie inside"):
        make_target(grid, atoms.cell.array, atoms.numbers, qc, qc, (1.0, 3.5))


def test_loss_is_zero_on_its_own_sq_and_its_gradient_matches_finite_differences(box):
    atoms, grid = box
    pos = jnp.asarray(atoms.positions)
    qc = np.linspace(0.2, 6.0, 50)
    flat = make_target(grid, atoms.cell.array, atoms.numbers, qc, np.ones_like(qc), (1.0, 3.5))
    s = np.asarray(model_sq(pos, flat))
    q, _ = shell_mean_q(grid)
    qu = q[flat.used]
    own = make_target(grid, atoms.cell.array, atoms.numbers, qu, s[flat.used], (qu.min(), qu.max()))
    assert float(sq_loss(model_sq(pos, own), own)) < 1e-20
    # the per-frame S(Q) averaged over frames is the S(Q) of the frames together
    frames = np.stack([atoms.positions, atoms.positions + 0.05])
    np.testing.assert_allclose(frame_sq(frames, flat).mean(0), model_sq(frames, flat), atol=1e-12)

    def loss(p):
        return sq_loss(model_sq(p, flat), flat)

    g = jax.grad(loss)(pos)
    d = jax.random.normal(jax.random.PRNGKey(0), pos.shape)
    h = 1e-5
    fd = (loss(pos + h * d) - loss(pos - h * d)) / (2 * h)
    np.testing.assert_allclose(float(jnp.vdot(g, d)), float(fd), rtol=1e-6)
