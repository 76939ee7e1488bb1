"""Validation errors: RMSE and MAE of energy per atom (meV/atom), forces (meV/A), stress (GPa).

On device, :func:`error_sums` reduces one batch to sums (squared and absolute errors and counts);
on the host, :func:`accumulate` adds them over batches and :func:`finalize` turns them into RMSE
and MAE in user units, so the result does not depend on how structures were batched.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.graph import Graph

MEV = 1000.0
#: eV/A^3 -> GPa
EV_PER_A3_IN_GPA = 160.21766208

UNITS = {"energy": ("meV/atom", MEV), "forces": ("meV/A", MEV), "stress": ("GPa", EV_PER_A3_IN_GPA)}


def error_sums(predictions: dict[str, jax.Array], graph: Graph) -> dict[str, jax.Array]:
    """Sums of squared and absolute errors and their counts for one padded batch.

    Returns:
        scalars ``{label}_sq``, ``{label}_abs``, ``{label}_n`` for energy per atom, force
        components and stress components (labels missing from the graph are left out).
    """
    dt = predictions["energy"].dtype
    out = {}

    def add(name, residual, mask):
        mask = jnp.broadcast_to(mask, residual.shape)
        out[f"{name}_sq"] = jnp.sum(jnp.where(mask, residual * residual, 0.0))
        out[f"{name}_abs"] = jnp.sum(jnp.where(mask, jnp.abs(residual), 0.0))
        out[f"{name}_n"] = jnp.sum(mask).astype(dt)

    real = graph.graph_mask
    if graph.energy is not None:
        n_atoms = jnp.maximum(graph.n_node, 1).astype(dt)
        residual = (predictions["energy"] - graph.energy.astype(dt)) / n_atoms
        add("energy", residual, real & graph.has_energy)
    if graph.forces is not None:
        mask = graph.node_mask & graph.has_forces[graph.node_graph] & real[graph.node_graph]
        add("forces", predictions["forces"] - graph.forces.astype(dt), mask[:, None])
    if graph.stress is not None and "stress" in predictions:
        add(
            "stress",
            predictions["stress"] - graph.stress.astype(dt),
            (real & graph.has_stress)[:, None, None],
        )
    return out


def accumulate(total: dict[str, float] | None, sums: dict) -> dict[str, float]:
    """Add one batch's sums (arrays of any shape, summed) to a running host-side total."""
    total = dict(total or {})
    for name, value in sums.items():
        total[name] = total.get(name, 0.0) + float(np.sum(np.asarray(value)))
    return total


def finalize(total: dict[str, float]) -> dict[str, float]:
    """``{label}_rmse`` and ``{label}_mae`` in meV/atom, meV/A and GPa for labels with data."""
    out = {}
    for name, (_, factor) in UNITS.items():
        n = total.get(f"{name}_n", 0.0)
        if n > 0:
            out[f"{name}_rmse"] = float(np.sqrt(total[f"{name}_sq"] / n)) * factor
            out[f"{name}_mae"] = float(total[f"{name}_abs"] / n) * factor
    return out
