"""Regenerate the frozen MACE goldens from mace-torch (needs the [torch] extra).

    .venv/bin/python -m tests.goldens.make_goldens

Each ``mace_*.npz`` holds a converted model (config JSON + variables) and mace-torch's energy,
forces and stress on the structures of ``tests/structures.py``, so runs without torch still check
numbers against torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from rsajax.convert.mace_torch import config_from_torch, variables_from_torch
from tests.convert.torch_reference import make_torch_model, torch_outputs
from tests.structures import all_structures

HERE = Path(__file__).parent
MODELS = {
    "mace_scaleshift_residual": dict(
        max_ell=2, hidden="3x0e+3x1o", correlation=3, num_interactions=2, scale_shift=True, seed=11
    ),
    "mace_plain_nonresidual": dict(
        max_ell=3,
        hidden="2x0e+2x1o+2x2e",
        correlation=2,
        num_interactions=3,
        scale_shift=False,
        seed=12,
        first="RealAgnosticInteractionBlock",
    ),
}


def flatten(tree: dict) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"var/" + "/".join(str(k.key) for k in path): np.asarray(v) for path, v in flat}


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    for name, kwargs in MODELS.items():
        torch_model = make_torch_model(**kwargs)
        config = config_from_torch(torch_model)
        arrays = flatten(variables_from_torch(torch_model, config))
        arrays["config_json"] = np.array(json.dumps(config.to_dict()))
        for s, atoms in all_structures().items():
            ref = torch_outputs(torch_model, atoms, config.r_max)
            for key, value in ref.items():
                arrays[f"ref/{s}/{key}"] = np.asarray(value)
        np.savez_compressed(HERE / f"{name}.npz", **arrays)
        print(f"wrote {name}.npz")


if __name__ == "__main__":
    main()
