"""The jax-md adapter: same energy, forces and stress as rsajax.potential; edges = jax-md's
displacements; padding inert; box changes force a list rebuild; clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_md import space

from rsajax.data import atoms_to_graph
from rsajax.md.adapter import graph_from_neighbors, model_system, update_neighbors
from rsajax.potential import energy_fn_from_model, make_potential
from tests.md.conftest import triclinic_silica


def jax_md_labels(system, R, nbrs, box):
    """Energy, forces (-dE/dR) and stress ((1/V) dE/d eps, ASE sign) through jax-md's contract."""

    def energy(R, eps):
        return system.energy_fn(R, nbrs, box=box, perturbation=jnp.eye(3) + eps)

    e, (g_r, g_eps) = jax.jit(jax.value_and_grad(energy, argnums=(0, 1)))(R, jnp.zeros((3, 3)))
    return e, -g_r, g_eps / abs(np.linalg.det(box))


@pytest.mark.parametrize("cell_list", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_forces_and_stress_equal_rsajax_potential(tiny_model, cell_list):
    model, variables = tiny_model
    atoms = triclinic_silica(60, seed=3) if cell_list else triclinic_silica()
    if cell_list:  # the cell list needs an upper-triangular jax-md box and >= 4 cells per side
        atoms = triclinic_silica(200, seed=3)
    box = atoms.cell.array.T
    system = model_system(model, variables, atoms.numbers, box, cell_list=cell_list)
    R = jnp.asarray(atoms.get_scaled_positions())
    nbrs = system.allocate(R)
    assert (nbrs.cell_list_fn is not None) == cell_list
    e, forces, stress = jax_md_labels(system, R, nbrs, jnp.asarray(box))

    graph = atoms_to_graph(atoms, model.config.r_max)
    ref = make_potential(energy_fn_from_model(model))(variables, graph)
    n = len(atoms)
    np.testing.assert_allclose(e, ref["energy"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forces, ref["forces"][:n], atol=1e-11)
    np.testing.assert_allclose(stress, ref["stress"][0], atol=1e-12)
    assert np.abs(ref["forces"]).max() > 1e-3 and np.abs(ref["stress"]).max() > 1e-5


def test_edges_equal_jax_md_displacements_and_padding_is_inert(tiny_system):
    system, atoms, R = tiny_system
    box = jnp.asarray(system.box)
    perturbation = jnp.eye(3) + 0.01 * jnp.array([[1.0, 0.3, 0.0], [0.3, -0.5, 0.2], [0, 0.2, 0]])
    nbrs = system.allocate(R)
    B = perturbation @ box
    graph = graph_from_neighbors(jnp.asarray(atoms.numbers), R, nbrs.idx, B, 3.0)
    from rsajax.graph import edge_vectors

    vectors = edge_vectors(graph.positions, graph)
    displacement, _ = space.periodic_general(box, fractional_coordinates=True)
    listed = np.asarray(nbrs.idx[0] < len(atoms))
    i, j = np.asarray(nbrs.idx[0])[listed], np.asarray(nbrs.idx[1])[listed]
    expected = jax.vmap(lambda a, b: displacement(a, b, box=box, perturbation=perturbation))(
        R[i], R[j]
    )
    np.testing.assert_allclose(vectors[listed], expected, atol=1e-12)
    padded = ~listed
    assert padded.any(), "the list should hold padding slots"
    lengths = np.linalg.norm(np.asarray(vectors)[padded], axis=-1)
    assert np.all(lengths >= 999.0) and not np.asarray(graph.edge_mask)[padded].any()


@pytest.mark.slow
def test_more_padding_slots_change_nothing(tiny_system):
    system, _, R = tiny_system
    nbrs = system.allocate(R)
    bigger = system.allocate(R, extra_capacity=5)
    assert bigger.idx.shape[1] > nbrs.idx.shape[1]
    energy = jax.jit(system.energy_fn)
    np.testing.assert_allclose(energy(R, bigger), energy(R, nbrs), rtol=1e-13)


def test_box_strain_forces_a_rebuild(tiny_system):
    """A box change alone never makes jax-md rebuild; update_neighbors must."""
    system, _, R = tiny_system
    box = jnp.asarray(system.box)
    nbrs = system.allocate(R)
    small = 0.995 * box  # strain * list cutoff = 0.02 A < strain_skin: no rebuild needed
    same, ref = update_neighbors(system, R, nbrs, small, box)
    assert np.array_equal(ref, box) and np.array_equal(same.reference_position, R)
    shrunk = 0.93 * box  # 0.07 * 3.7 A > strain_skin 0.2 A
    rebuilt, ref = update_neighbors(system, R, nbrs, shrunk, box)
    np.testing.assert_allclose(ref, shrunk)
    fresh = system.allocate(R, box=shrunk, extra_capacity=5)
    count = int(jnp.sum(rebuilt.idx[0] < len(R)))
    assert count == int(jnp.sum(fresh.idx[0] < len(R))) > int(jnp.sum(nbrs.idx[0] < len(R)))


def test_errors_are_clear(tiny_model):
    model, variables = tiny_model
    atoms = triclinic_silica()
    with pytest.raises(ValueError, match="minimum image"):
        model_system(model, variables, atoms.numbers, atoms.cell.array.T * 0.8)
    numbers = atoms.numbers.copy()
    numbers[0] = 1
    with pytest.raises(ValueError, match=r"H \(Z=1\)"):
        model_system(model, variables, numbers, atoms.cell.array.T)
    system = model_system(model, variables, atoms.numbers, atoms.cell.array.T)
    assert "strained" not in (system.check_boxes(atoms.cell.array.T[None]) or "")
    assert "minimum image" in system.check_boxes(0.8 * atoms.cell.array.T[None])


def test_rsa_mace_in_jax_md_equals_rsajax_potential():
    """A long-range model: the k-set is built at allocation, the k-vectors follow the strained
    box, so jax-md's energy, forces and stress equal rsajax.potential's."""
    from rsajax.md.adapter import long_range_kset
    from rsajax.nn.model import init_model
    from rsajax.nn.rsa import RSAConfig, make_kset_fn
    from tests.md.conftest import tiny_config

    rsa = RSAConfig(
        k_cut=1.2, weighting="ewald", sigma=2.0, num_heads=1, combine="residual", channels=None
    )
    model, variables = init_model(tiny_config(long_range=rsa), seed=1)
    atoms = triclinic_silica()
    box = atoms.cell.array.T
    system = model_system(model, variables, atoms.numbers, box)
    R = jnp.asarray(atoms.get_scaled_positions())
    nbrs = system.allocate(R)
    e, forces, stress = jax_md_labels(system, R, nbrs, jnp.asarray(box))

    graph = atoms_to_graph(atoms, model.config.r_max, kset_fn=make_kset_fn(rsa, [atoms]))
    ref = make_potential(energy_fn_from_model(model))(variables, graph)
    n = len(atoms)
    np.testing.assert_allclose(e, ref["energy"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forces, ref["forces"][:n], atol=1e-11)
    np.testing.assert_allclose(stress, ref["stress"][0], atol=1e-12)
    kset = long_range_kset(model, atoms.numbers, box)
    assert int(np.asarray(kset.mask[0]).sum()) > 0

    # A box strained past what the k-set covers is reported, so the run reallocates.
    assert system.check_boxes(box[None]) is None
    reason = system.check_boxes((box * 1.3)[None])
    assert reason is not None and "RSA k-set" in reason


def test_a_fixed_box_leaves_out_the_k_sets_strain_margin_and_changes_nothing():
    """``strain_skin=0`` (NVT, NVE) drops the k-vectors kept for NPT strain: fewer of them, the
    same energy, forces and stress (the dropped shell has zero weight), and an expanded box, whose
    shorter k-vectors bring new ones below ``k_cut``, is refused."""
    from rsajax.md.adapter import long_range_kset
    from rsajax.nn.model import init_model
    from rsajax.nn.rsa import RSAConfig
    from tests.md.conftest import tiny_config

    rsa = RSAConfig(k_cut=1.2, sigma=2.0, num_heads=1, channels=None)
    model, variables = init_model(tiny_config(long_range=rsa), seed=1)
    atoms = triclinic_silica()
    box = atoms.cell.array.T
    sizes = [
        int(np.asarray(long_range_kset(model, atoms.numbers, box, box_may_strain=s).mask).sum())
        for s in (True, False)
    ]
    assert sizes[1] < sizes[0]
    R = jnp.asarray(atoms.get_scaled_positions())
    labels = []
    for strain_skin in (0.2, 0.0):
        system = model_system(model, variables, atoms.numbers, box, strain_skin=strain_skin)
        labels.append(jax_md_labels(system, R, system.allocate(R), jnp.asarray(box)))
    for roomy, tight in zip(*labels, strict=True):
        np.testing.assert_allclose(tight, roomy, rtol=1e-12, atol=1e-12)
    fixed = model_system(model, variables, atoms.numbers, box, strain_skin=0.0)
    assert fixed.check_boxes(box[None]) is None
    reason = fixed.check_boxes((box * 1.05)[None])
    assert reason is not None and "RSA k-set" in reason


def test_charged_cell_in_jax_md_equals_rsajax_potential():
    """A net charge (``info["charge"]``) reaches the MD graph: jax-md's energy and forces of a
    charged cell equal rsajax.potential's on the same Atoms, and differ from the neutral ones
    (the default RSA has ``net_charge`` on; its learned amplitude is randomised here)."""
    from rsajax.nn.model import init_model
    from rsajax.nn.rsa import RSAConfig, make_kset_fn
    from tests.md.conftest import tiny_config
    from tests.tiny_models import switch_on_long_range

    rsa = RSAConfig(k_cut=1.2, sigma=2.0, num_heads=1, channels=None)
    assert rsa.net_charge and rsa.neutral
    model, variables = init_model(tiny_config(long_range=rsa), seed=1)
    variables = switch_on_long_range(variables)
    atoms = triclinic_silica()
    atoms.info["charge"] = 2.0
    box = atoms.cell.array.T
    R = jnp.asarray(atoms.get_scaled_positions())
    energies = {}
    for charge in (0.0, 2.0):
        system = model_system(model, variables, atoms.numbers, box, total_charge=charge)
        energies[charge], forces, _ = jax_md_labels(system, R, system.allocate(R), jnp.asarray(box))

    graph = atoms_to_graph(atoms, model.config.r_max, kset_fn=make_kset_fn(rsa, [atoms]))
    ref = make_potential(energy_fn_from_model(model))(variables, graph)
    np.testing.assert_allclose(energies[2.0], ref["energy"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forces, ref["forces"][: len(atoms)], atol=1e-11)
    assert abs(energies[2.0] - energies[0.0]) > 1e-6
