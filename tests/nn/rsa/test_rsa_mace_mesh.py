"""RSA-MACE with ``evaluation="mesh"``: equal to the direct lattice sum to the mesh accuracy,
forces and stress equal finite differences, the grid is a static part of the k-set, clear errors,
and a float32 model stays float32 under x64."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.data import atoms_to_graph, random_silica_box
from rsajax.nn.model import MACEConfig, init_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn, with_evaluation
from rsajax.potential import energy_fn_from_model, make_potential
from tests.structures import molecule, stress_by_strain

#: Not tests/tiny_models.TINY: RSA needs an even channel count (complex pairs); that one has 3.
TINY = dict(
    r_max=3.0,
    num_bessel=4,
    max_ell=1,
    num_channels=4,
    max_L=1,
    correlation=1,
    radial_MLP=(16,),
    atomic_numbers=(8, 14),
    atomic_energies=(-1.0, -2.0),
    avg_num_neighbors=4.0,
    MLP_irreps="8x0e",
)
#: k_cut 1.5 1/A in the ~8 A box below: 2 shells per axis, a 10^3 grid at oversampling 2.
#: RSA as wide as the model (channels None), sigma 5 A as in the earlier defaults (unused by
#: the 'learned' weighting).
RSA = dict(
    k_cut=1.5, weighting="learned", num_heads=2, combine="residual", channels=None, sigma=5.0
)


def silica_box(seed: int = 1):
    """30 atoms of silica in a sheared (triclinic, all angles != 90 degrees) periodic box."""
    atoms = random_silica_box(30, density=1.8, seed=seed)
    shear = np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [0.1, -0.15, 1.05]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    return atoms


@functools.cache
def models(order: int = 6, neutral: bool = True):
    """(direct model, mesh model, shared variables, jitted potential of each): same parameters."""
    direct = MACEConfig(**TINY, long_range=RSAConfig(**RSA, neutral=neutral, evaluation="direct"))
    mesh = dataclasses.replace(
        direct, long_range=RSAConfig(**RSA, evaluation="mesh", mesh_order=order, neutral=neutral)
    )
    model_direct, variables = init_model(direct, seed=2)
    model_mesh = with_evaluation(model_direct, "mesh", mesh_order=order)
    assert model_mesh.config == mesh
    _, variables_mesh = init_model(mesh, seed=2)
    shapes = jax.tree_util.tree_map(np.shape, variables)
    assert shapes == jax.tree_util.tree_map(np.shape, variables_mesh)
    potentials = [make_potential(energy_fn_from_model(m)) for m in (model_direct, model_mesh)]
    return model_direct, model_mesh, variables, potentials


def evaluate(potential, variables, config, atoms):
    graph = atoms_to_graph(atoms, TINY["r_max"], kset_fn=make_kset_fn(config, [atoms]))
    out = jax.tree_util.tree_map(np.asarray, potential(variables, graph))
    n = len(atoms)
    return {"energy": out["energy"][0], "forces": out["forces"][:n], "stress": out["stress"][0]}


def short_range(variables, atoms):
    """The same model without its RSA parameters (SR-MACE): the scale of the RSA contribution."""
    model, _ = init_model(MACEConfig(**TINY), seed=2)
    params = {k: v for k, v in variables["params"].items() if not k.startswith("long_range_")}
    graph = atoms_to_graph(atoms, TINY["r_max"])
    out = make_potential(energy_fn_from_model(model))({**variables, "params": params}, graph)
    out = jax.tree_util.tree_map(np.asarray, out)
    n = len(atoms)
    return {"energy": out["energy"][0], "forces": out["forces"][:n], "stress": out["stress"][0]}


@pytest.mark.parametrize(
    "order, neutral, tolerance",
    [
        (6, False, 1e-4),
        (6, True, 3e-4),
        pytest.param(8, False, 1e-5, marks=pytest.mark.slow),
    ],
)
def test_mesh_equals_direct_to_the_mesh_accuracy(order, neutral, tolerance):
    """Order 6 / 8 at oversampling 2: the energy's RSA part, forces and stress agree with the
    direct lattice sum to ~1e-5 / ~1e-6 relative (tolerances 1e-4 / 1e-5). With neutral cells
    the net amplitude, most of this random model's RSA stress, is gone (7e-6 eV/A^3 left), so the
    same absolute mesh error is a larger fraction of it (measured 1.2e-4)."""
    model_direct, model_mesh, variables, (pot_direct, pot_mesh) = models(order, neutral)
    atoms = silica_box()
    ref = evaluate(pot_direct, variables, model_direct.config.long_range, atoms)
    out = evaluate(pot_mesh, variables, model_mesh.config.long_range, atoms)
    sr = short_range(variables, atoms)
    for key in ("energy", "forces", "stress"):
        rsa_part = np.max(np.abs(ref[key] - sr[key]))  # what the mesh must reproduce
        assert rsa_part > 1e-6, key  # far above round-off: the comparison is not vacuous
        error = np.max(np.abs(out[key] - ref[key]))
        assert error <= tolerance * rsa_part, (key, error / rsa_part)


def test_mesh_forces_and_stress_equal_finite_differences():
    _, model_mesh, variables, (_, potential) = models()
    config, atoms, h = model_mesh.config.long_range, silica_box(seed=4), 1e-4
    kset_fn = make_kset_fn(config, [atoms])

    def energy(a):
        graph = atoms_to_graph(a, TINY["r_max"], kset_fn=kset_fn)
        return float(np.asarray(potential(variables, graph)["energy"])[0])

    ref = evaluate(potential, variables, config, atoms)
    for i, k in [(0, 0), (7, 2), (19, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd = -(energy(plus) - energy(minus)) / (2 * h)
        assert abs(fd - ref["forces"][i, k]) <= 1e-6 * np.max(np.abs(ref["forces"])), (i, k)
    for i, j in [(0, 0), (1, 2), (2, 0)]:
        fd = stress_by_strain(energy, atoms, i, j, h)
        assert abs(fd - ref["stress"][i, j]) <= 1e-6 * np.max(np.abs(ref["stress"])), (i, j)


def test_the_grid_is_static_sized_with_a_margin_and_checked():
    _, model_mesh, _, _ = models()
    config, atoms = model_mesh.config.long_range, silica_box()
    kset_fn = make_kset_fn(config, [atoms])
    mesh = kset_fn.mesh
    graph = atoms_to_graph(atoms, TINY["r_max"], kset_fn=kset_fn)
    assert graph.kset.mesh == mesh and mesh.order == 6
    leaves, treedef = jax.tree_util.tree_flatten(graph.kset)
    assert mesh in jax.tree_util.treedef_children(treedef) or str(mesh.shape) in str(treedef)
    assert all(not isinstance(leaf, type(mesh)) for leaf in leaves)  # never traced
    # the margin (10%) keeps the grid valid under a 5% expansion, not under 50%
    assert mesh.covers(atoms.cell.array * 1.05, mesh.oversampling)
    big = atoms.copy()
    big.set_cell(atoms.cell.array * 1.5, scale_atoms=True)
    with pytest.raises(ValueError, match="does not resolve every"):
        atoms_to_graph(big, TINY["r_max"], kset_fn=kset_fn)


def test_clear_errors():
    model_direct, model_mesh, variables, (pot_direct, pot_mesh) = models()
    mesh_config = model_mesh.config.long_range
    with pytest.raises(ValueError, match=r"structures \[1\] are not fully periodic"):
        make_kset_fn(mesh_config, [silica_box(), molecule()])
    slab = silica_box()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="not fully periodic"):
        make_kset_fn(mesh_config, [slab])
    with pytest.raises(ValueError, match="selects no"):
        make_kset_fn(dataclasses.replace(mesh_config, k_cut=0.1), [silica_box()])
    with pytest.raises(ValueError, match="seed"):
        RSAConfig.preset("seed", evaluation="mesh")
    atoms = silica_box()
    direct_graph = atoms_to_graph(
        atoms, TINY["r_max"], kset_fn=make_kset_fn(model_direct.config.long_range, [atoms])
    )
    with pytest.raises(ValueError, match="evaluates RSA 'mesh' but graph.kset is a direct"):
        pot_mesh(variables, direct_graph)
    mesh_graph = atoms_to_graph(atoms, TINY["r_max"], kset_fn=make_kset_fn(mesh_config, [atoms]))
    with pytest.raises(ValueError, match="evaluates RSA 'direct' but graph.kset is a mesh"):
        pot_direct(variables, mesh_graph)


def test_float32_mesh_model_has_no_float64_arrays_under_x64():
    """The x64 test session must not promote a float32 model's RSA path to float64. Weakly typed
    0-d constants (e.g. e3nn's normalisations) are allowed: they never promote an array."""
    config = MACEConfig(**TINY, dtype="float32", long_range=RSAConfig(**RSA, evaluation="mesh"))
    model, variables = init_model(config, seed=0)
    atoms = silica_box()
    graph = atoms_to_graph(
        atoms, TINY["r_max"], dtype=np.float32, kset_fn=make_kset_fn(config.long_range, [atoms])
    )
    potential = make_potential(energy_fn_from_model(model))
    jaxpr = jax.make_jaxpr(potential)(variables, graph)
    wide = set()

    def is_wide(aval) -> bool:
        weak_scalar = aval.shape == () and getattr(aval, "weak_type", False)
        return aval.dtype in (jnp.float64, jnp.complex128) and not weak_scalar

    def visit(jaxpr):
        for var in [*jaxpr.invars, *jaxpr.constvars]:
            if is_wide(var.aval):
                wide.add(f"input {var.aval}")
        for eqn in jaxpr.eqns:
            for var in eqn.outvars:
                if is_wide(var.aval):
                    wide.add(f"{eqn.primitive.name}: {var.aval}")
            for sub in jax.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jaxpr.jaxpr)
    assert not wide, sorted(wide)[:20]


def test_auto_evaluation_chooses_by_cost_and_runs_the_chosen_kernel(monkeypatch):
    """``evaluation="auto"`` (the default): the k-set builder picks the kernel by the measured
    cost model, the model runs whichever the k-set carries, and open boundaries stay direct."""
    from rsajax.nn.rsa import kset_fn as kset_fn_module
    from rsajax.nn.rsa.kset_fn import choose_evaluation

    model_direct, model_mesh, variables, (direct, mesh) = models()
    auto = dataclasses.replace(model_direct.config.long_range, evaluation="auto")
    assert RSAConfig().evaluation == "auto"
    model_auto, _ = init_model(dataclasses.replace(model_direct.config, long_range=auto), seed=2)
    potential = make_potential(energy_fn_from_model(model_auto))
    atoms = silica_box()

    # the cost model, with the library's default split (k_cut 3.06 1/A): a 648-atom silica box
    # is direct, a 100000-atom one (M ~ 6e5 vectors) on the mesh, open boundaries direct
    default = RSAConfig().resolved(5.0)
    periodic = np.ones((1, 3), bool)
    box648 = random_silica_box(648).cell.array[None]
    assert choose_evaluation(default, box648, periodic, 648) == "direct"
    big = 100.0 * np.eye(3)[None]
    assert choose_evaluation(default, big, periodic, 100_000) == "mesh"
    assert choose_evaluation(default, big, ~periodic, 100_000) == "direct"
    # the memory bound: past DIRECT_MAX_WORK the mesh, even where the cost model prefers direct
    bound = kset_fn_module.DIRECT_MAX_WORK
    monkeypatch.setattr(kset_fn_module, "MESH_WORK_COST", np.inf)
    assert choose_evaluation(default, box648, periodic, 648) == "direct"  # 1.5e6 pairs
    monkeypatch.setattr(kset_fn_module, "DIRECT_MAX_WORK", 1e6)
    assert choose_evaluation(default, box648, periodic, 648) == "mesh"
    monkeypatch.setattr(kset_fn_module, "DIRECT_MAX_WORK", bound)

    # whichever kernel is chosen, the auto model equals the model that names it
    for cost, named, kernel in [(0.0, mesh, "mesh"), (np.inf, direct, "direct")]:
        monkeypatch.setattr(kset_fn_module, "MESH_WORK_COST", cost)
        assert make_kset_fn(auto, [atoms]).evaluation == kernel
        got = evaluate(potential, variables, auto, atoms)
        config = model_mesh.config if kernel == "mesh" else model_direct.config
        want = evaluate(named, variables, dataclasses.replace(config.long_range), atoms)
        for key in ("energy", "forces", "stress"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-12)
    mol = molecule()
    monkeypatch.setattr(kset_fn_module, "MESH_WORK_COST", 0.0)
    assert make_kset_fn(auto, [mol]).evaluation == "direct"
