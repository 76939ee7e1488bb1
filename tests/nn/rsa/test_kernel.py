"""Reciprocal-space attention: oracle, symmetries, smoothness, gradients, batching, physics."""

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from rsajax.nn.rsa.combine import make_combination
from rsajax.nn.rsa.kernel import open_boundary_attention, reciprocal_space_attention
from rsajax.nn.rsa.kset import (
    KSet,
    build_kset,
    build_seed_kset,
    integer_kset,
    inversion_pairs,
    kspace_geometry,
)
from rsajax.nn.rsa.layer import RSABlock
from rsajax.nn.rsa.weights import fixed_kweights
from tests.nn.rsa.node_graphs import batch_graph, single_graph

TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 10.0, 0.0], [-1.5, 1.8, 11.0]])
C_IN, C = 6, 8


def closed_form(q, k, v, positions, kvectors, weights, num_heads):
    """RSA.md's O(N^2 M) oracle: cos and sin (omega) terms, self term included."""
    n, c = q.shape
    width = c // num_heads
    u = np.zeros((n, c))
    r_ij = positions[:, None, :] - positions[None, :, :]
    theta = np.einsum("ijx,mx->ijm", r_ij, kvectors)
    for h in range(num_heads):
        sl = slice(h * width, (h + 1) * width)
        qh, kh = q[:, sl], k[:, sl]
        dot = qh @ kh.T
        omega = qh[:, 0::2] @ kh[:, 1::2].T - qh[:, 1::2] @ kh[:, 0::2].T
        kernel = np.einsum("m,ijm->ij", weights[:, h], np.cos(theta)) * dot
        kernel += np.einsum("m,ijm->ij", weights[:, h], np.sin(theta)) * omega
        u[:, sl] = kernel @ v[:, sl]
    return u


def random_params(module, *args, seed=0):
    """N(0, 0.5^2) parameters of the right shapes, without compiling an initialiser (fast)."""
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: 0.5 * rng.normal(size=x.shape).astype(x.dtype), shapes)


class Setup:
    """A small periodic system, an RSA block with fixed random parameters and a test energy."""

    def __init__(self, weighting="ewald", num_heads=2, cell=TRICLINIC, n_atoms=10, k_cut=1.0):
        rng = np.random.default_rng(7)
        self.cell = np.asarray(cell, float)
        self.positions = rng.uniform(0, 1, (n_atoms, 3)) @ self.cell
        self.scalars = rng.normal(size=(n_atoms + 1, C_IN))
        self.k_cut = k_cut
        self.block = RSABlock(C, num_heads=num_heads, weighting=weighting, sigma=2.0)
        self.graph = single_graph(self.positions, self.cell)
        self.kset = build_kset(self.graph, k_cut)
        self.params = random_params(self.block, *self.args(self.positions, self.cell))
        self.probe = rng.normal(size=(n_atoms + 1, C))
        self._apply = jax.jit(self.block.apply)

    def args(self, positions, cell, kset=None, scalars=None):
        scalars = self.scalars if scalars is None else scalars
        pos = jnp.concatenate([jnp.asarray(positions), jnp.zeros((1, 3))])
        cells = jnp.stack([jnp.asarray(cell), jnp.eye(3) * 1000.0])
        kset = self.kset if kset is None else kset
        return scalars, pos, cells, kset, self.graph.node_graph, self.graph.node_mask

    def u(self, positions, cell, kset=None, scalars=None):
        return self._apply(self.params, *self.args(positions, cell, kset, scalars))[:-1]

    def energy(self, positions, cell, kset=None):
        return jnp.sum(self.u(positions, cell, kset) * self.probe[:-1])


def test_seed_mode_matches_the_closed_form_on_a_cubic_box():
    rng = np.random.default_rng(1)
    positions = rng.uniform(0, 20.0, (9, 3))
    graph = single_graph(positions, np.eye(3) * 20.0)
    kset = build_seed_kset(graph)
    kvectors, measure = kspace_geometry(kset, jnp.asarray(graph.cell))
    weights = fixed_kweights(kset, kvectors, measure, "ones")
    np.testing.assert_array_equal(weights[0], np.ones(6))  # unit weights, no envelope, no 1/V
    q, k, v = rng.normal(size=(3, 10, C))
    args = (jnp.asarray(graph.positions), kvectors, weights, kset.mask, graph.node_graph, 2)
    u = reciprocal_space_attention(q, k, v, *args, node_mask=graph.node_mask)
    expected = closed_form(q[:9], k[:9], v[:9], positions, kvectors[0], np.ones((6, 1)), 1)
    np.testing.assert_allclose(u[:9], expected, rtol=0, atol=1e-10)
    assert np.abs(expected).max() > 1.0 and np.all(u[9] == 0)


def test_multihead_ewald_matches_the_closed_form_on_a_triclinic_box():
    s = Setup("learned", num_heads=2)
    kvectors, measure = kspace_geometry(s.kset, jnp.asarray(s.graph.cell))
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(3, 11, C))
    weights = rng.uniform(0.1, 1.0, s.kset.mask.shape + (2,)) * s.kset.mask[..., None]
    args = (jnp.asarray(s.graph.positions), kvectors, weights, s.kset.mask, s.graph.node_graph, 2)
    u = reciprocal_space_attention(q, k, v, *args, node_mask=s.graph.node_mask, num_heads=2)
    m = s.kset.mask[0]
    expected = closed_form(q[:10], k[:10], v[:10], s.positions, kvectors[0][m], weights[0][m], 2)
    np.testing.assert_allclose(u[:10], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("weighting", ["ones", "ewald", "learned"])
def test_invariances(weighting):
    s = Setup(weighting)
    u0 = s.u(s.positions, s.cell)
    assert np.abs(u0).max() > 1e-3
    tol = dict(rtol=0, atol=1e-10 * np.abs(u0).max())
    # translation
    np.testing.assert_allclose(s.u(s.positions + np.array([0.3, -1.7, 2.2]), s.cell), u0, **tol)
    # joint rotation of atoms and cell (the integer k-set is unchanged)
    rot = Rotation.random(random_state=3).as_matrix()
    np.testing.assert_allclose(s.u(s.positions @ rot.T, s.cell @ rot.T), u0, **tol)
    # wrapping atoms by lattice vectors
    shifts = np.random.default_rng(4).integers(-2, 3, (len(s.positions), 3))
    np.testing.assert_allclose(s.u(s.positions + shifts @ s.cell, s.cell), u0, **tol)
    # an equivalent cell: a unimodular change of basis, k-set chosen afresh on the host
    unimodular = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    other_cell = unimodular @ s.cell
    other = build_kset(single_graph(s.positions, other_cell), s.k_cut)
    np.testing.assert_allclose(s.u(s.positions, other_cell, other), u0, **tol)
    # permutation: the outputs follow the atoms
    perm = np.random.default_rng(5).permutation(len(s.positions))
    scalars = np.concatenate([s.scalars[:-1][perm], s.scalars[-1:]])
    np.testing.assert_allclose(s.u(s.positions[perm], s.cell, scalars=scalars), u0[perm], **tol)


def test_forces_and_stress_match_finite_differences():
    s = Setup("learned")

    def strained_energy(positions, strain):
        deform = jnp.eye(3) + strain
        return s.energy(positions @ deform.T, s.cell @ deform.T)

    strained_energy = jax.jit(strained_energy)
    zero = jnp.zeros((3, 3))
    grad_pos, grad_strain = jax.grad(strained_energy, argnums=(0, 1))(s.positions, zero)
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        step = np.zeros_like(s.positions)
        step[atom, axis] = h
        fd = strained_energy(s.positions + step, zero) - strained_energy(s.positions - step, zero)
        np.testing.assert_allclose(grad_pos[atom, axis], fd / (2 * h), rtol=1e-6, atol=1e-9)
    for a in range(3):
        for b in range(3):
            step = np.zeros((3, 3))
            step[a, b] = h
            fd = strained_energy(s.positions, step) - strained_energy(s.positions, -step)
            np.testing.assert_allclose(grad_strain[a, b], fd / (2 * h), rtol=1e-6, atol=1e-9)
    assert np.abs(grad_strain).max() > 1e-4  # the cell dependence is really exercised


def scan_energy(s, strains, smooth):
    """Energy along an isotropic strain; smooth: envelope + margin set chosen once at zero
    strain; hard: unit weights on a set re-selected with |k| <= k_cut at every strain."""
    energies = []
    for eps in strains:
        cell = s.cell * (1 + eps)
        positions = s.positions * (1 + eps)
        if smooth:
            energies.append(float(s.energy(positions, cell)))
            continue
        n, mask = integer_kset(cell, s.k_cut, margin=0.0, m_max=s.kset.num_k)
        pad = KSet(
            n=np.stack([n, np.zeros_like(n)]),
            nodes=np.zeros((2,) + n.shape),
            node_weights=np.zeros((2, len(mask))),
            mask=np.stack([mask, np.zeros_like(mask)]),
            periodic=np.array([True, False]),
            k_cut=s.k_cut,
            smooth=False,
        )
        energies.append(float(s.energy(positions, cell, pad)))
    return np.array(energies)


def test_energy_is_continuous_through_a_k_shell_crossing():
    cell = np.eye(3) * 12.0
    k_cut = 2 * np.pi * np.sqrt(5) / 12.0  # the n = (1, 2, 0) shell sits on k_cut at zero strain
    s = Setup("ones", cell=cell, k_cut=k_cut)
    strains = np.linspace(-0.02, 0.02, 401)
    smooth = scan_energy(s, strains, smooth=True)
    hard = scan_energy(s, strains, smooth=False)
    smooth_jump, hard_jump = np.abs(np.diff(smooth)).max(), np.abs(np.diff(hard)).max()
    # continuity bound: a step can change E by at most max|dE/d eps| * d eps
    slope = jax.jit(jax.grad(lambda e: s.energy(s.positions * (1 + e), cell * (1 + e))))
    bound = max(abs(float(slope(e))) for e in strains[::20]) * (strains[1] - strains[0])
    assert smooth_jump < 1.5 * bound
    assert hard_jump > 100 * smooth_jump  # the hard set jumps when the shell leaves it
    # re-choosing the margin set at every strain changes nothing: vectors enter beyond k_cut
    for eps in (-0.02, 0.015):
        fresh = build_kset(single_graph(s.positions * (1 + eps), cell * (1 + eps)), k_cut)
        e_fresh = s.energy(s.positions * (1 + eps), cell * (1 + eps), fresh)
        assert abs(float(e_fresh) - smooth[np.argmin(np.abs(strains - eps))]) < 1e-10


def test_open_boundary_energy_is_rotation_invariant_to_quadrature_accuracy():
    """The open-boundary kernel is a radial pair sum (angles integrated exactly): rotating and
    translating a molecule change u only by round-off."""
    rng = np.random.default_rng(8)
    s = Setup("ewald", n_atoms=12)
    molecule = rng.uniform(-3.0, 3.0, (12, 3))
    s.graph = single_graph(molecule, np.zeros((3, 3)), pbc=(False, False, False))
    s.kset = build_kset(s.graph, k_cut=1.2)
    assert s.kset.has_open and s.kset.pair_index is None
    u0 = s.u(molecule, np.zeros((3, 3)))
    assert np.abs(u0).max() > 1e-3
    rot = Rotation.random(random_state=9).as_matrix()
    u_rot = s.u(molecule @ rot.T, np.zeros((3, 3)))
    error = np.abs(u_rot - u0).max() / np.abs(u0).max()
    assert error < 1e-12  # exact up to round-off (was 4e-16 at Lebedev degree 29)
    u_shift = s.u(molecule + 5.0, np.zeros((3, 3)))
    np.testing.assert_allclose(u_shift, u0, rtol=0, atol=1e-12 * np.abs(u0).max())


def pair_loop(q, k, v, positions, knorm, weights, num_heads):
    """The open-boundary oracle for one graph: u_ih = sum_j phi_h(r_ij) (q_ih . k_jh) v_jh with
    phi_h(r) = sum_m w_mh sinc(|k_m| r), self term (r = 0, sinc = 1) included."""
    n, c = q.shape
    width = c // num_heads
    u = np.zeros((n, c))
    for i in range(n):
        for j in range(n):
            r = np.linalg.norm(positions[i] - positions[j])
            for h in range(num_heads):
                sl = slice(h * width, (h + 1) * width)
                phi = np.sum(weights[:, h] * np.sinc(knorm * r / np.pi))
                u[i, sl] += phi * np.dot(q[i, sl], k[j, sl]) * v[j, sl]
    return u


def test_open_boundary_attention_matches_a_pair_loop():
    """Two open graphs, a periodic one (not served: u = 0) and padding; two heads."""
    rng = np.random.default_rng(13)
    sizes = (5, 4, 3)
    structures = [
        (rng.uniform(-3, 3, (5, 3)), np.zeros((3, 3)), [False] * 3),
        (rng.uniform(0, 9, (4, 3)), np.eye(3) * 9.0, [True] * 3),
        (rng.uniform(-2, 2, (3, 3)), np.zeros((3, 3)), [False] * 3),
    ]
    graph = batch_graph(structures)
    n, num_heads, m = len(graph.node_mask), 2, 7
    q, k, v = rng.normal(size=(3, n, C))
    knorm = rng.uniform(0.1, 1.5, (4, m))
    weights = rng.uniform(0.1, 1.0, (4, m, num_heads))
    open_graph = np.array([True, False, True, False])
    u = open_boundary_attention(
        q, k, v, jnp.asarray(graph.positions), knorm, weights, graph.node_graph, open_graph,
        node_mask=graph.node_mask, num_heads=num_heads,
    )  # fmt: skip
    u = np.asarray(u)
    start = np.cumsum((0,) + sizes)
    for g in (0, 2):
        sl = slice(start[g], start[g + 1])
        expected = pair_loop(q[sl], k[sl], v[sl], structures[g][0], knorm[g], weights[g], num_heads)
        np.testing.assert_allclose(u[sl], expected, rtol=1e-12, atol=1e-12)
        assert np.abs(expected).max() > 1e-2
    assert np.all(u[start[1] : start[2]] == 0) and np.all(u[-1] == 0)
    # (G, M) weights are one kernel shared by every head
    shared = open_boundary_attention(
        q, k, v, jnp.asarray(graph.positions), knorm, weights[..., 0], graph.node_graph,
        open_graph, node_mask=graph.node_mask, num_heads=num_heads,
    )  # fmt: skip
    sl = slice(start[0], start[1])
    expected = pair_loop(
        q[sl], k[sl], v[sl], structures[0][0], knorm[0], np.repeat(weights[0, :, :1], 2, 1), 2
    )
    np.testing.assert_allclose(shared[sl], expected, rtol=1e-12, atol=1e-12)


def test_open_boundary_gradients_are_finite_at_coinciding_atoms():
    """Self pairs (r = 0) and two atoms on one site: finite forces equal to finite differences."""
    rng = np.random.default_rng(14)
    positions = rng.uniform(-2, 2, (4, 3))
    positions[3] = positions[1]  # two atoms at one site
    graph = batch_graph([(positions, np.zeros((3, 3)), [False] * 3)])
    q, k, v = rng.normal(size=(3, 5, C))
    knorm = rng.uniform(0.1, 1.5, (2, 6))
    weights = rng.uniform(0.1, 1.0, (2, 6))
    probe = rng.normal(size=(5, C))

    def energy(pos):
        full = jnp.concatenate([pos, jnp.zeros((1, 3))])
        u = open_boundary_attention(
            q, k, v, full, knorm, weights, graph.node_graph, np.array([True, False]),
            node_mask=graph.node_mask, num_heads=2,
        )  # fmt: skip
        return jnp.sum(u * probe)

    grad = np.asarray(jax.grad(energy)(jnp.asarray(positions)))
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 1e-3
    h = 1e-5
    for atom, axis in [(0, 0), (1, 1), (3, 2)]:
        step = np.zeros_like(positions)
        step[atom, axis] = h
        fd = (energy(positions + step) - energy(positions - step)) / (2 * h)
        np.testing.assert_allclose(grad[atom, axis], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("weighting", ["ewald", "ewald_learned"])
def test_mixed_batch_equals_separate_batches(weighting):
    """An RSA block on a batch of one periodic and one open graph gives each graph what it gets
    alone (the lattice sum for the first, the radial pair sum for the second)."""
    rng = np.random.default_rng(15)
    crystal = rng.uniform(0, 1, (6, 3)) @ TRICLINIC
    molecule = rng.uniform(-3, 3, (5, 3))
    block = RSABlock(C, num_heads=2, weighting=weighting, sigma=2.0)
    scalars = rng.normal(size=(12, C_IN))
    parts = [(crystal, TRICLINIC, [True] * 3), (molecule, np.zeros((3, 3)), [False] * 3)]
    mixed = batch_graph(parts)
    mixed_kset = build_kset(mixed, 1.0)
    assert mixed_kset.has_open and mixed_kset.periodic.tolist() == [True, False, False]

    def run(graph, kset, x):
        args = (x, jnp.asarray(graph.positions), jnp.asarray(graph.cell), kset)
        args += (graph.node_graph, graph.node_mask)
        params = random_params(block, *args, seed=3)
        return np.asarray(block.apply(params, *args))

    u = run(mixed, mixed_kset, scalars)
    alone_crystal = batch_graph(parts[:1])
    u_crystal = run(alone_crystal, build_kset(alone_crystal, 1.0), scalars[np.r_[0:6, 11]])
    alone_molecule = batch_graph(parts[1:])
    u_molecule = run(alone_molecule, build_kset(alone_molecule, 1.0), scalars[6:])
    assert np.abs(u_crystal).max() > 1e-3 and np.abs(u_molecule).max() > 1e-3
    np.testing.assert_allclose(u[:6], u_crystal[:6], rtol=0, atol=1e-12)
    np.testing.assert_allclose(u[6:11], u_molecule[:5], rtol=0, atol=1e-12)
    assert np.all(u[11] == 0)


def test_vmap_over_systems_equals_a_loop():
    systems = [Setup("learned", cell=TRICLINIC * f) for f in (1.0, 1.05, 0.97)]
    rng = np.random.default_rng(10)
    for s in systems:
        s.positions = rng.uniform(0, 1, s.positions.shape) @ s.cell
    s0 = systems[0]
    m_max = max(s.kset.num_k for s in systems)
    ksets = [build_kset(single_graph(s.positions, s.cell), s.k_cut, m_max=m_max) for s in systems]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *ksets)
    positions = jnp.stack([jnp.asarray(s.positions) for s in systems])
    cells = jnp.stack([jnp.asarray(s.cell) for s in systems])
    batched = jax.vmap(lambda p, c, k: s0.u(p, c, k))(positions, cells, stacked)
    for b, s in enumerate(systems):
        np.testing.assert_allclose(batched[b], s0.u(s.positions, s.cell, ksets[b]), atol=1e-12)


@pytest.mark.parametrize("k_cut", [4.0, 7.0])
def test_reproduces_the_reciprocal_part_of_an_ewald_sum(k_cut):
    """q = k = (charge, 0) (phi = identity, one complex channel), v = 1, Ewald weights."""
    rng = np.random.default_rng(11)
    lattice = TRICLINIC * 0.9
    frac = rng.uniform(0, 1, (8, 3))
    charges = np.array([1.0, -1.0] * 4)
    structure = Structure(Lattice(lattice), ["Na+", "Cl-"] * 4, frac)
    eta = 0.3  # pymatgen's exp(-G^2 / (4 eta)) is exp(-k^2 sigma^2 / 2) with sigma^2 = 1/(2 eta)
    ewald = EwaldSummation(structure, real_space_cut=10.0, recip_space_cut=8.0, eta=eta)
    graph = single_graph(frac @ lattice, lattice)
    kset = build_kset(graph, k_cut=k_cut, margin=0.0)
    kvectors, measure = kspace_geometry(kset, jnp.asarray(graph.cell))
    weights = fixed_kweights(kset, kvectors, measure, "ewald", sigma=np.sqrt(1 / (2 * eta)))
    qk = np.stack([np.append(charges, 0.0), np.zeros(9)], axis=1)
    args = (jnp.asarray(graph.positions), kvectors, weights, kset.mask, graph.node_graph, 2)
    u = reciprocal_space_attention(qk, qk, np.ones((9, 2)), *args, node_mask=graph.node_mask)
    energy = 0.5 * EwaldSummation.CONV_FACT * float(jnp.sum(u[:, 0]))
    reference = ewald.reciprocal_space_energy
    # truncation: the Gaussian where the envelope starts, exp(-k_on^2 / (4 eta)), k_on = 0.8 k_cut
    # (measured: 9.5e-6 at k_cut = 4, 1.7e-14 at k_cut = 7)
    truncation = np.exp(-((0.8 * k_cut) ** 2) / (4 * eta))
    assert abs(energy / reference - 1) < max(truncation, 1e-12)


def test_bad_input_raises_clear_errors():
    s = Setup("ones")
    open_graph = single_graph(s.positions, np.zeros((3, 3)), pbc=(False, False, False))
    open_kset = build_kset(open_graph, 1.0)
    with pytest.raises(ValueError, match="lattice-only"):
        s.u(s.positions, np.zeros((3, 3)), open_kset)
    with pytest.raises(ValueError, match="selects no reciprocal"):
        build_kset(single_graph(s.positions, np.eye(3) * 4.0), k_cut=0.5, margin=0.0)
    with pytest.raises(ValueError, match="weighting"):
        RSABlock(C, weighting="coulomb").init(jax.random.PRNGKey(0), *s.args(s.positions, s.cell))


def _largest_intermediate(jaxpr) -> int:
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()))))
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                largest = max(largest, _largest_intermediate(inner))
    return largest


def test_never_materialises_atoms_by_k_by_channel_pairs():
    s = Setup("ewald", num_heads=1, cell=np.eye(3) * 14.0, n_atoms=48, k_cut=1.2)
    jaxpr = jax.make_jaxpr(jax.grad(s.energy, argnums=(0, 1)))(s.positions, s.cell).jaxpr
    n, m = 49, s.kset.num_k
    forbidden = n * m * C * C // 2  # (atoms, k, C/2 complex, C)
    assert _largest_intermediate(jaxpr) < forbidden // 4


@pytest.mark.parametrize("kind", ["tp", "gate", "residual"])
def test_combinations_are_equivariant(kind):
    irreps = e3nn.Irreps("4x0e+3x1o+2x2e+2x0e")
    rng = np.random.default_rng(12)
    h = e3nn.IrrepsArray(irreps, rng.normal(size=(5, irreps.dim)))
    u = rng.normal(size=(5, C))
    module = make_combination(kind)
    params = random_params(module, h, u)
    apply = jax.jit(module.apply)
    rot = jnp.asarray(Rotation.random(random_state=1).as_matrix())
    out = apply(params, h, u)
    rotate = jax.jit(lambda x: x.transform_by_matrix(rot))
    out_rot = apply(params, rotate(h), u)
    assert out.irreps == irreps
    np.testing.assert_allclose(rotate(out).array, out_rot.array, atol=1e-12)
    scalars = np.r_[0:4, irreps.dim - 2 : irreps.dim]
    changed = np.abs(out.array - h.array) > 1e-12
    assert changed[:, scalars].any()
    if kind != "tp":  # gate and residual touch only the scalar channels
        assert not np.delete(changed, scalars, axis=1).any()
    else:  # the tensor product vanishes with u
        np.testing.assert_array_equal(apply(params, h, 0 * u).array, 0.0)


@pytest.mark.parametrize("weighting", ["ones", "ewald", "learned"])
def test_half_set_over_inversion_pairs_equals_the_full_set(weighting):
    """Periodic k-sets carry one slot per (n, -n) pair; the paired kernel must change nothing."""
    s = Setup(weighting, num_heads=2)
    assert s.kset.pair_index is not None
    assert s.kset.pair_index.shape == (2, (s.kset.num_k + 1) // 2)
    full = s.kset.replace(pair_index=None)
    u_half, u_full = s.u(s.positions, s.cell), s.u(s.positions, s.cell, full)
    assert np.abs(u_full).max() > 1e-3
    np.testing.assert_allclose(u_half, u_full, rtol=0, atol=1e-12 * np.abs(u_full).max())
    grad = jax.grad(s.energy, argnums=(0, 1))
    for a, b in zip(grad(s.positions, s.cell), grad(s.positions, s.cell, full), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


def test_inversion_pairs_padding_and_errors():
    n, mask = integer_kset(TRICLINIC, 1.0, m_max=41)
    index = inversion_pairs(n[None], mask[None])[0]
    real = int(mask.sum())
    assert index.shape == (21,) and real % 2 == 0
    reps = n[index[: real // 2]]
    assert not mask[index[real // 2 :]].any()  # unused entries point at padding
    both = {tuple(r) for r in reps} | {tuple(-r) for r in reps}
    assert both == {tuple(r) for r in n[mask]}
    with pytest.raises(ValueError, match="not closed under n -> -n"):
        inversion_pairs(np.array([[[1, 0, 0], [0, 1, 0]]]), np.ones((1, 2), bool))


@pytest.mark.parametrize("open_graph", [False, True])
def test_node_slots_give_the_masked_batch_result(open_graph):
    """Summing over each graph's own node slots (``KSet.node_slots``) is the same sum as masking
    every node of the batch against every graph: values and gradients (forces, stress), for a
    batch of periodic cells of different sizes (paired half set) and with two open graphs (the
    pair sum in per-graph blocks)."""
    rng = np.random.default_rng(21)
    parts = [
        (rng.uniform(0, 1, (n, 3)) @ (TRICLINIC * f), TRICLINIC * f, [True] * 3)
        for n, f in ((5, 1.0), (3, 0.8), (7, 1.1))
    ]
    if open_graph:
        parts.append((rng.uniform(-3, 3, (4, 3)), np.zeros((3, 3)), [False] * 3))
        parts.append((rng.uniform(-3, 3, (6, 3)), np.zeros((3, 3)), [False] * 3))
    graph = batch_graph(parts)
    block = RSABlock(C, num_heads=2, weighting="ewald_learned", sigma=2.0)
    scalars = rng.normal(size=(graph.num_nodes, C_IN))
    probe = rng.normal(size=(graph.num_nodes, C))
    dense, slotted = build_kset(graph, 1.0), build_kset(graph, 1.0, max_nodes=8)
    assert slotted.node_slots.shape == (len(parts) + 1, 8)
    assert (dense.pair_index is None) == open_graph
    args = (scalars, jnp.asarray(graph.positions), jnp.asarray(graph.cell), dense)
    params = random_params(block, *args, graph.node_graph, graph.node_mask, seed=4)

    def energy(positions, cell, kset):
        u = block.apply(params, scalars, positions, cell, kset, graph.node_graph, graph.node_mask)
        return jnp.sum(u * probe)

    at = (jnp.asarray(graph.positions), jnp.asarray(graph.cell))
    e_dense, g_dense = jax.value_and_grad(energy, argnums=(0, 1))(*at, dense)
    e_slot, g_slot = jax.value_and_grad(energy, argnums=(0, 1))(*at, slotted)
    assert abs(float(e_dense)) > 1e-3
    assert float(e_slot) == pytest.approx(float(e_dense), rel=1e-12)
    for a, b in zip(g_slot, g_dense, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="graph 2 has 7 atoms"):
        build_kset(graph, 1.0, max_nodes=6)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("layout", ["one structure", "node slots"])
def test_pair_kernel_equals_the_structure_factors(monkeypatch, paired, layout):
    """Small structures take the pair kernel ``K_st = sum_m w_m exp(i k . r_st)``
    (``kernel._pair_readout``) instead of the structure factors: same ``u``, same forces and
    stress, and the same parameter gradient of a force loss (what training differentiates), with
    the paired half set and the full set, for one structure and for a batch in node slots."""
    from rsajax.nn.rsa import kernel

    rng = np.random.default_rng(5)
    if layout == "one structure":
        parts = [(rng.uniform(0, 1, (6, 3)) @ TRICLINIC, TRICLINIC, [True] * 3)]
    else:
        parts = [
            (rng.uniform(0, 1, (n, 3)) @ (TRICLINIC * f), TRICLINIC * f, [True] * 3)
            for n, f in ((5, 1.0), (3, 0.8), (7, 1.1))
        ]
    graph = batch_graph(parts)
    kset = build_kset(graph, 1.0, max_nodes=None if layout == "one structure" else 8)
    if not paired:
        kset = kset.replace(pair_index=None)
    block = RSABlock(
        C, num_heads=2, weighting="ewald_learned", sigma=2.0, neutral=True,
        last_graph_is_padding=True,
    )  # fmt: skip
    scalars = rng.normal(size=(graph.num_nodes, C_IN))
    probe = rng.normal(size=(graph.num_nodes, C))
    at = (jnp.asarray(graph.positions), jnp.asarray(graph.cell))
    params = random_params(block, scalars, *at, kset, graph.node_graph, graph.node_mask, seed=2)

    def energy(params, positions, cell):
        u = block.apply(params, scalars, positions, cell, kset, graph.node_graph, graph.node_mask)
        return jnp.sum(u * probe)

    def force_loss(params):
        return jnp.sum(jax.grad(energy, argnums=1)(params, *at) ** 2)

    results = {}
    for ratio in (0.0, 1e9):  # never / always the pair kernel
        monkeypatch.setattr(kernel, "PAIR_KERNEL_MAX_RATIO", ratio)
        e, grads = jax.value_and_grad(energy, argnums=(1, 2))(params, *at)
        results[ratio] = (e, *grads, jax.grad(force_loss)(params))
    (e_sf, *rest_sf), (e_pair, *rest_pair) = results[0.0], results[1e9]
    assert abs(float(e_sf)) > 1e-3
    assert float(e_pair) == pytest.approx(float(e_sf), rel=1e-12)
    for a, b in zip(jax.tree.leaves(rest_pair), jax.tree.leaves(rest_sf), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * (np.abs(b).max() + 1e-30))
    monkeypatch.undo()  # the measured rule: molecules of ~10 atoms yes, 40 atoms no (F = 128)
    assert kernel.pair_kernel_is_cheaper(10, 128) and not kernel.pair_kernel_is_cheaper(40, 128)
