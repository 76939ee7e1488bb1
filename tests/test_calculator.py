"""ASE calculator on a fresh rsajax model: properties, element-table errors, model-dir errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from rsajax.calculator import RsajaxCalculator
from rsajax.data import atoms_to_graph
from rsajax.nn.model import init_model, save_model
from rsajax.potential import energy_fn_from_model, make_potential
from tests.structures import molecule, triclinic
from tests.tiny_models import tiny_config


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
