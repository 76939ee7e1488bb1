"""Dispersion heads (``RSAConfig.dispersion_heads``): the smooth ``length^5 / r^6`` kernel, its
``k = 0`` term, exact against a real-space lattice sum, never neutralised, and the same through
the direct and the mesh kernels, with forces and stress."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from rsajax.data import atoms_to_graph
from rsajax.nn.model import MACEConfig, init_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn, real_space_kernel, with_evaluation
from rsajax.nn.rsa.kernel import (
    queries_and_amplitudes,
    reciprocal_space_attention,
    zero_frequency_attention,
)
from rsajax.nn.rsa.kset import build_kset, kspace_geometry
from rsajax.nn.rsa.weights import dispersion_kernel, fixed_kweights, zero_frequency_weights
from rsajax.potential import energy_fn_from_model, make_potential
from tests.nn.rsa.node_graphs import single_graph
from tests.nn.rsa.test_rsa_mace_mesh import TINY, silica_box
from tests.structures import stress_by_strain

R_MAX = 5.0


def smooth_r6(r, sigma, length):
    """``length^5 [1 - exp(-x)(1 + x + x^2/2)] / r^6``, ``x = r^2 / (2 sigma^2)``; series at 0."""
    r = np.asarray(r, float)
    x = r * r / (2 * sigma * sigma)
    beta6 = 1.0 / (2 * sigma * sigma) ** 3
    small = beta6 * (1 / 6 - x / 8 + x * x / 20)
    safe = np.where(x < 1e-2, 1.0, r)
    large = (1 - np.exp(-x) * (1 + x + x * x / 2)) / safe**6
    return length**5 * np.where(x < 1e-2, small, large)


@pytest.mark.parametrize("k", [0.0, 0.3, 1.0, 2.5])
def test_dispersion_kernel_is_the_fourier_transform_of_the_smooth_tail(k):
    sigma, length = 1.3, 4.0

    def integrand(r):
        radial = r * np.sin(k * r) / k if k > 0 else r * r
        return 4 * np.pi * float(smooth_r6(r, sigma, length)) * radial

    numeric = quad(integrand, 0.0, 300.0, limit=2000)[0]
    exact = float(dispersion_kernel(jnp.asarray(k * k), sigma, length))
    assert abs(exact - numeric) <= 1e-6 * abs(exact)


def test_open_boundary_kernel_of_a_dispersion_head_is_the_smooth_r6_tail():
    """Head 1 is the smooth tail to the k-set's truncation (measured 1.1e-4 absolute, 5.4e-4 of
    the kernel's ``1 / r_max`` scale; the Coulomb head's is 1e-3), so beyond the cutoff it is
    ``r_max^5 / r^6`` less the remainder of its damping (9.4% at r_max = 5 A, 0.23% at 7 A)
    and the truncation's ripple (under 1% of ``r^-6`` to 15 A, 2% at 20-25 A, where ``r^-6``
    is 1e-4 of its value at the cutoff)."""
    config = RSAConfig(weighting="ewald", dispersion_heads=1).resolved(R_MAX)
    assert config.dispersion_length == pytest.approx(R_MAX)
    r = np.linspace(1.0, 25.0, 97)
    phi = np.asarray(real_space_kernel(config, r))
    exact = smooth_r6(r, config.sigma, R_MAX)
    np.testing.assert_allclose(phi[:, 1], exact, atol=1e-3 / R_MAX)
    remainder = 1 - phi[:, 1] * r**6 / R_MAX**5
    assert 0.08 < remainder[np.argmin(abs(r - 5.0))] < 0.11
    assert np.abs(remainder[(r >= 7.0) & (r <= 15.0)]).max() < 1e-2
    # the learned form at initialisation (f = 1) is the same kernel
    init = {"k_weights": {"coeffs": np.zeros((8, 2)), "bias": np.full(2, np.log(np.e - 1.0))}}
    learned = real_space_kernel(dataclasses.replace(config, weighting="ewald_learned"), r, init)
    np.testing.assert_allclose(np.asarray(learned), phi, rtol=1e-12, atol=1e-15)


def lattice_sum(positions, cell, sources, sigma, length, reach=70.0):
    """``1/2 sum_ij s_i s_j sum_n phi(|r_j - r_i + n|)`` (self term included) over images within
    ``reach``, plus the ``1/r^6`` tail beyond it as a uniform density (error ~reach^-5)."""
    inverse = np.linalg.inv(cell)
    span = int(np.ceil(reach * np.max(np.linalg.norm(inverse, axis=0)))) + 1
    grid = np.arange(-span, span + 1)
    shifts = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3) @ cell
    energy = 0.0
    for i in range(len(positions)):
        d = np.linalg.norm(positions[None, :, None] - positions[i] + shifts[None, None], axis=-1)
        d = d[0]  # (N, images)
        phi = np.where(d <= reach, smooth_r6(d, sigma, length), 0.0)
        energy += 0.5 * sources[i] * np.sum(sources[:, None] * phi)
    volume = abs(np.linalg.det(cell))
    tail = 4 * np.pi * length**5 / (3 * volume * reach**3)
    return energy + 0.5 * np.sum(sources) ** 2 * tail


def test_lattice_sum_with_the_zero_frequency_term_equals_the_real_space_sum():
    """Sources all positive (like C6 coefficients, a net "charge"): the k-sum with the ``k = 0``
    term is the absolutely convergent real-space lattice sum, on a triclinic cell."""
    rng = np.random.default_rng(5)
    cell = np.array([[7.0, 0.0, 0.0], [1.5, 7.5, 0.0], [-1.0, 1.2, 8.0]])
    positions = rng.uniform(0, 1, (6, 3)) @ cell
    sources = rng.uniform(0.5, 1.5, 6)
    sigma, length = 1.0, 3.0
    graph = single_graph(positions, cell)
    kset = build_kset(graph, k_cut=8.0, margin=0.0)
    cells = jnp.asarray(graph.cell)
    kvectors, measure = kspace_geometry(kset, cells)
    heads = (1, 1, length)
    weights = fixed_kweights(kset, kvectors, measure, "ewald", sigma, heads)
    zero = zero_frequency_weights(cells, kset.periodic, sigma, heads)
    assert zero.shape == (2, 1) and float(zero[1, 0]) == 0.0  # the padding graph is open
    qk = np.stack([np.append(sources, 0.0), np.zeros(7)], axis=1)
    common = dict(node_mask=graph.node_mask, num_heads=1, neutral=True, dispersion_heads=1)
    u = reciprocal_space_attention(
        qk, qk, np.ones((7, 2)), jnp.asarray(graph.positions), kvectors, weights, kset.mask,
        graph.node_graph, 2, **common,
    ) + zero_frequency_attention(
        qk, qk, np.ones((7, 2)), zero, graph.node_graph, 2, **common
    )  # fmt: skip
    energy = 0.5 * float(jnp.sum(u[:, 0]))
    reference = lattice_sum(positions, cell, sources, sigma, length)
    assert abs(energy / reference - 1) < 1e-6
    # the k = 0 term is most of it: a lattice sum without it is far off
    without = 0.5 * float(jnp.sum(u[:, 0] - zero_frequency_attention(
        qk, qk, np.ones((7, 2)), zero, graph.node_graph, 2, **common
    )[:, 0]))  # fmt: skip
    assert abs(without / reference - 1) > 0.3


def test_dispersion_heads_are_never_neutralised():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(5, 8)) for _ in range(3))
    node_graph, mask = np.zeros(5, np.int32), np.ones(5, bool)
    args = (q, k, v, node_graph, mask, 1, 2)
    _, raw = queries_and_amplitudes(*args, neutral=False)
    _, mixed = queries_and_amplitudes(*args, neutral=True, dispersion_heads=1)
    np.testing.assert_allclose(np.abs(np.sum(mixed[:, 0], axis=0)), 0.0, atol=1e-12)
    np.testing.assert_allclose(mixed[:, 1], raw[:, 1], atol=0)
    _, coulomb = queries_and_amplitudes(*args, neutral=True)
    np.testing.assert_allclose(mixed[:, 0], coulomb[:, 0], atol=1e-15)


def test_config_checks_dispersion_heads():
    with pytest.raises(ValueError, match="dispersion_heads must be in"):
        RSAConfig(num_heads=2, dispersion_heads=3)
    with pytest.raises(ValueError, match="'ewald' or 'ewald_learned'"):
        RSAConfig(weighting="learned", dispersion_heads=1)
    saved = RSAConfig(dispersion_heads=1).resolved(R_MAX).to_dict()
    assert RSAConfig.from_dict(saved).dispersion_heads == 1


#: The mesh test's RSA block, with one Coulomb and one dispersion head; ``residual`` so that the
#: random model's long-range part is not zero at initialisation.
RSA = dict(
    k_cut=1.5, weighting="ewald_learned", num_heads=2, combine="residual", channels=None,
    sigma=1.2, dispersion_heads=1, evaluation="direct",
)  # fmt: skip


def dispersion_models():
    config = MACEConfig(**TINY, long_range=RSAConfig(**RSA))
    model, variables = init_model(config, seed=3)
    # move the learned corrections off 1 so that f_h(0) and its gradient are exercised
    rng = np.random.default_rng(1)
    variables = jax.tree_util.tree_map(lambda x: x, variables)
    for t in range(config.num_interactions):
        learned = variables["params"][f"long_range_{t}"]["rsa"]["k_weights"]
        learned["coeffs"] = jnp.asarray(0.3 * rng.normal(size=learned["coeffs"].shape))
    return model, with_evaluation(model, "mesh", mesh_order=8), variables


def evaluate(model, variables, atoms):
    potential = make_potential(energy_fn_from_model(model))
    config = model.config.long_range
    graph = atoms_to_graph(atoms, TINY["r_max"], kset_fn=make_kset_fn(config, [atoms]))
    out = jax.tree_util.tree_map(np.asarray, potential(variables, graph))
    n = len(atoms)
    return {"energy": out["energy"][0], "forces": out["forces"][:n], "stress": out["stress"][0]}


def test_rsa_mace_with_a_dispersion_head_mesh_equals_direct_and_stress_is_exact():
    model, mesh_model, variables = dispersion_models()
    atoms = silica_box(seed=2)
    ref = evaluate(model, variables, atoms)
    out = evaluate(mesh_model, variables, atoms)
    for key in ("energy", "forces", "stress"):
        scale = np.max(np.abs(ref[key]))
        assert np.max(np.abs(out[key] - ref[key])) <= 1e-5 * scale, key
    for i, j in [(0, 0), (1, 2)]:
        fd = stress_by_strain(
            lambda a: evaluate(model, variables, a)["energy"], atoms, i, j, h=1e-4
        )
        assert abs(fd - ref["stress"][i, j]) <= 1e-6 * np.max(np.abs(ref["stress"])), (i, j)


def test_the_dispersion_preset_sees_the_gap_of_a_one_element_crystal_the_default_cannot():
    """Black phosphorus, every atom alike: beyond the local cutoff the default's neutral Coulomb
    heads give exactly nothing (each amplitude is the mean), the ``dispersion`` preset a
    long-range energy that changes with the interlayer gap."""
    from rsajax.teachers.layered import GAP0, black_phosphorus, set_gap

    tiny = dict(TINY, atomic_numbers=(15,), atomic_energies=(-1.0,), r_max=3.0)
    rng = np.random.default_rng(4)
    gaps = (GAP0 + 4.0, GAP0 + 8.0)  # closest interlayer pairs beyond r_max: locally alike
    structures = [set_gap(black_phosphorus(), gap, GAP0) for gap in gaps]
    energies = {}
    for preset in ("default", "dispersion"):
        config = MACEConfig(**tiny, long_range=RSAConfig.preset(preset, channels=8))
        model, variables = init_model(config, seed=0)
        params = jax.tree_util.tree_map(lambda x: x, variables["params"])
        for t in range(config.num_interactions):  # the readout starts at zero: wake it up
            readout = params[f"long_range_{t}"]["energy_readout"]
            readout["kernel"] = jnp.asarray(rng.normal(size=readout["kernel"].shape))
        parts = jax.jit(lambda v, g, m=model: m.apply(v, g, method=m.energy_parts))
        lr_config = model.config.long_range
        kset_fn = make_kset_fn(lr_config, structures)
        energies[preset] = [
            float(
                parts({**variables, "params": params}, atoms_to_graph(a, 3.0, kset_fn=kset_fn))[1][
                    0
                ]
            )
            for a in structures
        ]
    assert max(abs(e) for e in energies["default"]) < 1e-9
    near, far = energies["dispersion"]
    # (random readouts: thousands of eV, mostly the self and k = 0 terms; the gap moves it by
    # ~2e-3 of that, far above round-off)
    assert abs(near) > 1.0 and abs(near - far) > 1e-6 * abs(near)


def test_a_learned_dispersion_head_keeps_its_r6_tail():
    """A dispersion head's learned correction is a smooth function of ``k^2`` (its basis is
    mirrored about 0), so far away its kernel is ``f(0) r_max^5 / r^6``. The Coulomb heads'
    basis, not mirrored, has terms odd in ``|k|``, which add an ``r^-4`` tail: with the same
    random coefficients that kernel is 3.4 and 4.3 times ``f(0) r_max^5 / r^6`` at 25 and 30 A
    (measured), the mirrored one 1.06 and 1.04."""
    config = RSAConfig(dispersion_heads=1).resolved(R_MAX)
    rng = np.random.default_rng(2)
    coeffs = np.zeros((8, 2))
    coeffs[:, 1] = 0.3 * rng.normal(size=8)
    bias = np.full(2, np.log(np.e - 1.0))
    r = np.array([25.0, 30.0])
    phi = np.asarray(real_space_kernel(config, r, {"k_weights": {"coeffs": coeffs, "bias": bias}}))
    centres = np.linspace(0.0, 1.0, 8)
    at_zero = 2 * np.exp(-((centres * 7) ** 2)) @ coeffs[:, 1] + bias[1]  # mirrored basis, k = 0
    tail = phi[:, 1] * r**6 / (R_MAX**5 * np.log1p(np.exp(at_zero)))
    np.testing.assert_allclose(tail, 1.0, atol=0.1)
