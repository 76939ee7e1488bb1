"""The training loop runs RSA-MACE unchanged: k-sets ride on every batch, the model exports."""

import numpy as np
import pytest

from rsajax.nn.model import load_model
from rsajax.train import train
from tests.train.helpers import TINY_MODEL, tiny_config, write_dataset


def test_rsa_mace_trains_and_exports(tmp_path):
    data = write_dataset(tmp_path / "emt.extxyz", 8, seed=3)
    model = dict(
        TINY_MODEL,
        long_range={
            "k_cut": 2.5,
            "weighting": "ewald",
            "sigma": 2.0,
            "num_heads": 1,
            "channels": None,
            "combine": "residual",
        },
    )
    config = tiny_config(tmp_path, data, epochs=2, model=model)
    result = train(config)
    before, after = result.history[0]["valid_loss"], result.history[-1]["valid_loss"]
    assert np.isfinite(after) and after < before
    loaded, variables = load_model(result.model_dir)
    assert loaded.config.long_range is not None
    assert loaded.config.long_range.combine == "residual"
    rsa_params = [k for k in variables["params"] if "long_range" in k or "rsa" in k.lower()]
    assert rsa_params, f"no RSA parameters among {sorted(variables['params'])}"


def test_default_rsa_mace_trains_exports_and_evaluates(tmp_path):
    """``model.long_range: default`` (sigma and k_cut derived from r_max, additive long-range
    energy): the exported model loads with numbers in its RSA config and evaluates in the ASE
    calculator, whose long-range energy equals ``MACE.energy_parts``."""
    from rsajax.calculator import RsajaxCalculator
    from rsajax.data import atoms_to_graph
    from rsajax.nn.model import MACE
    from rsajax.nn.rsa import make_kset_fn
    from tests.train.helpers import emt_structures

    data = write_dataset(tmp_path / "emt.extxyz", 8, seed=4)
    config = tiny_config(tmp_path, data, epochs=1, model=dict(TINY_MODEL, long_range="default"))
    result = train(config)
    assert np.isfinite(result.history[-1]["valid_loss"])
    loaded, variables = load_model(result.model_dir)
    rsa = loaded.config.long_range
    assert rsa.combine == "energy" and rsa.is_resolved
    readout = variables["params"]["long_range_0"]["energy_readout"]["kernel"]
    assert np.abs(readout).max() > 0  # trained away from its zero start

    atoms = emt_structures(1, seed=11)[0]
    atoms.calc = RsajaxCalculator(result.model_dir)
    energy, long_range = atoms.get_potential_energy(), atoms.calc.get_long_range_energy()
    graph = atoms_to_graph(atoms, loaded.config.r_max, kset_fn=make_kset_fn(rsa, [atoms]))
    parts = loaded.apply(variables, graph, method=MACE.energy_parts)
    assert energy == pytest.approx(float(parts[0][0]), rel=1e-10)
    assert long_range == pytest.approx(float(parts[1][0]), rel=1e-8, abs=1e-12)
    assert long_range != 0.0 and np.isfinite(atoms.get_forces()).all()
