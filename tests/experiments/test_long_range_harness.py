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


@pytest.mark.parametrize(
    "benchmark", ["dimers_open", "dimers_periodic", "xtb_dimers", "s22x5", "exfoliation", "water"]
)
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


def test_exfoliation_splits_are_disjoint_and_the_scan_reaches_separated_layers(gen):
    splits = gen.make_splits("exfoliation", "quick")
    keys = {k: {a.positions.round(6).tobytes() for a in v} for k, v in splits.items()}
    assert not keys["test"] & (keys["train"] | keys["valid"]) and not keys["valid"] & keys["train"]
    gaps = [a.info["gap"] for a in splits["scan"]]
    assert max(gaps) == pytest.approx(16.0)
    rmin = np.array([a.info["min_intermolecular_distance"] for a in splits["scan"]])
    assert (rmin < 5.0).sum() >= 10 and (rmin >= 5.0).sum() >= 10
    assert splits["scan"][-1].info["interaction_energy"] == 0.0  # measured from the 16 A point
    ref = gen.exfoliation_reference(splits["scan"])
    assert 65.0 < ref["exfoliation_energy_mev_per_atom"] < 80.0
    assert ref["interaction_at_first_beyond_mev_per_atom"] < -5.0  # a real tail beyond 5 A


def test_scan_metrics_give_the_exfoliation_energy_and_the_short_range_blind_spot(run):
    from rsajax.teachers import layered

    scan = layered.exfoliation_scan([2.8, 3.1, 3.6, 6.0, 9.0, 16.0])
    exact = np.array([a.info["interaction_energy"] for a in scan])
    m = run.scan_metrics(scan, exact, 5.0)
    assert m["scan_inside_rmse_per_atom"] == pytest.approx(0.0, abs=1e-9)
    assert m["exfoliation_energy"] == pytest.approx(m["exfoliation_energy_reference"])
    # a short-range model's best beyond the cutoff: separate layers, interaction 0
    rmin = np.array([a.info["min_intermolecular_distance"] for a in scan])
    blind = np.where(rmin >= 5.0, 0.0, exact)
    m = run.scan_metrics(scan, blind, 5.0)
    tail = 1000 * exact[rmin >= 5.0] / 16
    assert m["scan_beyond_rmse_per_atom"] == pytest.approx(np.sqrt(np.mean(tail**2)))
    # the layers moved apart are what the interaction energy is measured from
    parts, owner = run.parts_of(scan[:2])
    assert list(owner) == [0, 1] and parts[0].cell[2, 2] > scan[0].cell[2, 2] + 79.0


def test_dipole_metrics(run):
    rng = np.random.default_rng(0)
    ref = rng.normal(2.4, 0.1, 4000)
    same = run.dipole_metrics(ref, ref)
    assert same["dipole_w1"] == 0.0 and same["dipole_mean_error"] == 0.0
    shifted = run.dipole_metrics(ref + 0.05, ref)
    assert shifted["dipole_w1"] == pytest.approx(0.05) and shifted["dipole_mean_error"] == (
        pytest.approx(0.05)
    )
    # the noise floor: two halves of one sample; a drift between them shows up
    assert run.dipole_noise_floor(ref) < 0.01
    drifting = np.concatenate([ref[:2000], ref[2000:] + 0.05])
    assert run.dipole_noise_floor(drifting) == pytest.approx(0.05, abs=0.01)


@pytest.mark.slow  # ~40 s on the shared cores: jax-md compiles FIRE and the MD chunk once each
def test_water_generator_on_a_tiny_box(gen, monkeypatch, tmp_path):
    """Eight molecules, a few MD steps: splits labelled, dipole sample written, no scan."""
    tiny = {
        "equilibration": 10,
        "train": 3,
        "valid": 1,
        "test": 2,
        "stride": 5,
        "gap": 5,
        "dipole_equilibration": 5,
        "dipole_frames": 4,
        "dipole_stride": 5,  # one stride: one compiled MD chunk for the whole test
    }
    monkeypatch.setitem(gen.WATER_SIZES, "quick", tiny)
    monkeypatch.setattr(gen, "WATER_N_SIDE", 2)
    monkeypatch.setattr(gen, "WATER_RELAX_STEPS", 100)
    summary = gen.generate("water", tmp_path, "quick")
    assert summary["counts"] == {"train": 3, "valid": 1, "test": 2, "scan": 0}
    assert summary["test_budget"]["n_beyond"] == 0  # a dense liquid: nothing beyond 5 A
    dipoles = np.load(tmp_path / "dipoles_reference.npy")
    assert dipoles.shape == (4 * 8,) and 1.8 < dipoles.mean() < 3.0
    from ase.io import read

    test = read(tmp_path / "test.xyz", ":")
    assert [a.info["step"] for a in test] == sorted(a.info["step"] for a in test)
    assert np.abs(test[0].get_forces()).max() > 0.1


def test_periodic_training_split_holds_each_molecule_alone_in_the_box(gen):
    splits = gen.make_splits("dimers_periodic", "quick")
    lone = [a for a in splits["train"] if "min_intermolecular_distance" not in a.info]
    molecules = {m for pair in gen.DIMER_PAIRS for m in gen.pc.PAIRS[pair]}
    assert sorted(a.info["pair"] for a in lone) == sorted(
        m for m in molecules for _ in range(gen.PERIODIC_MONOMERS["quick"])
    )
    assert all(a.pbc.all() and a.info["split"] == "train" for a in lone)
    for split in ("valid", "test", "scan"):
        assert all("min_intermolecular_distance" in a.info for a in splits[split])
    assert not any(
        "min_intermolecular_distance" not in a.info
        for a in gen.make_splits("dimers_open", "quick")["train"]
    )
