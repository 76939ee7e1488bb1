"""Data parallelism with jax.sharding: a 1D device mesh with a ``data`` axis.

The global batch is a stack of D sub-batches (arrays (D, ...)); it is sharded on its leading axis
with ``NamedSharding(mesh, P("data"))`` and everything else (parameters, optimiser state, EMA) is
replicated. One ``jax.jit`` with these in/out shardings runs the step on every device; XLA inserts
the gradient all-reduce. The loss is the mean over the D sub-batches, so one device holding the same
stack computes the same update. Multi-host: :func:`initialize_distributed` first, then the mesh
spans every process's devices and each process feeds only its own shards. No pmap.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rsajax.errors import InputError
from rsajax.train.config import ParallelConfig

DATA_AXIS = "data"


def initialize_distributed(parallel: ParallelConfig) -> None:
    """``jax.distributed.initialize()`` when the config asks for multi-host (auto-detects the
    cluster on TPU pods, SLURM and Open MPI when address/processes/id are left empty)."""
    if not parallel.multi_host:
        return
    kwargs = {}
    if parallel.coordinator_address:
        kwargs["coordinator_address"] = parallel.coordinator_address
    if parallel.num_processes > 0:
        kwargs["num_processes"] = parallel.num_processes
    if parallel.process_id >= 0:
        kwargs["process_id"] = parallel.process_id
    jax.distributed.initialize(**kwargs)


def make_mesh(num_devices: int = 0) -> Mesh:
    """A mesh over the first ``num_devices`` devices (0: all, across all processes)."""
    devices = jax.devices()
    if num_devices > len(devices):
        raise InputError(
            f"parallel.num_devices = {num_devices} but only {len(devices)} devices "
            f"are visible ({devices[0].platform})"
        )
    chosen = devices[:num_devices] if num_devices > 0 else devices
    return Mesh(np.array(chosen), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the data axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def put_global(tree, sharding: NamedSharding):
    """Host numpy arrays (the same global values on every process) -> global jax Arrays.

    Each process materialises only the shards its devices hold, so this works multi-host.
    """

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(put, tree)


def shard_step(fn: Callable, mesh: Mesh, num_sharded: int, donate_state: bool = True) -> Callable:
    """``jax.jit`` of ``fn(state, constants, *batch_args)`` with replicated state and constants and
    ``num_sharded`` batch arguments sharded on the data axis; outputs are replicated."""
    rep, data = replicated(mesh), data_sharding(mesh)
    return jax.jit(
        fn,
        in_shardings=(rep, rep) + (data,) * num_sharded,
        out_shardings=rep,
        donate_argnums=(0,) if donate_state else (),
    )
