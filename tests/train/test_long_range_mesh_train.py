"""The training loop runs RSA-MACE with the mesh evaluation: the grid rides on every batch."""

import numpy as np

from rsajax.nn.model import load_model
from rsajax.train import train
from tests.train.helpers import TINY_MODEL, tiny_config, write_dataset


def test_rsa_mace_mesh_trains_and_exports(tmp_path):
    data = write_dataset(tmp_path / "emt.extxyz", 8, seed=3)
    long_range = dict(
        k_cut=2.5, weighting="ewald", sigma=2.0, num_heads=1, channels=None, combine="residual"
    )
    model = dict(TINY_MODEL, long_range=dict(long_range, evaluation="mesh", mesh_order=4))
    result = train(tiny_config(tmp_path, data, epochs=2, model=model))
    before, after = result.history[0]["valid_loss"], result.history[-1]["valid_loss"]
    assert np.isfinite(after) and after < before
    loaded, variables = load_model(result.model_dir)
    assert loaded.config.long_range.evaluation == "mesh"
    assert loaded.config.long_range.mesh_order == 4
    assert any(k.startswith("long_range_") for k in variables["params"])
