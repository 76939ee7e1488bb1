"""Mesh evaluation of RSA: agreement with the direct kernel, derivatives, symmetry, batching."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.nn.rsa.bspline import bspline_weights, interpolate, spread, stencil_dot
from rsajax.nn.rsa.grid import (
    MeshSpec,
    batched_mesh_shape,
    fft_size,
    mesh_kset,
    mesh_shape,
    mesh_spec,
)
from rsajax.nn.rsa.kernel import reciprocal_space_attention
from rsajax.nn.rsa.kset import build_kset, kspace_geometry
from rsajax.nn.rsa.mesh import mesh_attention
from rsajax.nn.rsa.weights import LearnedKWeights, fixed_kweights, mesh_kweights
from tests.nn.rsa.node_graphs import single_graph
from tests.nn.rsa.test_kernel import TRICLINIC

CELL = TRICLINIC * 1.4  # n_max = (2, 2, 2) at k_cut = 1: grids of 10 to 15 points per axis
K_CUT, C, HEADS, SIGMA = 1.0, 8, 2, 2.0
PERIODIC = np.array([True, False])  # the real graph and single_graph's padding graph


def system(seed=0, n_atoms=14, cell=CELL):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 1, (n_atoms, 3)) @ cell
    qkv = rng.normal(size=(3, n_atoms + 1, C))
    qkv[:, -1] = 1e3  # the padding node carries garbage: it must not matter
    return positions, qkv


def direct_u(positions, cell, qkv, weighting="ewald"):
    graph = single_graph(positions, cell)
    kset = build_kset(graph, K_CUT)
    kvectors, measure = kspace_geometry(kset, jnp.asarray(graph.cell))
    weights = fixed_kweights(kset, kvectors, measure, weighting, SIGMA)
    args = (jnp.asarray(graph.positions), kvectors, weights, kset.mask, graph.node_graph, 2)
    return reciprocal_space_attention(*qkv, *args, node_mask=graph.node_mask, num_heads=HEADS)


@partial(jax.jit, static_argnames=("mesh", "weighting"))
def mesh_u(positions, cell, qkv, mesh, weighting="ewald"):
    """Traceable in positions and cell: the layout of make_graph (one padding node and graph)."""
    n = positions.shape[0]
    cells = jnp.stack([jnp.asarray(cell), jnp.eye(3) * 1000.0])
    weights = mesh_kweights(mesh, cells, PERIODIC, weighting, SIGMA)
    node_graph = np.array([0] * n + [1], np.int32)
    padded = jnp.concatenate([jnp.asarray(positions), jnp.zeros((1, 3))])
    args = (padded, cells, weights, node_graph, 2, mesh)
    return mesh_attention(*qkv, *args, node_mask=node_graph == 0, num_heads=HEADS)


def spec(order, oversampling, cell=CELL):
    return MeshSpec(mesh_shape(cell, K_CUT, oversampling), order, K_CUT)


def relative_error(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def test_agrees_with_the_direct_kernel_and_converges_with_order_and_oversampling():
    positions, qkv = system()
    reference = direct_u(positions, CELL, qkv)
    assert np.abs(reference[:-1]).max() > 1e-2 and np.all(reference[-1] == 0)
    by_order = [relative_error(mesh_u(positions, CELL, qkv, spec(p, 2.0)), reference)
                for p in (4, 6, 8)]  # fmt: skip
    by_oversampling = [relative_error(mesh_u(positions, CELL, qkv, spec(8, s)), reference)
                       for s in (1.5, 3.0)]  # fmt: skip
    # measured: order 4/6/8 at oversampling 2: 5.6e-4, 2.2e-5, 1.1e-6;
    # order 8 at oversampling 1.5/3: 2.4e-5, 3.8e-8
    assert by_order[0] > by_order[1] > by_order[2] and by_order[2] < 5e-6
    assert by_oversampling[0] > by_order[2] > by_oversampling[1]
    assert by_oversampling[1] < 2e-7
    # the 'ones' weighting (no 1/V) goes through the same path
    ones = mesh_u(positions, CELL, qkv, spec(8, 3.0), "ones")
    assert relative_error(ones, direct_u(positions, CELL, qkv, "ones")) < 2e-7


def test_learned_weights_plug_in_per_head():
    """LearnedKWeights applied to mesh_kset == the same module on the direct k-set."""
    positions, qkv = system(1)
    graph = single_graph(positions, CELL)
    cells = jnp.asarray(graph.cell)
    module = LearnedKWeights(HEADS)
    kset = build_kset(graph, K_CUT)
    kvectors, measure = kspace_geometry(kset, cells)
    params = module.init(jax.random.PRNGKey(0), kset, kvectors, measure)
    params = jax.tree.map(lambda x: x + jnp.linspace(-0.5, 0.7, x.size).reshape(x.shape), params)
    weights = module.apply(params, kset, kvectors, measure)
    assert not np.allclose(weights[0, :, 0], weights[0, :, 1])  # the heads really differ
    args = (jnp.asarray(graph.positions), kvectors, weights, kset.mask, graph.node_graph, 2)
    reference = reciprocal_space_attention(*qkv, *args, node_mask=graph.node_mask, num_heads=HEADS)
    mesh = spec(8, 3.0)
    grid_kset = mesh_kset(mesh, PERIODIC)
    grid_weights = module.apply(params, grid_kset, *kspace_geometry(grid_kset, cells))
    args = (jnp.asarray(graph.positions), cells, grid_weights, graph.node_graph, 2, mesh)
    u = mesh_attention(*qkv, *args, node_mask=graph.node_mask, num_heads=HEADS)
    assert relative_error(u, reference) < 2e-7
    # the radial-callable form of mesh_kweights gives the same weights
    radial = lambda k_norm: jax.nn.softplus(jnp.stack([k_norm, -k_norm], axis=-1))  # noqa: E731
    via_callable = mesh_kweights(mesh, cells, PERIODIC, radial)
    k_norm = jnp.linalg.norm(kspace_geometry(grid_kset, cells)[0], axis=-1)
    envelope_measure = mesh_kweights(mesh, cells, PERIODIC, "ones") / jnp.abs(
        jnp.linalg.det(cells[0])
    )
    expected = jnp.where(grid_kset.mask[..., None], radial(k_norm) * envelope_measure, 0.0)
    np.testing.assert_allclose(via_callable, expected, rtol=1e-12, atol=1e-15)


def test_forces_stress_and_force_training_gradients_match_finite_differences():
    positions, qkv = system(2)
    probe = np.random.default_rng(3).normal(size=(len(positions) + 1, C))
    mesh = spec(6, 2.0)

    @jax.jit
    def energy(positions, strain, q):
        deform = jnp.eye(3) + strain
        u = mesh_u(positions @ deform.T, jnp.asarray(CELL) @ deform.T, (q, *qkv[1:]), mesh)
        return jnp.sum(u * probe)

    zero, q = jnp.zeros((3, 3)), jnp.asarray(qkv[0])
    grad_pos, grad_strain = jax.grad(energy, argnums=(0, 1))(positions, zero, q)
    h = 1e-5
    for atom, axis in [(0, 0), (5, 1), (11, 2)]:
        step = np.zeros_like(positions)
        step[atom, axis] = h
        fd = (energy(positions + step, zero, q) - energy(positions - step, zero, q)) / (2 * h)
        np.testing.assert_allclose(grad_pos[atom, axis], fd, rtol=1e-6, atol=1e-9)
    for a, b in [(0, 0), (0, 1), (2, 1)]:
        step = np.zeros((3, 3))
        step[a, b] = h
        fd = (energy(positions, step, q) - energy(positions, -step, q)) / (2 * h)
        np.testing.assert_allclose(grad_strain[a, b], fd, rtol=1e-6, atol=1e-9)
    assert np.abs(grad_strain).max() > 1e-3
    # force-matching losses differentiate the forces again (custom derivatives, second order)
    force_loss = jax.jit(lambda q: jnp.sum(jax.grad(energy)(positions, zero, q) ** 2))
    grad_q = jax.grad(force_loss)(q)
    step = np.zeros(q.shape)
    step[3, 2] = h
    fd = (force_loss(q + step) - force_loss(q - step)) / (2 * h)
    np.testing.assert_allclose(grad_q[3, 2], fd, rtol=1e-6)


def test_wrapping_and_grid_shifts_are_exact_translations_are_within_mesh_accuracy():
    positions, qkv = system(4)
    mesh = spec(8, 2.0)
    run = jax.jit(lambda p: mesh_u(p, CELL, qkv, mesh))
    u0 = run(positions)
    shifts = np.random.default_rng(5).integers(-2, 3, positions.shape)
    assert relative_error(run(positions + shifts @ CELL), u0) < 1e-12
    grid_vector = np.array([3, -1, 2]) / np.array(mesh.shape) @ CELL
    assert relative_error(run(positions + grid_vector), u0) < 1e-12
    # an arbitrary translation moves the atoms relative to the grid: invariant to mesh accuracy
    moved = relative_error(run(positions + np.array([0.31, -1.7, 2.23])), u0)
    assert 1e-12 < moved < 1e-5


def test_vmap_over_systems_equals_a_loop():
    cells = [CELL * f for f in (1.0, 1.06, 0.95)]
    shape = batched_mesh_shape(np.stack(cells), np.ones((3, 3), bool), K_CUT)
    mesh = MeshSpec(shape, 6, K_CUT)
    systems = [system(10 + i, cell=c) for i, c in enumerate(cells)]
    run = jax.jit(lambda p, c, qkv: mesh_u(p, c, qkv, mesh))
    batched = jax.vmap(run)(
        jnp.stack([s[0] for s in systems]), jnp.stack(cells), jnp.stack([s[1] for s in systems])
    )
    for b, ((positions, qkv), cell) in enumerate(zip(systems, cells, strict=True)):
        np.testing.assert_allclose(batched[b], run(positions, cell, qkv), rtol=0, atol=1e-12)


def test_a_batch_of_graphs_with_padding_equals_each_graph_alone():
    shape = batched_mesh_shape(np.stack([CELL, CELL * 1.1]), np.ones((2, 3), bool), K_CUT)
    mesh = MeshSpec(shape, 6, K_CUT)
    (pos_a, qkv_a), (pos_b, qkv_b) = system(20, 9), system(21, 12, CELL * 1.1)
    # two real graphs, then two padding nodes in a padding graph with a zero cell
    positions = np.concatenate([pos_a, pos_b, np.full((2, 3), 5.0)])
    qkv = np.concatenate([qkv_a[:, :-1], qkv_b[:, :-1], np.full((3, 2, C), 1e3)], axis=1)
    cells = jnp.asarray(np.stack([CELL, CELL * 1.1, np.zeros((3, 3))]))
    node_graph = np.array([0] * 9 + [1] * 12 + [2, 2], np.int32)
    node_mask = node_graph < 2

    def total(p, periodic):  # periodic is traced, as a model would pass graph flags
        weights = mesh_kweights(mesh, cells, periodic, "ewald", SIGMA)
        args = (p, cells, weights, node_graph, 3, mesh)
        u = mesh_attention(*qkv, *args, node_mask=node_mask, num_heads=HEADS)
        return jnp.sum(u), u

    periodic = jnp.array([True, True, False])
    grad, u = jax.jit(jax.grad(total, has_aux=True))(jnp.asarray(positions), periodic)
    assert np.all(u[-2:] == 0) and np.all(np.isfinite(u))
    alone_a = mesh_u(pos_a, CELL, qkv_a, mesh)[:-1]
    alone_b = mesh_u(pos_b, CELL * 1.1, qkv_b, mesh)[:-1]
    np.testing.assert_allclose(u[:9], alone_a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(u[9:21], alone_b, rtol=0, atol=1e-12)

    # gradients through the zero-cell padding graph stay finite
    assert np.all(np.isfinite(grad)) and np.all(grad[-2:] == 0)


def test_host_side_shapes_and_errors():
    assert [fft_size(n) for n in (1, 7, 11, 13, 17, 31, 97)] == [1, 8, 12, 15, 18, 32, 100]
    shape = mesh_shape(CELL, K_CUT, oversampling=2.0, margin=0.1)
    n_max = np.floor(K_CUT * 1.1 * np.linalg.norm(CELL, axis=1) / (2 * np.pi))
    assert np.all(np.array(shape) >= 2 * (2 * n_max + 1))
    mesh = MeshSpec(shape, 6, K_CUT)
    assert mesh.covers(CELL, oversampling=2.0) and mesh.covers(CELL * 1.05)
    assert not mesh.covers(CELL * 2.0)
    big = batched_mesh_shape(np.stack([CELL, CELL * 2]), np.ones((2, 3), bool), K_CUT)
    assert big == mesh_shape(CELL * 2, K_CUT)
    spec_ = mesh_spec(np.stack([CELL, CELL * 2]), np.ones((2, 3), bool), K_CUT, order=8)
    assert spec_ == MeshSpec(big, 8, K_CUT, 0.2)
    with pytest.raises(ValueError, match="structure 1: the mesh evaluation needs a fully periodic"):
        batched_mesh_shape(np.stack([CELL, CELL]), np.array([[1, 1, 1], [1, 1, 0]], bool), K_CUT)
    with pytest.raises(ValueError, match="selects no reciprocal lattice vector"):
        mesh_shape(np.eye(3) * 3.0, 0.5)
    with pytest.raises(ValueError, match="non-singular"):
        mesh_shape(np.zeros((3, 3)), 1.0)
    with pytest.raises(ValueError, match="expected"):
        positions, qkv = system()
        mesh_attention(*qkv, positions, CELL[None], jnp.zeros((1, 5)), np.zeros(15, int), 1, mesh)


def test_spline_operators_partition_of_unity_and_adjointness():
    x = np.linspace(0.0, 0.999, 7)
    for order in (2, 5, 8):
        weights = bspline_weights(jnp.asarray(x), order)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-14)
        assert np.all(weights >= 0)
    rng = np.random.default_rng(8)
    flat = jnp.asarray(np.sort(rng.integers(0, 40, (6, 9)), axis=1), jnp.int32)
    stencil, values, grid = (
        rng.normal(size=(6, 9)),
        rng.normal(size=(9, 3)),
        rng.normal(size=(40, 3)),
    )
    # <P^T values, grid> == <values, P grid>: spreading is the transpose of interpolation
    lhs = jnp.sum(spread(values, flat, stencil, 40) * grid)
    rhs = jnp.sum(values * interpolate(grid, flat, stencil))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    expected = np.einsum("tnb,nb->tn", grid[np.asarray(flat)], values)
    np.testing.assert_allclose(stencil_dot(grid, flat, values), expected, rtol=1e-12)
