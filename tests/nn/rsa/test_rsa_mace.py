"""RSA-MACE: the invariance battery on long-range variants, k-shell continuity, open boundaries,
seed mode, SR/LR sharing, configuration round trip and clear errors."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from ase import Atoms

import tests.model_battery as battery
from rsajax.data import atoms_to_graph, atoms_to_record
from rsajax.nn.model import MACE, MACEConfig, init_model, load_model, save_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn
from rsajax.nn.rsa.kset import build_kset, integer_kset, kset_covers, seed_kset
from rsajax.potential import energy_fn_from_model, make_potential
from tests.model_battery import ModelBattery, ModelUnderTest, random_rotation
from tests.structures import molecule, rattled_crystal, triclinic

R_MAX = 4.0
K_CUT = 2.5  # 1/A: the battery's ~4 A cells need it to hold a few shells
#: Two layers, tiny channels.
BASE = dict(
    r_max=R_MAX,
    num_bessel=6,
    num_polynomial_cutoff=5,
    max_ell=2,
    num_channels=4,
    max_L=1,
    correlation=2,
    num_interactions=2,
    MLP_irreps="4x0e",
    radial_MLP=(8, 8),
    avg_num_neighbors=6.0,
    atomic_numbers=(8, 14),
    atomic_energies=(-3.0, -5.0),
    scale=1.5,
    shift=0.1,
)
VARIANTS = {
    "tp-ewald": dict(combine="tp", weighting="ewald", sigma=1.0),
    "gate-learned-2heads": dict(combine="gate", weighting="learned", num_heads=2),
    "residual-ewald": dict(combine="residual", weighting="ewald", sigma=1.0),
}


def rsa_config(**kwargs) -> RSAConfig:
    """The variants on the earlier defaults (``default-v0``: one head, RSA as wide as the model,
    ``residual``, Ewald sigma 5 A), k_cut 2.5 1/A; radial k nodes sized from the data."""
    return RSAConfig.preset("default-v0", **{"k_cut": K_CUT, **kwargs})


@functools.cache
def variant(name: str):
    """(config, model, variables, jitted potential) of one long-range variant."""
    config = MACEConfig(**BASE, long_range=rsa_config(**VARIANTS[name]))
    model, variables = init_model(config, seed=1)
    return config, model, variables, make_potential(energy_fn_from_model(model))


@functools.cache
def battery_kset_fn(name: str):
    """One static k cap for every structure the battery builds (supercell and molecule included)."""
    structures = [triclinic(), rattled_crystal() * (2, 1, 1), molecule()]
    return make_kset_fn(variant(name)[0].long_range, structures)


class RSABattery(ModelBattery):
    """The shared battery, with graphs that carry the variant's k-set and one compiled potential."""

    name = ""

    def make_model(self) -> ModelUnderTest:
        _, model, variables, _ = variant(self.name)
        return ModelUnderTest(energy_fn_from_model(model), variables, R_MAX)

    @pytest.fixture(autouse=True)
    def _graphs_with_kset(self, monkeypatch):
        with_kset = functools.partial(atoms_to_graph, kset_fn=battery_kset_fn(self.name))
        monkeypatch.setattr(battery, "atoms_to_graph", with_kset)

    @pytest.fixture
    def potential(self, model):
        return variant(self.name)[3]


# One battery run by default (gate, learned weights, two heads); the other combinations are slow
# (each battery costs ~4 min of compilation on two busy cores).
@pytest.mark.slow
class TestTensorProductEwald(RSABattery):
    name = "tp-ewald"


class TestGateLearnedTwoHeads(RSABattery):
    name = "gate-learned-2heads"


@pytest.mark.slow
class TestResidualEwald(RSABattery):
    name = "residual-ewald"


# --------------------------------------------------------------------------- SR and LR share


def short_range_variables(variables: dict) -> dict:
    params = {k: v for k, v in variables["params"].items() if not k.startswith("long_range_")}
    return {**variables, "params": params}


SLOW_VARIANTS = [pytest.param(n, marks=pytest.mark.slow) for n in ("tp-ewald", "residual-ewald")]


@pytest.mark.parametrize("name", ["gate-learned-2heads", *SLOW_VARIANTS])
def test_long_range_part_changes_the_energy(name):
    config, model, variables, potential = variant(name)
    structures = [triclinic(), molecule()]
    graph = atoms_to_graph(structures, R_MAX, caps=battery.CAPS, kset_fn=battery_kset_fn(name))
    sr_model, _ = MACE_SR()
    long_range = np.asarray(potential(variables, graph)["energy"])[:2]
    short_range = np.asarray(jax.jit(sr_model.apply)(short_range_variables(variables), graph))[:2]
    assert np.all(np.abs(long_range - short_range) > 1e-4), (long_range, short_range)


@functools.cache
def MACE_SR():  # noqa: N802 (a cached constructor)
    return init_model(MACEConfig(**BASE), seed=1)


@pytest.mark.parametrize("name", ["gate-learned-2heads", "residual-ewald"])
def test_zeroed_rsa_output_reduces_to_short_range(name):
    """v = 0 gives u = 0; the gate fully open (g = 1) then leaves h_sr untouched, exactly."""
    config, model, variables, potential = variant(name)
    channels = config.num_channels
    params = jax.tree_util.tree_map(np.array, variables["params"])
    for t in range(config.num_interactions):
        layer = params[f"long_range_{t}"]
        layer["rsa"]["W_qkv"]["kernel"][:, 2 * channels :] = 0.0
        if "alpha" in layer["combine"]:
            layer["combine"]["alpha"] = np.array(40.0, layer["combine"]["alpha"].dtype)
    zeroed = {**variables, "params": params}
    graph = atoms_to_graph(
        [triclinic(), molecule()], R_MAX, caps=battery.CAPS, kset_fn=battery_kset_fn(name)
    )
    sr_model, _ = MACE_SR()
    long_range = potential(zeroed, graph)
    short_range = make_potential(energy_fn_from_model(sr_model))(
        short_range_variables(variables), graph
    )
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(long_range[key], short_range[key], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- k-shell crossing


def test_energy_and_stress_continuous_through_k_shell_crossing():
    """Strain a triclinic cell so a k-shell crosses k_cut; a freshly chosen set at every strain
    (margin 0, so the set really changes) gives the same energy and stress as one fixed superset,
    because vectors reach zero weight smoothly at k_cut; the energy path has no jump."""
    name = "gate-learned-2heads"
    config, model, variables, potential = variant(name)
    atoms = triclinic()
    recip = 2 * np.pi * np.linalg.inv(atoms.cell.array).T
    n, _ = integer_kset(atoms.cell.array, K_CUT, margin=0.0)
    k_cut = float(np.max(np.linalg.norm(n @ recip, axis=1)))  # the outermost shell sits on k_cut
    lr = config.long_range
    scales = 1.0 + np.linspace(-0.02, 0.02, 9)
    path = []
    for s in scales:
        a = atoms.copy()
        a.set_cell(atoms.cell.array * s, scale_atoms=True)
        path.append(a)
    fixed = build_kset(
        atoms_to_graph(path[0], R_MAX, caps=battery.CAPS),
        k_cut,
        margin=0.1,
        m_max=battery_kset_fn(name).m_max,
        envelope_width=lr.envelope_width,
    )
    counts, fresh_out, fixed_out = [], [], []
    for a in path:
        assert kset_covers(a.cell.array, fixed.n[0], fixed.mask[0], k_cut)
        graph = atoms_to_graph(a, R_MAX, caps=battery.CAPS)
        fresh = build_kset(
            graph, k_cut, margin=0.0, m_max=fixed.num_k, envelope_width=lr.envelope_width
        )
        counts.append(int(fresh.mask[0].sum()))
        fresh_out.append(run_with_kcut(name, k_cut, graph.replace(kset=fresh)))
        fixed_out.append(run_with_kcut(name, k_cut, graph.replace(kset=fixed)))
    assert len(set(counts)) > 1, f"no shell crossed k_cut along the path: {counts}"
    energies = np.array([out["energy"][0] for out in fresh_out])
    for a, b in zip(fresh_out, fixed_out, strict=True):
        np.testing.assert_allclose(a["energy"][0], b["energy"][0], rtol=1e-12)
        np.testing.assert_allclose(a["stress"][0], b["stress"][0], rtol=1e-10, atol=1e-12)
    # No jump: each step agrees with the trapezoid of dE/ds = V tr(stress) / s at its ends.
    slopes = np.array(
        [
            np.trace(o["stress"][0]) * a.get_volume() / s
            for o, a, s in zip(fresh_out, path, scales, strict=True)
        ]
    )
    steps = np.diff(energies)
    predicted = 0.5 * (slopes[1:] + slopes[:-1]) * np.diff(scales)
    assert np.max(np.abs(steps - predicted)) < 1e-2 * np.max(np.abs(steps)), (steps, predicted)


@functools.cache
def kcut_variant(name: str, k_cut: float):
    config = MACEConfig(**BASE, long_range=rsa_config(**VARIANTS[name], k_cut=k_cut))
    model = MACE(config)
    return make_potential(energy_fn_from_model(model))


def run_with_kcut(name: str, k_cut: float, graph):
    """The variant's parameters in a model whose k_cut is ``k_cut`` (parameters do not depend
    on k_cut)."""
    out = kcut_variant(name, k_cut)(variant(name)[2], graph)
    return jax.tree_util.tree_map(np.asarray, out)


# --------------------------------------------------------------------------- open boundaries


def cluster() -> Atoms:
    """A 9-atom Si3O6 cluster about 6 A across, open boundaries."""
    rng = np.random.default_rng(7)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = grid[rng.permutation(27)[:9]] * 2.1 + rng.normal(scale=0.1, size=(9, 3))
    return Atoms("Si3O6", positions=sites, pbc=False)


@pytest.mark.parametrize("name", ["gate-learned-2heads", SLOW_VARIANTS[0]])
def test_open_boundary_rotation_to_quadrature_accuracy(name):
    """The open-boundary kernel integrates the angles exactly (a radial pair sum over
    ``sinc(|k| r)``), so rotating a cluster changes the energy only by round-off."""
    config, model, variables, potential = variant(name)
    atoms = cluster()
    turned = atoms.copy()
    rot = random_rotation(11)
    turned.positions = atoms.positions @ rot.T
    kset_fn = make_kset_fn(config.long_range, [atoms])
    graph = atoms_to_graph([atoms, turned], R_MAX, kset_fn=kset_fn)
    sr_model, _ = MACE_SR()
    e_sr = np.asarray(jax.jit(sr_model.apply)(short_range_variables(variables), graph))[:2]
    out = jax.tree_util.tree_map(np.asarray, potential(variables, graph))
    e_lr = out["energy"][:2]
    mask = np.asarray(graph.node_mask)
    forces = out["forces"][mask].reshape(2, len(atoms), 3)
    assert np.all(np.isfinite(forces))
    assert abs(e_lr[0] - e_sr[0]) > 1e-4  # the long-range part is there
    np.testing.assert_allclose(e_lr[1], e_lr[0], rtol=1e-10)
    np.testing.assert_allclose(forces[1], forces[0] @ rot.T, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- seed mode


def orthorhombic_box(lengths=(10.4, 10.1, 11.0)) -> Atoms:
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (grid[rng.permutation(27)[:9]] + 0.5) / 3 + rng.normal(scale=0.01, size=(9, 3))
    return Atoms("Si3O6", scaled_positions=frac, cell=np.diag(lengths), pbc=True)


def test_seed_preset_on_an_orthorhombic_box():
    lr = RSAConfig.preset("seed")
    assert (lr.weighting, lr.combine, lr.num_heads, lr.seed) == ("ones", "tp", 1, True)
    config = MACEConfig(**BASE, long_range=lr)
    model, variables = init_model(config, seed=2)
    atoms = orthorhombic_box()
    kset_fn = make_kset_fn(lr, [atoms])
    graph = atoms_to_graph(atoms, R_MAX, kset_fn=kset_fn)
    n, mask = seed_kset(atoms.cell.array)
    np.testing.assert_array_equal(graph.kset.n[0], n)  # the reference's six vectors, its order
    assert mask.sum() == 6 and not graph.kset.smooth
    out = jax.tree_util.tree_map(np.asarray, make_potential(model.apply)(variables, graph))
    assert np.isfinite(out["energy"][0]) and np.all(np.isfinite(out["forces"]))
    e_sr = jax.jit(MACE_SR()[0].apply)(short_range_variables(variables), graph)
    assert abs(out["energy"][0] - float(e_sr[0])) > 1e-4


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        (triclinic(), "orthorhombic"),
        (orthorhombic_box((8.0, 9.0, 9.5)), "under 10 A"),
        (molecule(), "lattice-only"),
    ],
)
def test_seed_preset_refuses_other_cells(atoms, message):
    with pytest.raises(ValueError, match=message):
        make_kset_fn(RSAConfig.preset("seed"), [atoms])


# --------------------------------------------------------------------------- errors, round trip


def test_clear_errors():
    v0 = functools.partial(RSAConfig.preset, "default-v0")  # the earlier defaults, resolved
    with pytest.raises(ValueError, match="selects no reciprocal"):
        make_kset_fn(v0(k_cut=0.1), [triclinic()])
    with pytest.raises(ValueError, match="lattice-only"):
        make_kset_fn(v0(weighting="ones"), [triclinic(), molecule()])
    with pytest.raises(ValueError, match="multiple of 2"):
        MACEConfig(**BASE, long_range=v0(num_heads=4))
    with pytest.raises(ValueError, match="out of range"):
        MACEConfig(**BASE, long_range=v0(layers=(2,)))
    with pytest.raises(ValueError, match="needs a resolved RSAConfig"):
        make_kset_fn(RSAConfig(), [triclinic()])  # sigma, k_cut still to derive from r_max
    _, model, variables, _ = variant("gate-learned-2heads")
    graph = atoms_to_graph(triclinic(), R_MAX)
    with pytest.raises(ValueError, match=r"kset_fn=make_kset_fn"):
        jax.jit(model.apply)(variables, graph)  # raised while tracing
    other = make_kset_fn(v0(k_cut=3.0), [triclinic()])
    with pytest.raises(ValueError, match="k_cut=3.0"):
        jax.jit(model.apply)(variables, atoms_to_graph(triclinic(), R_MAX, kset_fn=other))


def test_make_kset_fn_accepts_atoms_records_and_graphs():
    lr = rsa_config(combine="gate")
    structures = [triclinic(), rattled_crystal() * (2, 1, 1)]
    from_atoms = make_kset_fn(lr, structures).m_max
    records = [atoms_to_record(a, R_MAX) for a in structures]
    assert make_kset_fn(lr, records).m_max == from_atoms
    assert make_kset_fn(lr, [atoms_to_graph(structures, R_MAX)]).m_max == from_atoms
    assert make_kset_fn(lr, structures, m_max=from_atoms + 7).m_max == from_atoms + 7


def test_long_range_config_round_trips(tmp_path):
    config, _, variables, _ = variant("gate-learned-2heads")
    config = MACEConfig(
        **{**config.to_dict(), "long_range": {**config.long_range.to_dict(), "layers": [1]}}
    )
    model, variables = init_model(config, seed=4)
    assert "long_range_0" not in variables["params"] and "long_range_1" in variables["params"]
    loaded, loaded_variables = load_model(save_model(tmp_path / "lr", config, variables))
    assert loaded.config == config and isinstance(loaded.config.long_range, RSAConfig)
    assert loaded.config.long_range.layers == (1,)
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded_variables, variables)
