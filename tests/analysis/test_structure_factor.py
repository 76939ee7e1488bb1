"""Direct-method S(Q): agreement with dynasor, weights, large-Q limit, gradients."""

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.analysis.structure_factor import (
    reciprocal_grid,
    shell_sums,
    species_onehot,
    structure_factor,
    weighted_structure_factor,
)
from rsajax.analysis.weights import neutron_lengths, pair_weights, xray_form_factors
from tests.analysis.structures import beta_cristobalite


def _rattled_frames(n_frames=3, rattle=0.2, reps=(2, 2, 2)):
    frames = []
    for k in range(n_frames):
        a = beta_cristobalite() * reps
        a.rattle(rattle, seed=k)
        frames.append(a)
    return frames


def test_partials_match_dynasor_static_structure_factor(tmp_path):
    """Per-q partials equal dynasor's to 1e-8 relative (both float64, same q-points, 3 frames).

    dynasor's ``Sq_a_b`` is ``<Re rho_a rho_b* + Re rho_b rho_a*> / N`` for a != b and
    ``<|rho_a|^2> / N`` for a == b, i.e. ``c_a S^AL_aa`` and ``2 sqrt(c_a c_b) S^AL_ab``.
    """
    dynasor = pytest.importorskip("dynasor")
    frames = _rattled_frames()
    # ASE .traj keeps float64 positions exactly; dynasor's extxyz reader would fork a process
    # pool, which is unsafe once JAX has started its threads
    path = tmp_path / "frames.traj"
    ase.io.write(path, frames)
    grid = reciprocal_grid(frames[0].cell[:], q_max=6.0, max_per_shell=20)
    numbers = frames[0].numbers
    indices = {
        "Si": np.flatnonzero(numbers == 14).tolist(),
        "O": np.flatnonzero(numbers == 8).tolist(),
    }
    traj = dynasor.Trajectory(str(path), trajectory_format="ase", atomic_indices=indices)
    sample = dynasor.compute_static_structure_factors(traj, grid.vectors)

    kinds, onehot = species_onehot(frames[0].numbers)
    pos = np.stack([a.positions for a in frames])
    m = len(grid.vectors)
    per_q = np.asarray(shell_sums(pos, frames[0].cell[:], onehot, grid.hkl, np.arange(m), m)) / len(
        frames
    )
    n = len(frames[0])
    names = {14: "Si", 8: "O"}
    compared = 0
    for x, za in enumerate(kinds):
        for y, zb in enumerate(kinds):
            if y < x:
                continue
            key = f"Sq_{names[za]}_{names[zb]}"
            if not hasattr(sample, key):
                key = f"Sq_{names[zb]}_{names[za]}"
            ref = np.asarray(getattr(sample, key)).ravel()
            ours = per_q[:, x, y] / n * (1.0 if x == y else 2.0)
            np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
            compared += 1
    assert compared == 3
    np.testing.assert_allclose(per_q.sum(axis=(1, 2)) / n, np.asarray(sample.Sq).ravel(), rtol=1e-8)


def test_silica_neutron_weights_sum_to_one():
    """Faber-Ziman neutron weights of SiO2: Si-Si 0.069, Si-O (both orders) 0.388, O-O 0.543."""
    w = pair_weights(np.array([1 / 3, 2 / 3]), neutron_lengths(np.array([14, 8])))
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert w[0, 0] == pytest.approx(0.069, abs=0.002)
    assert w[0, 1] + w[1, 0] == pytest.approx(0.388, abs=0.002)
    assert w[1, 1] == pytest.approx(0.543, abs=0.002)
    # X-ray weights at every q also sum to one and put ~3x the neutron weight on Si-Si at low Q
    f = xray_form_factors(np.array([14, 8]), np.array([0.5, 1.5, 10.0]))
    cf = np.array([1 / 3, 2 / 3]) * f
    wx = np.einsum("ka,kb->kab", cf, cf) / cf.sum(axis=1)[:, None, None] ** 2
    np.testing.assert_allclose(wx.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    assert 2.0 < wx[0, 0, 0] / w[0, 0] < 4.0


def test_weighted_total_equals_one_pass_formula():
    """The partials, recombined with neutron weights, equal the one-pass
    ``|sum_j b_j e^{iq.r_j}|^2 / N - sum_a c_a b_a^2`` (divided by <b>^2, plus 1), per shell."""
    a = _rattled_frames(1)[0]
    sf = structure_factor(a.positions, a.cell[:], a.numbers, q_max=5.0, max_per_shell=None)
    grid = reciprocal_grid(a.cell[:], 5.0, max_per_shell=None)
    b = neutron_lengths(sf.species)
    bj = np.where(a.numbers == 14, b[0], b[1]) if sf.species[0] == 14 else None
    bj = np.where(a.numbers == sf.species[0], b[0], b[1]) if bj is None else bj
    amp = np.exp(1j * grid.vectors @ a.positions.T) @ bj
    per_q = np.abs(amp) ** 2 / len(a) - np.sum(sf.concentrations * b**2)
    counts = np.bincount(grid.shell, minlength=grid.n_shells)
    shell_mean = np.bincount(grid.shell, per_q, minlength=grid.n_shells)[counts > 0]
    shell_mean /= counts[counts > 0]
    expected = 1.0 + shell_mean / np.sum(sf.concentrations * b) ** 2
    np.testing.assert_allclose(sf.neutron(), expected, rtol=1e-9, atol=1e-9)


def test_structure_factor_tends_to_one_at_large_q():
    """Thermal disorder (0.3 A rattle) kills Bragg peaks at large Q: every partial -> 1."""
    frames = _rattled_frames(4, rattle=0.3)
    pos = np.stack([a.positions for a in frames])
    sf = structure_factor(pos, frames[0].cell[:], frames[0].numbers, q_max=22.0)
    high = sf.q > 16.0
    assert high.sum() > 50
    for x in range(2):
        for y in range(2):
            assert np.mean(sf.partials[high, x, y]) == pytest.approx(1.0, abs=0.05)
    assert np.mean(sf.neutron()[high]) == pytest.approx(1.0, abs=0.02)
    assert np.mean(sf.xray()[high]) == pytest.approx(1.0, abs=0.03)
    # and it is far from 1 at a Bragg peak of the crystal (Q of (111) = 2 pi sqrt(3) / 7.16 A)
    assert np.max(sf.neutron()[np.abs(sf.q - 1.52) < 0.03]) > 3.0


def test_gradient_of_shell_value_matches_finite_differences():
    """jax.grad of one shell of S_N with respect to positions equals central differences, and the
    differentiable total equals the numpy path."""
    a = beta_cristobalite()
    a.rattle(0.2, seed=3)
    grid = reciprocal_grid(a.cell[:], 3.0, max_per_shell=None)
    lengths = neutron_lengths(np.unique(a.numbers))
    counts, s_all = weighted_structure_factor(a.positions, a.cell[:], a.numbers, grid, lengths)
    ref = structure_factor(a.positions, a.cell[:], a.numbers, q_max=3.0, max_per_shell=None)
    np.testing.assert_allclose(np.asarray(s_all)[counts > 0], ref.neutron(), rtol=1e-10)
    target = int(np.argmax(counts))

    @jax.jit
    def s_neutron(pos):
        return weighted_structure_factor(pos, a.cell[:], a.numbers, grid, lengths)[1][target]

    pos = jnp.asarray(a.positions)
    grad = np.asarray(jax.grad(s_neutron)(pos))
    assert np.abs(grad).max() > 1e-3
    h = 1e-5
    for atom, dim in [(0, 0), (5, 1), (17, 2)]:
        step = jnp.zeros_like(pos).at[atom, dim].set(h)
        fd = (s_neutron(pos + step) - s_neutron(pos - step)) / (2 * h)
        assert grad[atom, dim] == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


def test_weighted_total_of_frames_is_their_mean_and_matches_the_numpy_path():
    """Over frames sharing a cell, the differentiable total is the mean of the per-frame totals
    (each shell holds the same vectors in every frame) and equals structure_factor's neutron."""
    frames = _rattled_frames(3)
    pos = np.stack([a.positions for a in frames])
    cell, numbers = frames[0].cell[:], frames[0].numbers
    grid = reciprocal_grid(cell, 4.0, max_per_shell=None)
    lengths = neutron_lengths(np.unique(numbers))
    counts, s_frames = weighted_structure_factor(pos, cell, numbers, grid, lengths)
    each = [weighted_structure_factor(p, cell, numbers, grid, lengths)[1] for p in pos]
    np.testing.assert_allclose(s_frames, np.mean(each, axis=0), rtol=1e-12)
    assert np.ptp(np.stack(each)[:, counts > 0], axis=0).max() > 0.05  # the frames differ
    ref = structure_factor(pos, cell, numbers, q_max=4.0, max_per_shell=None)
    np.testing.assert_allclose(np.asarray(s_frames)[counts > 0], ref.neutron(), rtol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        weighted_structure_factor(pos[:, :-1], cell, numbers, grid, lengths)


def test_bad_inputs_fail_loudly():
    a = beta_cristobalite()
    with pytest.raises(ValueError, match="volume"):
        reciprocal_grid(np.zeros((3, 3)), 5.0)
    with pytest.raises(ValueError, match="species"):
        structure_factor(a.positions, a.cell[:], a.numbers[:-1])
