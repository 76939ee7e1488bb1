"""One process of a multi-host run on one machine (see test_multihost.py).

Usage:
    python -m tests.train.multihost_worker train CONFIG.json ID COUNT ADDRESS OUT.npz
        [--resume] [--stop-after STEP]
    python -m tests.train.multihost_worker step ID COUNT ADDRESS

``train`` runs :func:`rsajax.train.train` with ``parallel.multi_host: true`` (``jax.distributed``
with its coordinator at ADDRESS), writes this process's final parameters to OUT.npz keyed by their
tree paths and prints one JSON line. ``--stop-after`` ends every process right after that step's
checkpoint, as a preempted job ends (no clean shutdown), so the next run must resume from disk.

``step`` runs one train step on the mesh of all processes' devices and, on process 0, one on its
own device with the same global batch (:func:`tests.train.sharding_check.compare`) and prints
its JSON record.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from rsajax.train import sharding, train
from rsajax.train.config import ParallelConfig

#: exit status of a run stopped by --stop-after (the test checks for it)
STOPPED = 17


def parallel_overrides(process_id: str, count: str, address: str) -> dict:
    return {
        "parallel.multi_host": True,
        "parallel.coordinator_address": address,
        "parallel.num_processes": int(count),
        "parallel.process_id": int(process_id),
    }


def run_train(config_path: str, process_id: str, count: str, address: str, out: str, *rest):
    stop_after = int(rest[rest.index("--stop-after") + 1]) if "--stop-after" in rest else -1

    def stop(event: str, info: dict) -> None:
        if event == "step" and info["step"] == stop_after:
            # Checkpoints are synchronous in the test config, so step ``stop_after`` is on disk;
            # the barrier keeps one process from leaving while the other still writes.
            multihost_utils.sync_global_devices("stop")
            os._exit(STOPPED)

    config = json.loads(Path(config_path).read_text())
    overrides = parallel_overrides(process_id, count, address)
    result = train(config, overrides, resume="--resume" in rest, callbacks=[stop])
    flat = jax.tree_util.tree_flatten_with_path(result.params)[0]
    np.savez(out, **{jax.tree_util.keystr(p): np.asarray(v) for p, v in flat})
    record = {"process": jax.process_index(), "devices": jax.device_count(), "steps": result.steps}
    print(json.dumps(record))


def run_step(process_id: str, count: str, address: str) -> None:
    overrides = parallel_overrides(process_id, count, address)
    parallel = ParallelConfig(**{k.split(".")[1]: v for k, v in overrides.items()})
    sharding.initialize_distributed(parallel)  # before anything touches a device
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import Mesh

    from tests.train.sharding_check import compare

    meshes = {"all": sharding.make_mesh(0)}
    if jax.process_index() == 0:  # the one-device reference once is enough (and saves a compile)
        meshes["own"] = Mesh(np.array(jax.local_devices()[:1]), (sharding.DATA_AXIS,))
    record = compare(meshes, sub_batches=jax.device_count())
    print(json.dumps({"process": jax.process_index(), **record}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    run_train(*args) if mode == "train" else run_step(*args)
