"""Several independent copies of one system (different seeds, starting structures or temperature
schedules, e.g. quench rates) advanced together with ``vmap``: one compiled chunk for all.

All replicas share the system (same atoms, the same allocation) and the list capacity; an
overflow or a failed box check in any replica reallocates all of them and redoes the chunk. Under
``vmap`` jax-md's ``lax.cond`` rebuild becomes a ``select`` (the rebuild runs every step), the
price of advancing replicas in lock-step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.md.adapter import MDSystem
from rsajax.md.integrators import GPA, KB, Ensemble, make_integrator
from rsajax.md.protocols import Schedule
from rsajax.md.simulation import MAX_RETRIES, BlowUpError, make_chunk_fn


@dataclasses.dataclass
class ReplicaResult:
    """``thermo``: dict of (replicas, records) arrays (temperature K, potential / kinetic eV,
    volume A^3, pressure GPa; ``long_range`` eV for RSA models); ``states``: the batched
    integrator state."""

    states: object
    thermo: dict[str, np.ndarray]
    steps: int
    reallocations: int


def stack_schedules(schedules: list[Schedule]) -> tuple[np.ndarray, np.ndarray]:
    """(R, S) temperatures (K) and pressures (GPa); shorter schedules hold their last target."""
    steps = max(s.steps for s in schedules)

    def pad(x):
        return np.concatenate([x, np.full(steps - len(x), x[-1])])

    return (
        np.stack([pad(s.T_K) for s in schedules]),
        np.stack([pad(s.pressure_GPa) for s in schedules]),
    )


def allocate_batch(system: MDSystem, Rs: jnp.ndarray, boxes: jnp.ndarray, extra: int = 0):
    """Neighbour lists of the same capacity for every replica, stacked on a leading axis."""
    for attempt in range(MAX_RETRIES):
        first = system.allocate(Rs[0], box=boxes[0], extra_capacity=extra + 8 * attempt)
        lists = []
        for R, box in zip(Rs, boxes, strict=True):
            # half a box away: the update always rebuilds, with the first list's capacity
            stale = dataclasses.replace(first, reference_position=first.reference_position + 0.5)
            lists.append(system.neighbor_fn.update(R, stale, box=box))
        if not any(bool(n.did_buffer_overflow) for n in lists):
            return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *lists)
    raise RuntimeError("replica neighbour lists keep overflowing")


def run_replicas(
    system: MDSystem,
    ensemble: Ensemble,
    R0,
    T_K: np.ndarray,
    pressure_GPa: np.ndarray | None = None,
    seeds=None,
    *,
    log_every: int = 10,
    records_per_chunk: int = 10,
    start_step: int = 0,
    restore: Callable | None = None,
    on_chunk: Callable | None = None,
) -> ReplicaResult:
    """Advance ``R`` replicas through per-replica schedules.

    Args:
        R0: (N, 3) shared start, or (R, N, 3) one per replica (fractional coordinates).
        T_K: (R, S) target temperatures; ``pressure_GPa``: (R, S) NPT targets (default 0).
        seeds: (R,) seeds of the initial velocities and Langevin noise (default 0..R-1).
        start_step: continue the schedule from this step (a multiple of the chunk,
            ``log_every * records_per_chunk``), e.g. from a checkpoint.
        restore: ``restore(template) -> states``: the batched state to continue from, given a
            freshly initialised one of the same structure (e.g. ``load_checkpoint``'s state).
        on_chunk: called after every chunk as ``on_chunk(step, states, thermo, positions,
            boxes)``: ``step`` the schedule step reached, ``thermo`` the chunk's records as in
            :class:`ReplicaResult` (``(R, C)`` arrays), ``positions`` (R, C, N, 3) fractional
            and ``boxes`` (R, C, 3, 3) at each record. For trajectories and checkpoints.
    """
    T_K = np.atleast_2d(np.asarray(T_K, np.float64))
    n_rep, steps = T_K.shape
    chunk = log_every * records_per_chunk
    if steps % chunk:
        raise ValueError(f"{steps} steps is not a multiple of log_every * records_per_chunk")
    if start_step % chunk or not 0 <= start_step <= steps:
        raise ValueError(f"start_step {start_step} is not a chunk boundary in 0..{steps}")
    pressure_GPa = np.zeros_like(T_K) if pressure_GPa is None else np.asarray(pressure_GPa)
    seeds = np.arange(n_rep) if seeds is None else np.asarray(seeds)
    R0 = jnp.asarray(R0)
    Rs = jnp.broadcast_to(R0, (n_rep, *R0.shape[-2:])) if R0.ndim == 2 else R0
    dtype = Rs.dtype
    integrator = make_integrator(
        system, ensemble, float(T_K[0, 0]) * KB, float(pressure_GPa[0, 0]) * GPA
    )
    box0 = jnp.asarray(system.box, dtype)
    boxes = jnp.broadcast_to(box0, (n_rep, 3, 3))
    nbrs = allocate_batch(system, Rs, boxes)
    kT = jnp.asarray(T_K * KB, dtype)
    pressure = jnp.asarray(pressure_GPa * GPA, dtype)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))
    states = jax.vmap(integrator.init)(keys, Rs, nbrs, kT[:, 0], pressure[:, 0])
    chunk_fn = jax.jit(jax.vmap(make_chunk_fn(system, integrator, log_every)))
    box_fn = jax.vmap(integrator.box)
    if restore is not None:
        states = restore(states)
        nbrs = allocate_batch(system, states.position, box_fn(states))
    records, reallocations = [], 0
    for start in range(start_step, steps, chunk):
        targets = [
            x[:, start : start + chunk].reshape(n_rep, -1, log_every) for x in (kT, pressure)
        ]
        for _ in range(MAX_RETRIES):
            box_start = box_fn(states)
            out = chunk_fn(states, nbrs, box_start, *targets)
            reason = system.check_boxes(np.asarray(out[5]))
            if reason is not None:
                raise RuntimeError(f"replicas, steps {start}-{start + chunk}: {reason}")
            if not bool(jnp.any(out[1].did_buffer_overflow)):
                break
            reallocations += 1
            nbrs = allocate_batch(system, states.position, box_start, 8 * reallocations)
        else:
            raise BlowUpError(
                f"replicas, steps {start}-{start + chunk}: neighbour lists keep overflowing"
            )
        states, nbrs, th = out[0], out[1], out[3]
        T = np.asarray(th["temperature"])
        bad = ~np.isfinite(T) | ~np.isfinite(np.asarray(th["potential"]))
        if bad.any():
            rep, rec = np.argwhere(bad)[0]
            raise BlowUpError(f"replica {rep}: NaN at step {start + (rec + 1) * log_every}")
        record = {k: np.asarray(v) for k, v in th.items() if k != "stress"}
        record["pressure"] = record["pressure"] / GPA
        records.append(record)
        if on_chunk is not None:
            record_boxes = np.asarray(out[5])[:, log_every - 1 :: log_every]
            on_chunk(start + chunk, states, record, np.asarray(out[4]), record_boxes)
    if not records:  # nothing left after start_step
        return ReplicaResult(states, {}, steps, reallocations)
    thermo = {k: np.concatenate([r[k] for r in records], axis=1) for k in records[0]}
    return ReplicaResult(states, thermo, steps, reallocations)
