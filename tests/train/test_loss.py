"""Loss terms against hand-computed values: weights, masks, per-atom energy, Huber vs MSE."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.data import Caps, atoms_to_record, collate
from rsajax.train.loss import check_labels, loss_terms, residual_penalty, total_loss
from tests.train.helpers import emt_structures


def test_huber_equals_mse_inside_delta_and_is_linear_outside():
    r = jnp.array([-0.004, 0.002, 0.5, -2.0])
    mse = residual_penalty(r, "mse", 0.01)
    huber = residual_penalty(r, "huber", 0.01)
    np.testing.assert_allclose(huber[:2], mse[:2])
    np.testing.assert_allclose(huber[2:], 0.01**2 + 2 * 0.01 * (jnp.abs(r[2:]) - 0.01))
    with pytest.raises(ValueError, match="unknown loss kind"):
        residual_penalty(r, "l3", 0.01)


def test_loss_terms_match_numpy_with_weights_and_missing_labels():
    structures = emt_structures(3, seed=4)
    structures[1].info["config_weight"] = 2.5
    records = [atoms_to_record(a, 4.0) for a in structures]
    # Structure 2 has no forces and no stress: rebuild its record without them.
    import dataclasses

    records[2] = dataclasses.replace(records[2], forces=None, stress=None)
    graph = collate(records, Caps(20, 400, 5))
    rng = np.random.default_rng(0)
    pred = {
        "energy": jnp.asarray(graph.energy + rng.normal(0, 0.1, 5)),
        "forces": jnp.asarray(graph.forces + rng.normal(0, 0.1, graph.forces.shape)),
        "stress": jnp.asarray(graph.stress + rng.normal(0, 0.01, graph.stress.shape)),
    }
    terms = loss_terms(pred, graph, "mse")
    w = np.array([1.0, 2.5, 1.0])
    n = np.array([r.n_node for r in records])
    de = (np.asarray(pred["energy"])[:3] - [r.energy for r in records]) / n
    np.testing.assert_allclose(terms["energy"], np.sum(w * de**2) / 3)
    df = np.asarray(pred["forces"])[:8] - np.concatenate([records[0].forces, records[1].forces])
    node_w = np.repeat(w[:2], 4)
    np.testing.assert_allclose(terms["forces"], np.sum(node_w * np.mean(df**2, -1)) / 8)
    ds = np.asarray(pred["stress"])[:2] - np.stack([records[0].stress, records[1].stress])
    np.testing.assert_allclose(terms["stress"], np.sum(w[:2] * np.mean(ds**2, (-1, -2))) / 2)
    assert "dipole" not in terms  # the potential predicts no dipole
    total = total_loss(terms, {"energy": 1.0, "forces": 10.0, "stress": 0.0})
    np.testing.assert_allclose(total, terms["energy"] + 10 * terms["forces"])


def test_check_labels_names_the_dataset_and_the_term():
    with pytest.raises(ValueError, match=r"data\.xyz: no training structure has forces"):
        check_labels(
            {"energy": 1.0, "forces": 1.0},
            {"energy": 5, "forces": 0},
            {"energy", "forces"},
            "data.xyz",
        )
    check_labels(
        {"energy": 1.0, "forces": 0.0}, {"energy": 5, "forces": 0}, {"energy", "forces"}, "data.xyz"
    )
