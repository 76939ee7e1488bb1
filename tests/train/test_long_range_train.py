"""The training loop runs RSA-MACE unchanged: k-sets ride on every batch, the model exports."""

import numpy as np

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
