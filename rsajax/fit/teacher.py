"""Energy and force loss and errors on teacher data: what keeps a structure-fitted model honest.

A fit to S(Q) alone can trade the potential's accuracy for a better peak. The fine-tuning loss
therefore adds the training loss (energy per atom and forces, :func:`rsajax.train.loss.loss_terms`)
on a fixed set of labelled teacher frames, and the errors on a held-out set are reported before
and after (:func:`teacher_errors`, the same RMSE as ``rsajax train``'s validation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
from ase import Atoms

from rsajax.data.graphs import atoms_to_graph
from rsajax.graph import Graph
from rsajax.potential import energy_fn_from_model, make_potential
from rsajax.train.loss import loss_terms, total_loss
from rsajax.train.metrics import accumulate, error_sums, finalize


def teacher_graph(frames: Sequence[Atoms], cutoff: float, dtype=np.float64) -> Graph:
    """One padded graph of labelled frames (energy and forces in ``atoms.calc`` or arrays)."""
    if not frames:
        raise ValueError("no teacher frames given")
    return atoms_to_graph(list(frames), cutoff, dtype=dtype)


def teacher_loss(model, weights: dict[str, float] | None = None) -> Callable:
    """``loss(variables, graph) -> scalar``: ``energy_weight * MSE(E/atom) + forces_weight *
    MSE(F)`` (eV^2/atom^2 and eV^2/A^2), default weights 1 and 10 as in ``rsajax demo``."""
    weights = {"energy": 1.0, "forces": 10.0} if weights is None else weights
    potential = make_potential(energy_fn_from_model(model), compute_stress=False)

    def loss(variables, graph: Graph):
        return total_loss(loss_terms(potential(variables, graph), graph), weights)

    return loss


def teacher_errors(model, variables, graph: Graph) -> dict[str, float]:
    """``{"energy_rmse": meV/atom, "forces_rmse": meV/A, ... _mae}`` on ``graph``'s labels."""
    potential = make_potential(energy_fn_from_model(model), compute_stress=False)
    sums = jax.device_get(error_sums(potential(variables, graph), graph))
    return finalize(accumulate(None, sums))
