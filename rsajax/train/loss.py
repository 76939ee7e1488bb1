"""Weighted training loss over energy per atom, forces, stress and dipole.

Each term is a weighted mean over the structures (or atoms) that carry the label: per-structure
weights come from ``graph.weight`` (``config_weight`` in the file, 0 on padding) and the masks from
``graph.has_*``. A term whose label no structure in the batch carries contributes zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rsajax.graph import Graph

TERMS = ("energy", "forces", "stress", "dipole")


def residual_penalty(residual: jax.Array, kind: str, delta: float) -> jax.Array:
    """Elementwise penalty: ``r^2`` (mse) or ``2 * huber(r, delta)`` (equal to r^2 for |r| < delta).

    The factor 2 makes the Huber loss coincide with MSE near zero, as in mace-torch.
    """
    if kind == "mse":
        return residual * residual
    if kind == "huber":
        abs_r = jnp.abs(residual)
        quadratic = jnp.minimum(abs_r, delta)
        return quadratic * quadratic + 2.0 * delta * (abs_r - quadratic)
    raise ValueError(f"unknown loss kind {kind!r}; choose mse or huber")


def _weighted_mean(values: jax.Array, weights: jax.Array, mask: jax.Array) -> jax.Array:
    """sum(w * v) / count(mask), 0 when nothing is masked in. values, weights, mask: (K,)."""
    count = jnp.sum(mask)
    total = jnp.sum(jnp.where(mask, weights * values, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)


def loss_terms(
    predictions: dict[str, jax.Array], graph: Graph, kind: str = "mse", delta: float = 0.01
) -> dict[str, jax.Array]:
    """Unweighted-by-term loss per label: {"energy", "forces", "stress", "dipole"} -> scalar.

    Args:
        predictions: ``energy`` (G,), ``forces`` (N, 3), optional ``stress`` (G, 3, 3) and
            ``dipole`` (G, 3), as returned by :func:`rsajax.potential.make_potential`.
        graph: the batch with labels.
    """
    dt = predictions["energy"].dtype
    weight = graph.weight.astype(dt)
    real = graph.graph_mask
    n_atoms = jnp.maximum(graph.n_node, 1).astype(dt)
    terms = {}
    if graph.energy is not None:
        residual = (predictions["energy"] - graph.energy.astype(dt)) / n_atoms
        mask = real & graph.has_energy
        terms["energy"] = _weighted_mean(residual_penalty(residual, kind, delta), weight, mask)
    if graph.forces is not None:
        residual = predictions["forces"] - graph.forces.astype(dt)
        per_atom = jnp.mean(residual_penalty(residual, kind, delta), axis=-1)
        node_weight = weight[graph.node_graph]
        mask = graph.node_mask & graph.has_forces[graph.node_graph] & real[graph.node_graph]
        terms["forces"] = _weighted_mean(per_atom, node_weight, mask)
    if graph.stress is not None and "stress" in predictions:
        residual = predictions["stress"] - graph.stress.astype(dt)
        per_graph = jnp.mean(residual_penalty(residual, kind, delta), axis=(-1, -2))
        terms["stress"] = _weighted_mean(per_graph, weight, real & graph.has_stress)
    if graph.dipole is not None and "dipole" in predictions:
        residual = predictions["dipole"] - graph.dipole.astype(dt)
        per_graph = jnp.mean(residual_penalty(residual, kind, delta), axis=-1)
        terms["dipole"] = _weighted_mean(per_graph, weight, real & graph.has_dipole)
    return terms


def total_loss(terms: dict[str, jax.Array], weights: dict[str, float]) -> jax.Array:
    """sum_t weights[t] * terms[t] over the terms present."""
    return sum(weights.get(name, 0.0) * value for name, value in terms.items())


def check_labels(
    weights: dict[str, float],
    counts: dict[str, int],
    predicted: set[str],
    source: str,
    section: str = "loss",
) -> None:
    """Fail before any compute when a weighted term cannot be trained.

    Args:
        weights: term -> loss weight. counts: term -> number of training structures with that
            label. predicted: terms the model predicts. source: the dataset's name for messages.
        section: the config section the weights come from (``loss`` or ``stage_two``).
    """
    for name in TERMS:
        if weights.get(name, 0.0) <= 0:
            continue
        if name not in predicted:
            raise ValueError(
                f"{section}.{name}_weight = {weights[name]} but the model does not "
                f"predict {name}; set {section}.{name}_weight to 0"
            )
        if counts.get(name, 0) == 0:
            raise ValueError(
                f"{source}: no training structure has {name} labels but "
                f"{section}.{name}_weight = {weights[name]}; set it to 0 or use a "
                f"dataset with {name}"
            )
