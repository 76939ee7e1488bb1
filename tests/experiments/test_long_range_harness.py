"""experiments/long_range: configs load for both models, splits are disjoint, metrics are right."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "experiments" / "long_range"


def _load(name: str):
    sys.path.insert(0, str(HARNESS))
    try:
        spec = importlib.util.spec_from_file_location(f"long_range_{name}", HARNESS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(HARNESS))


@pytest.fixture(scope="module")
def run():
    return _load("run")


@pytest.fixture(scope="module")
def gen():
    return _load("generate")


@pytest.mark.parametrize("benchmark", ["dimers_open", "dimers_periodic", "xtb_dimers", "s22x5"])
@pytest.mark.parametrize("preset", ["quick", "full"])
def test_configs_are_valid_and_identical_but_for_long_range(run, benchmark, preset):
    from rsajax.nn.rsa import as_rsa_config
    from rsajax.train.config import load_config

    cfg = run.train_config(benchmark, preset)
    sr = load_config(cfg)
    rsa = load_config(run._merge(cfg, {"model": {"long_range": "default"}}))
    # the model section resolves the preset when read (rsajax.nn.model.MACEArchitecture)
    default = as_rsa_config("default", r_max=sr.model.r_max)
    assert sr.model.long_range is None and rsa.model.long_range == default
    assert sr.to_dict()["epochs"] == rsa.to_dict()["epochs"] > 0
    assert sr.model.r_max == 5.0


def test_dimer_splits_are_disjoint_and_reach_16_angstrom(gen):
    splits = gen.make_splits("dimers_open", "quick")
    keys = {
        split: {a.positions.round(6).tobytes() for a in atoms} for split, atoms in splits.items()
    }
    assert not keys["test"] & (keys["train"] | keys["valid"])
    assert not keys["valid"] & keys["train"]
    seps = [a.info["separation"] for a in splits["scan"]]
    assert max(seps) == pytest.approx(16.0)
    budget = gen.long_range_budget(splits["test"])
    assert budget["n_inside"] + budget["n_beyond"] == len(splits["test"])
    assert 0.0 < budget["beyond_intermolecular_variance_fraction"] <= 1.0


def test_metrics_split_inside_and_beyond_and_centre_the_beyond_error(run):
    from rsajax.teachers import point_charges as pc

    test = pc.dimer_curves("ammonium_water", [3.0, 4.0, 10.0, 14.0], 1, seed=0)
    rmin = np.array([a.info["min_intermolecular_distance"] for a in test])
    exact = np.array([a.get_potential_energy() for a in test])
    offset = np.where(rmin >= 5.0, 0.2, 0.0)  # a constant error beyond, none inside
    forces = [a.get_forces() for a in test]
    m = run.test_metrics(test, exact + offset, forces, 5.0, interaction=False)
    assert m["n_inside"] == 2 and m["n_beyond"] == 2
    assert m["inside_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert m["beyond_rmse"] == pytest.approx(200.0)
    assert m["beyond_rmse_centered"] == pytest.approx(0.0, abs=1e-9)
    assert m["force_inside_rmse"] == pytest.approx(0.0, abs=1e-9)
