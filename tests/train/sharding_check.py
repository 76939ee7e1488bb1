"""Run in a fresh process with 4 simulated CPU devices (see test_sharding.py): one train step on a
4-device mesh and on a 1-device mesh with the same global batch (4 stacked sub-batches).
multihost_worker.py reuses :func:`compare` with a mesh that spans two processes.

Prints one JSON line: the largest parameter difference, the size of the update, the number of
devices the batch was spread over on each mesh, and the sub-batch shape.
"""

from __future__ import annotations

import hashlib
import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from rsajax.data import atoms_to_record, compute_statistics  # noqa: E402
from rsajax.nn.model import init_model  # noqa: E402
from rsajax.potential import energy_fn_from_model  # noqa: E402
from rsajax.train import sharding  # noqa: E402
from rsajax.train.batches import GlobalBatches  # noqa: E402
from rsajax.train.config import load_config  # noqa: E402
from rsajax.train.optim import make_optimizer  # noqa: E402
from rsajax.train.setup import model_config_from  # noqa: E402
from rsajax.train.step import init_state, make_train_step  # noqa: E402
from tests.train.helpers import TINY_MODEL, emt_structures  # noqa: E402


def one_step(mesh, batch, active, params, constants, optimizer, energy_fn, ema_decay):
    rep, dat = sharding.replicated(mesh), sharding.data_sharding(mesh)
    counter: dict = {}
    weights = {"energy": 1.0, "forces": 10.0, "stress": 1.0}
    step = sharding.shard_step(
        make_train_step(energy_fn, optimizer, weights, "mse", 0.01, ema_decay, True, counter),
        mesh,
        2,
    )
    state = sharding.put_global(jax.device_get(init_state(params, optimizer, 0, True)), rep)
    graph = sharding.put_global(batch, dat)
    devices = len(graph.positions.sharding.device_set)
    new, metrics = step(
        state, sharding.put_global(constants, rep), graph, sharding.put_global(active, dat)
    )
    return jax.device_get(new), devices


def setup(sub_batches: int) -> tuple:
    """(batch, active, params, constants, optimizer, energy_fn): a tiny float64 model and one
    global batch of 8 EMT structures in ``sub_batches`` stacked sub-batches."""
    cfg = load_config(
        {
            "dtype": "float64",
            "model": dict(TINY_MODEL, num_interactions=1),
            "optimizer": {"lr": 0.05},
        }
    )
    records = [atoms_to_record(a, cfg.model.r_max) for a in emt_structures(8, seed=3)]
    model_config = model_config_from(cfg, compute_statistics(records))
    model, variables = init_model(model_config, seed=1)
    constants = {k: v for k, v in variables.items() if k != "params"}
    batches = GlobalBatches(records, batch_size=8, sub_batches=sub_batches, num_buckets=1, seed=0)
    batch, active = batches.batch(0, 0)
    optimizer = make_optimizer(cfg.optimizer, cfg.schedule, 1, 1)
    return batch, active, variables["params"], constants, optimizer, energy_fn_from_model(model)


def max_diff(a, b) -> float:
    """Largest absolute difference between two pytrees of arrays."""
    pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


def compare(meshes: dict, sub_batches: int) -> dict:
    """One step on each mesh of ``meshes`` (name -> Mesh; the first is compared with the others)
    with the same global batch. Returns the JSON record described in the module docstring, plus
    ``digest``, a hash of the first mesh's new state (equal states, equal digests)."""
    batch, active, params, constants, optimizer, energy_fn = setup(sub_batches)
    results = {
        name: one_step(mesh, batch, active, params, constants, optimizer, energy_fn, 0.9)
        for name, mesh in meshes.items()
    }
    (state, _), *others = results.values()
    leaves = jax.tree_util.tree_leaves(state)
    return {
        "max_diff": max((max_diff(state, other) for other, _ in others), default=None),
        "update": max_diff(state.params, params),
        **{f"devices_{name}": devices for name, (_, devices) in results.items()},
        "sub_batch_shape": list(batch.positions.shape),
        "digest": hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest(),
    }


def main() -> None:
    assert jax.device_count() == 4, f"expected 4 devices, got {jax.device_count()}"
    meshes = {"4": sharding.make_mesh(4), "1": sharding.make_mesh(1)}
    print(json.dumps(compare(meshes, sub_batches=4)))


if __name__ == "__main__":
    main()
    sys.exit(0)
