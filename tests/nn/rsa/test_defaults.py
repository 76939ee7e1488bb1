"""The physics-derived RSA defaults: the Ewald split tied to r_max, the open-boundary radial
kernel against 1/r, a default model that starts as its short-range part yet trains its long-range
branch from the first step, the additive long-range energy, open vs periodic boundaries, the
data-sized radial rule, a dataset's k-set without the strain margin, and old configuration
files."""

from __future__ import annotations

import dataclasses
import functools
import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from ase import Atoms
from scipy.spatial.transform import Rotation

from rsajax.data import atoms_to_graph
from rsajax.lattice import reciprocal_vectors
from rsajax.nn.model import MACE, MACEConfig, init_model, load_model, save_model
from rsajax.nn.rsa import (
    COULOMB_CONSTANT,
    DEFAULT_ACCURACY,
    RSABlock,
    RSAConfig,
    ewald_split,
    make_kset_fn,
)
from rsajax.nn.rsa.kset import build_kset, open_quadrature, radial_nodes_for, structure_diameter
from rsajax.nn.rsa.weights import ewald_kernel, smooth_envelope
from rsajax.potential import energy_fn_from_model, make_potential
from tests.nn.rsa.node_graphs import single_graph
from tests.structures import molecule, triclinic

R_MAX = 5.0
SIGMA, K_CUT = 1.5195, 3.0577  # ewald_split(5 A) at 1e-3
#: A tiny two-layer model with the local cutoff of the numbers above.
BASE = dict(
    r_max=R_MAX,
    num_bessel=4,
    num_polynomial_cutoff=5,
    max_ell=1,
    num_channels=4,
    max_L=1,
    correlation=2,
    num_interactions=2,
    MLP_irreps="4x0e",
    radial_MLP=(8,),
    avg_num_neighbors=8.0,
    atomic_numbers=(8, 14),
    atomic_energies=(-3.0, -5.0),
    scale=1.5,
    shift=0.1,
)


def radial_kernel(r: np.ndarray, sigma: float, k_cut: float, num_radial: int) -> np.ndarray:
    """phi(r) = sum_m W_m sinc(k_m r): the open-boundary Ewald kernel (measure, envelope)."""
    nodes, weights = open_quadrature(k_cut, envelope_width=0.2, num_radial=num_radial)
    k = nodes[:, 0]
    w = weights * np.asarray(ewald_kernel(k**2, sigma) * smooth_envelope(k, k_cut, 0.2))
    return np.sinc(np.outer(r, k) / np.pi) @ w


# --------------------------------------------------------------------------- 1. the split


def test_ewald_split_and_the_default_kernel_is_coulomb_beyond_r_max():
    """sigma makes erfc(r_max / (sqrt2 sigma)) = 1e-3, k_cut puts exp(-k^2 sigma^2 / 2) = 1e-3
    where the envelope starts; the reciprocal kernel is then 1/r beyond the local cutoff.
    Measured (r <= 40 A): 1.005e-3 relative at 5 A, 6.3e-6 beyond 7 A."""
    sigma, k_cut = ewald_split(R_MAX)
    assert sigma == pytest.approx(SIGMA, abs=1e-4) and k_cut == pytest.approx(K_CUT, abs=1e-4)
    assert scipy.special.erfc(R_MAX / (np.sqrt(2) * sigma)) == pytest.approx(DEFAULT_ACCURACY)
    k_on = 0.8 * k_cut
    assert np.exp(-0.5 * (k_on * sigma) ** 2) == pytest.approx(DEFAULT_ACCURACY)
    resolved = RSAConfig().resolved(R_MAX)
    assert (resolved.sigma, resolved.k_cut) == (sigma, k_cut)
    r = np.linspace(R_MAX, 40.0, 3501)
    phi = radial_kernel(r, sigma, k_cut, radial_nodes_for(k_cut, 40.0))
    relative = np.abs(phi * r - 1.0)
    assert relative.max() <= 1.1e-3
    assert relative[r >= 7.0].max() <= 1e-5
    # a tighter accuracy moves sigma down and k_cut up
    tight_sigma, tight_k_cut = ewald_split(R_MAX, accuracy=1e-5)
    assert tight_sigma < sigma and tight_k_cut > k_cut


# --------------------------------------------------------------------------- 2. the default model


@functools.cache
def default_model(combine: str = "energy"):
    """(config, model, variables) of the default RSA-MACE (``combine`` overridden)."""
    long_range = "default" if combine == "energy" else RSAConfig.preset("default", combine=combine)
    config = MACEConfig(**BASE, long_range=long_range)
    model, variables = init_model(config, seed=3)
    return config, model, variables


@functools.cache
def batch(combine: str = "energy"):
    """A periodic cell and an open molecule in one batch, with the model's k-set."""
    config = default_model(combine)[0]
    structures = [triclinic(), molecule()]
    return atoms_to_graph(structures, R_MAX, kset_fn=make_kset_fn(config.long_range, structures))


@functools.cache
def evaluators(combine: str = "energy"):
    """Jitted (energy_parts, energy with every RSA output off) of the default model."""
    config, model, _ = default_model(combine)
    parts = jax.jit(functools.partial(model.apply, method=MACE.energy_parts))
    off = jax.jit(MACE(config, long_range_off=True).apply)
    return parts, off


def test_default_model_is_resolved_and_round_trips(tmp_path):
    config, _, variables = default_model()
    lr = config.long_range
    assert lr.is_resolved and (lr.sigma, lr.k_cut) == ewald_split(R_MAX)
    assert lr.sigma == pytest.approx(SIGMA, abs=1e-4) and lr.k_cut == pytest.approx(K_CUT, abs=1e-4)
    assert (lr.weighting, lr.combine, lr.num_heads, lr.channels) == (
        "ewald_learned",
        "energy",
        2,
        16,
    )
    assert not RSAConfig().is_resolved  # a bare config waits for the model's r_max
    directory = save_model(tmp_path / "default", config, variables)
    stored = json.loads((directory / "config.json").read_text())["config"]["long_range"]
    assert stored["sigma"] == lr.sigma and stored["k_cut"] == lr.k_cut  # numbers, not None
    loaded, loaded_variables = load_model(directory)
    assert loaded.config == config and loaded.config.long_range == lr
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded_variables, variables)


def test_default_model_starts_short_range_but_its_long_range_branch_has_a_gradient():
    config, model, variables = default_model()
    graph = batch()
    parts, off = evaluators()
    energy, long_range = jax.tree_util.tree_map(np.asarray, parts(variables, graph))
    assert np.all(long_range == 0.0)
    np.testing.assert_array_equal(energy, np.asarray(off(variables, graph)))
    assert np.all(np.isfinite(energy[:2]))

    grads = jax.jit(jax.grad(lambda v: jnp.sum(model.apply(v, graph))))(variables)["params"]
    for t in range(config.num_interactions):
        layer = grads[f"long_range_{t}"]
        assert np.abs(layer["energy_readout"]["kernel"]).max() > 1e-6, t
        # p = 0 at the start: the RSA parameters get their gradient once p has moved
        for leaf in jax.tree_util.tree_leaves(layer["rsa"]):
            assert np.all(np.asarray(leaf) == 0.0)


# --------------------------------------------------------------------------- 3. energy_parts


def perturbed_readout(variables: dict, seed: int = 0, scale: float = 0.05) -> dict:
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(np.array, variables["params"])
    for name, layer in params.items():
        if name.startswith("long_range_") and "energy_readout" in layer:
            kernel = layer["energy_readout"]["kernel"]
            layer["energy_readout"]["kernel"] = scale * rng.normal(size=kernel.shape)
    return {**variables, "params": params}


def test_energy_parts_is_additive_for_the_energy_combination():
    _, _, variables = default_model()
    variables = perturbed_readout(variables)
    graph = batch()
    parts, off = evaluators()
    energy, long_range = (np.asarray(x)[:2] for x in parts(variables, graph))
    short_range = np.asarray(off(variables, graph))[:2]
    assert np.all(np.abs(long_range) > 1e-6), long_range
    np.testing.assert_allclose(energy - long_range, short_range, rtol=1e-12, atol=1e-12)
    assert np.asarray(parts(variables, graph)[1])[2] == 0.0  # the padding graph


def test_energy_parts_of_a_feature_combination_is_the_energy_minus_the_rsa_off_energy():
    config, _, variables = default_model("residual")
    assert config.long_range.combine == "residual"
    graph = batch("residual")
    parts, off = evaluators("residual")
    energy, long_range = (np.asarray(x)[:2] for x in parts(variables, graph))
    short_range = np.asarray(off(variables, graph))[:2]
    assert np.all(np.abs(long_range) > 1e-6), long_range
    np.testing.assert_allclose(long_range, energy - short_range, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- 4. open vs periodic


def test_open_and_large_periodic_box_agree_for_a_neutral_pair_of_molecules():
    """Two neutral water-like molecules (charges -0.8, 0.4, 0.4), an Ewald-only RSA block set up
    so that ``u_i = c sum_j phi(r_ij) Q_j`` (q = k = const, v = Q) and the ``energy`` read-out
    ``k_e sum_i p_i u_i`` with ``p_i = Q_i / (2 c)``: the Coulomb energy of the smeared charges.

    The open radial kernel gives it to the split's accuracy; a periodic 40 A cube adds the
    images, and for a neutral cell with dipole M the tin-foil lattice sum differs from the open
    sum by the surface (dipole) term -2 pi k_e M^2 / (3 V). Measured (accuracy 1e-2: sigma
    1.94 A, k_cut 1.95 1/A; M = 0.53 e A): E_open = 0.11481 eV, 0.99% from the erf pair sum;
    E_box - E_open = -1.345e-4 eV (1.2e-3 relative), the dipole term -1.326e-4 eV (1.5% off)."""
    lr = RSAConfig(weighting="ewald", combine="energy", accuracy=1e-2).resolved(R_MAX)
    water = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    turned = water @ Rotation.random(random_state=1).as_matrix().T + np.array([5.0, 2.0, -1.0])
    positions = np.concatenate([water, turned])
    charges = np.array([-0.8, 0.4, 0.4] * 2)
    block = RSABlock(2, num_heads=1, weighting="ewald", sigma=lr.sigma)
    qkv = np.zeros((2, 6))
    qkv[0, 0] = qkv[0, 2] = 1.0  # q, k: SiLU of the constant channel (real part only)
    qkv[1, 4] = 1.0  # v: the charge channel
    # e3nn's Linear divides by sqrt(fan_in): sqrt(2) I maps the input scalars unchanged
    params = {"params": {"W_lin": {"w[0,0] 2x0e,2x0e": np.sqrt(2) * np.eye(2)}, "W_qkv": {}}}
    params["params"]["W_qkv"]["kernel"] = qkv
    c = float(jax.nn.silu(1.0)) ** 2 / np.sqrt(2)  # q . k, with q's 1 / sqrt(C)
    scalars = np.c_[np.ones(7), np.append(charges, 0.0)]

    def energy(pos, cell, pbc):
        graph = single_graph(pos, cell, pbc)
        kset = build_kset(graph, lr.k_cut, margin=0.0, envelope_width=lr.envelope_width)
        args = (jnp.asarray(graph.positions), jnp.asarray(graph.cell), kset, graph.node_graph)
        u = np.asarray(block.apply(params, scalars, *args, graph.node_mask))
        assert np.all(u[:, 1] == 0) and np.all(u[-1] == 0)
        p = np.append(charges, 0.0) / (2 * c)
        return COULOMB_CONSTANT * float(np.sum(p * u[:, 0]))

    e_open = energy(positions, np.zeros((3, 3)), [False] * 3)
    r = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    safe = np.where(r > 0, r, 1.0)
    phi = np.where(r > 0, scipy.special.erf(r / (np.sqrt(2) * lr.sigma)) / safe, 0.0)
    phi[r == 0] = np.sqrt(2 / np.pi) / lr.sigma
    e_exact = 0.5 * COULOMB_CONSTANT * charges @ phi @ charges
    assert abs(e_open - e_exact) < 1.2e-2 * abs(e_exact)

    length = 40.0
    e_box = energy(positions + length / 2, np.eye(3) * length, [True] * 3)
    dipole = charges @ positions
    surface = 2 * np.pi * COULOMB_CONSTANT * (dipole @ dipole) / (3 * length**3)
    assert abs(e_box - e_open) < 2e-3 * abs(e_open)
    assert abs((e_box - e_open) + surface) < 0.05 * surface


# --------------------------------------------------------------------------- 5. radial nodes


def cluster(scale: float = 1.0) -> Atoms:
    rng = np.random.default_rng(5)
    return Atoms("Si4O8", positions=rng.uniform(-3.0, 3.0, (12, 3)) * scale, pbc=False)


def test_make_kset_fn_sizes_the_radial_rule_from_the_largest_open_structure():
    lr = RSAConfig().resolved(R_MAX)
    structures = [triclinic(), molecule(), cluster()]
    kset_fn = make_kset_fn(lr, structures)
    largest = max(structure_diameter(a.positions) for a in structures[1:])
    assert largest == structure_diameter(cluster().positions)
    assert kset_fn.num_radial == radial_nodes_for(lr.k_cut, largest)  # fixed structures
    with_room = make_kset_fn(lr, structures, margin=lr.margin)  # MD's head room
    assert with_room.num_radial == radial_nodes_for(lr.k_cut, largest * (1 + lr.margin))
    assert kset_fn.num_radial > radial_nodes_for(lr.k_cut, 0.0)  # the cluster, not the floor
    assert kset_fn.m_max >= kset_fn.num_radial
    graph = atoms_to_graph(structures, R_MAX, kset_fn=kset_fn)
    assert graph.kset.mask[1].sum() == graph.kset.mask[2].sum() == kset_fn.num_radial
    # the structure's extent, not its orientation, sizes the rule
    turned = cluster()
    turned.positions = turned.positions @ Rotation.random(random_state=2).as_matrix().T
    turned_graph = atoms_to_graph([turned], R_MAX, kset_fn=kset_fn)
    assert turned_graph.kset.mask[0].sum() == kset_fn.num_radial
    # an explicit num_radial is used as given
    assert make_kset_fn(dataclasses.replace(lr, num_radial=96), structures).num_radial == 96


def test_the_radial_rule_is_sized_by_the_rotation_invariant_diameter():
    """A flat 4 x 4 grid (2 A spacing) sized axis-aligned and then turned by 45 degrees in its
    plane: the largest distance stays 8.49 A (its bounding box's diagonal would grow to 12 A, and
    the k-set sized for the grid would refuse the same grid turned)."""
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), -1).reshape(-1, 2)
    flat = Atoms("O16", positions=np.c_[2.0 * grid, np.zeros(16)], pbc=False)
    turned = flat.copy()
    turned.rotate(45, "z", center="COM")
    pairs = np.linalg.norm(flat.positions[:, None] - flat.positions[None], axis=-1)
    assert structure_diameter(flat.positions) == pytest.approx(pairs.max(), rel=1e-14)
    assert structure_diameter(turned.positions) == pytest.approx(6 * np.sqrt(2), rel=1e-12)
    assert structure_diameter(flat.positions[:1]) == 0.0
    assert structure_diameter(flat.positions, block=3) == structure_diameter(flat.positions)
    kset_fn = make_kset_fn(RSAConfig().resolved(R_MAX), [flat])
    graph = atoms_to_graph(turned, R_MAX, kset_fn=kset_fn)
    assert graph.kset.mask[0].sum() == kset_fn.num_radial


def test_make_kset_fn_reads_only_the_cells_of_periodic_host_views():
    """A host view with cells and pbc but no positions is enough to size a periodic k-set."""
    view = SimpleNamespace(
        cell=np.stack([triclinic().cell.array, np.eye(3) * 1000.0]),
        pbc=np.array([[True] * 3, [False] * 3]),
        graph_mask=np.array([True, False]),
        n_node=np.array([5, 1]),
    )
    kset = make_kset_fn(RSAConfig().resolved(R_MAX), [view])(view)
    assert kset.mask[0].sum() > 0 and not kset.mask[1].any() and not kset.has_open


def test_build_kset_refuses_an_open_structure_too_large_for_its_radial_rule():
    lr = RSAConfig().resolved(R_MAX)
    kset_fn = make_kset_fn(lr, [triclinic(), cluster()])
    bigger = cluster(scale=2.0)
    need = radial_nodes_for(lr.k_cut, structure_diameter(bigger.positions))
    assert need > kset_fn.num_radial
    message = (
        rf"graph 1: open-boundary structure .* A across needs {need} radial k nodes .* "
        rf"num_radial={kset_fn.num_radial}; size it from every structure"
    )
    with pytest.raises(ValueError, match=message):
        atoms_to_graph([triclinic(), bigger], R_MAX, kset_fn=kset_fn)
    need = radial_nodes_for(lr.k_cut, structure_diameter(molecule().positions))
    with pytest.raises(ValueError, match=f"graph 0: .* needs {need} radial k nodes"):
        build_kset(atoms_to_graph(molecule(), R_MAX), lr.k_cut, num_radial=need - 1)


# --------------------------------------------------------------------------- 6. old files


def test_from_dict_accepts_an_old_dict_with_lebedev_degree():
    old = {  # RSAConfig().to_dict() before the radial kernel (the then default preset)
        "k_cut": 0.8,
        "margin": 0.1,
        "weighting": "ewald",
        "sigma": 5.0,
        "num_heads": 1,
        "channels": None,
        "combine": "residual",
        "envelope_width": 0.2,
        "seed": False,
        "layers": None,
        "evaluation": "direct",
        "num_radial": 16,
        "lebedev_degree": 29,
        "mesh_order": 6,
        "mesh_oversampling": 2.0,
    }
    config = RSAConfig.from_dict(old)
    # a bare dict gets the current ``neutral``; load_model fills in False for files saved before
    # it existed (tests/nn/rsa/test_neutral.py)
    assert config == RSAConfig.preset(
        "default-v0", num_radial=16, neutral=True, evaluation="direct"
    )
    assert "lebedev_degree" not in config.to_dict()
    assert RSAConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown RSAConfig fields"):
        RSAConfig.from_dict({**old, "lebedev_order": 29})
    # a saved model's config dict with the old field loads too
    model_config = MACEConfig.from_dict({**MACEConfig(**BASE).to_dict(), "long_range": old})
    assert model_config.long_range == config


def test_a_datasets_k_set_leaves_out_the_strain_margin_and_changes_nothing():
    """Fixed cells need no vectors beyond k_cut (their weight is 0): the dataset's k-set is
    smaller than MD's (which keeps ``config.margin`` for NPT) and gives the same energy,
    forces and stress."""
    config, model, variables = default_model()
    variables = perturbed_readout(variables)
    lr, atoms = config.long_range, triclinic()
    tight = make_kset_fn(lr, [atoms])
    roomy = make_kset_fn(lr, [atoms], margin=lr.margin)
    assert tight.m_max < roomy.m_max
    graphs = [atoms_to_graph([atoms], R_MAX, kset_fn=fn) for fn in (tight, roomy)]
    n = np.asarray(graphs[0].kset.n[0])[np.asarray(graphs[0].kset.mask[0])]
    lengths = np.linalg.norm(n @ reciprocal_vectors(np.asarray(atoms.cell)), axis=1)
    assert lengths.max() <= lr.k_cut
    potential = jax.jit(make_potential(energy_fn_from_model(model)))
    out = [jax.tree_util.tree_map(np.asarray, potential(variables, g)) for g in graphs]
    assert abs(out[0]["energy"][0] - np.asarray(evaluators()[1](variables, graphs[0]))[0]) > 1e-6
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(out[0][key], out[1][key], rtol=1e-12, atol=1e-12, err_msg=key)
