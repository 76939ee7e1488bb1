"""ASE calculator on a fresh rsajax model: properties, element-table errors, model-dir errors;
long-range (RSA) models on periodic and open structures, their long-range energy, float32."""

from __future__ import annotations

import functools
import json

import jax
import numpy as np
import pytest
from ase import Atoms

from rsajax.calculator import RsajaxCalculator
from rsajax.data import atoms_to_graph
from rsajax.nn.model import init_model, save_model
from rsajax.nn.rsa import make_kset_fn
from rsajax.potential import energy_fn_from_model, make_potential
from tests.structures import molecule, triclinic
from tests.tiny_models import switch_on_long_range, tiny_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    config = tiny_config(max_ell=1, correlation=2)
    _, variables = init_model(config, seed=3)
    return save_model(tmp_path_factory.mktemp("model"), config, variables)


def test_energy_forces_stress_match_potential(model_dir):
    from rsajax.nn.model import load_model

    atoms = triclinic()
    atoms.calc = RsajaxCalculator(model_dir)
    model, variables = load_model(model_dir)
    out = make_potential(energy_fn_from_model(model))(
        variables, atoms_to_graph(atoms, model.config.r_max)
    )
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"][0]), rel=1e-12)
    np.testing.assert_allclose(
        atoms.get_forces(), np.asarray(out["forces"])[: len(atoms)], rtol=0, atol=1e-12
    )
    stress = np.asarray(out["stress"][0])
    np.testing.assert_allclose(atoms.get_stress(voigt=False), stress, rtol=0, atol=1e-12)
    assert np.abs(atoms.get_forces()).max() > 0


def test_open_boundary_structure(model_dir):
    atoms = molecule()
    atoms.calc = RsajaxCalculator(model_dir)
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (len(atoms), 3)
    assert abs(atoms.get_forces().sum(axis=0)).max() < 1e-10  # no net force in vacuum


def test_missing_element_is_named(model_dir):
    atoms = Atoms("SiOC", positions=[[0, 0, 0], [1.6, 0, 0], [0, 1.6, 0]])
    atoms.calc = RsajaxCalculator(model_dir)
    with pytest.raises(ValueError, match=r"C \(Z=6\)"):
        atoms.get_potential_energy()


def test_bad_model_directory(tmp_path, model_dir):
    with pytest.raises(FileNotFoundError, match="not an rsajax model directory"):
        RsajaxCalculator(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((model_dir / "config.json").read_text())
    (bad / "params.msgpack").write_bytes((model_dir / "params.msgpack").read_bytes())
    (bad / "config.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match="version 99 is not supported"):
        RsajaxCalculator(bad)
    (bad / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an rsajax MACE config"):
        RsajaxCalculator(bad)


# --------------------------------------------------------------------------- long-range models


@pytest.fixture(scope="module")
def rsa_model_dir(tmp_path_factory):
    """A tiny RSA-MACE (``long_range="default"``), float64, with a non-zero long-range energy."""
    config = tiny_config(max_ell=1, correlation=2, long_range="default")
    _, variables = init_model(config, seed=4)
    return save_model(tmp_path_factory.mktemp("rsa"), config, switch_on_long_range(variables))


@pytest.fixture(scope="module")
def rsa_calculator(rsa_model_dir):
    """One calculator for periodic and open structures (the k-set function is rebuilt)."""
    return RsajaxCalculator(rsa_model_dir)


@functools.cache
def reference_functions(model_dir):
    """The saved model, its variables, the jitted ``make_potential`` with the long-range part and
    the jitted ``MACE.energy_parts`` (compiled once per graph shape)."""
    from rsajax.nn.model import MACE, load_model

    model, variables = load_model(model_dir)
    potential = make_potential(energy_fn_from_model(model, long_range_part=True))
    parts = jax.jit(functools.partial(model.apply, method=MACE.energy_parts))
    return model, variables, potential, parts


def reference(model_dir, atoms):
    """``make_potential`` (with the long-range part) and ``MACE.energy_parts`` on one graph."""
    model, variables, potential, parts = reference_functions(model_dir)
    kset_fn = make_kset_fn(model.config.long_range, [atoms])
    graph = atoms_to_graph(atoms, model.config.r_max, kset_fn=kset_fn)
    return potential(variables, graph), [float(p[0]) for p in parts(variables, graph)]


def finite_difference_forces(atoms, h=1e-4):
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for d in range(3):
            energies = []
            for sign in (1, -1):
                shifted = atoms.copy()
                shifted.calc = atoms.calc
                shifted.positions[i, d] += sign * h
                energies.append(shifted.get_potential_energy())
            forces[i, d] = -(energies[0] - energies[1]) / (2 * h)
    return forces


@pytest.mark.parametrize("structure", ["periodic", "open"])
def test_long_range_model_matches_potential_and_finite_differences(
    rsa_model_dir, rsa_calculator, structure
):
    atoms = triclinic() if structure == "periodic" else molecule()
    atoms.calc = rsa_calculator
    out, (energy, long_range) = reference(rsa_model_dir, atoms)
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"][0]), rel=1e-12)
    assert energy == pytest.approx(float(out["energy"][0]), rel=1e-12)
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, np.asarray(out["forces"])[: len(atoms)], atol=1e-12)
    lr = rsa_calculator.get_long_range_energy(atoms)
    assert lr == rsa_calculator.results["long_range_energy"]
    assert lr == pytest.approx(long_range, rel=1e-12, abs=1e-14)
    assert lr == pytest.approx(float(out["long_range_energy"][0]), rel=1e-12, abs=1e-14)
    assert abs(lr) > 1e-3  # the RSA branch contributes
    np.testing.assert_allclose(finite_difference_forces(atoms), forces, atol=1e-7)
    if structure == "periodic":
        np.testing.assert_allclose(
            atoms.get_stress(voigt=False), np.asarray(out["stress"][0]), atol=1e-12
        )
    else:
        assert abs(forces.sum(axis=0)).max() < 1e-10  # no net force in vacuum


def test_charged_periodic_cell_uses_its_net_charge(rsa_model_dir, rsa_calculator):
    """``atoms.info["charge"]`` reaches the model (``RSAConfig.net_charge``): the calculator
    agrees with the potential on the charged graph, and the energy is not the neutral one."""
    charged = triclinic()
    charged.info["charge"] = 1.0
    charged.calc = rsa_calculator
    out, _ = reference(rsa_model_dir, charged)
    assert float(out["energy"][0]) == pytest.approx(charged.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(
        charged.get_forces(), np.asarray(out["forces"])[: len(charged)], atol=1e-12
    )
    neutral = triclinic()
    neutral.calc = rsa_calculator
    assert abs(charged.get_potential_energy() - neutral.get_potential_energy()) > 1e-4


def test_long_range_k_slots_only_grow(rsa_model_dir):
    """A compressed cell keeps the larger k slot count (padding changes nothing); an expanded one
    and a stretched molecule rebuild the k-set function with more slots / radial nodes."""
    calc = RsajaxCalculator(rsa_model_dir)
    atoms = triclinic()
    atoms.calc = calc
    atoms.get_potential_energy()
    slots = calc._kset_fn.m_max
    compressed = atoms.copy()
    compressed.set_cell(atoms.cell.array * 0.97, scale_atoms=True)
    compressed.calc = calc
    energy = compressed.get_potential_energy()
    assert calc._kset_fn.m_max == slots
    assert make_kset_fn(calc.config.long_range, [compressed]).m_max < slots
    out, _ = reference(rsa_model_dir, compressed)
    assert energy == pytest.approx(float(out["energy"][0]), rel=1e-12)
    expanded = atoms.copy()
    expanded.set_cell(atoms.cell.array * 1.06, scale_atoms=True)
    expanded.calc = calc
    assert np.isfinite(expanded.get_potential_energy()) and calc._kset_fn.m_max > slots
    slots = calc._kset_fn.m_max
    cluster = molecule()
    cluster.calc = calc
    cluster.get_potential_energy()
    radial = calc._kset_fn.num_radial
    stretched = molecule()
    stretched.positions *= 3.0  # beyond the radial nodes sized for the first cluster
    stretched.calc = calc
    assert np.isfinite(stretched.get_potential_energy())
    assert calc._kset_fn.num_radial > radial and calc._kset_fn.m_max >= slots


def test_short_range_model_reports_zero_long_range_energy(model_dir):
    atoms = triclinic()
    atoms.calc = RsajaxCalculator(model_dir)
    assert atoms.calc.get_long_range_energy(atoms) == 0.0


def test_float32_conversion_of_a_long_range_model(rsa_model_dir, rsa_calculator):
    calc32 = RsajaxCalculator(rsa_model_dir, dtype="float32")
    floats = [x for x in jax.tree_util.tree_leaves(calc32.variables) if x.dtype.kind == "f"]
    assert floats and all(x.dtype == np.float32 for x in floats)
    for atoms in (triclinic(), molecule()):
        atoms.calc = rsa_calculator
        e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
        lr64 = rsa_calculator.get_long_range_energy(atoms)
        atoms.calc = calc32
        assert atoms.get_potential_energy() == pytest.approx(e64, rel=1e-6)
        np.testing.assert_allclose(atoms.get_forces(), f64, atol=1e-5 * np.abs(f64).max())
        assert calc32.get_long_range_energy(atoms) == pytest.approx(lr64, rel=1e-5, abs=1e-6)
