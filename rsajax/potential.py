"""The one potential interface: per-graph energies, and forces, virial and stress from them.

Training, jax-md, the ASE calculator and the benchmarks all go through :func:`make_potential`.
Forces are ``-dE/d positions``. The virial and stress come from a symmetric strain ``eps`` applied
to positions *and* cell inside the differentiated function (as in mace-torch / nequip):
``virial = -dE/d eps`` and ``stress = dE/d eps / |det cell|`` (ASE sign: positive = tensile).
Graphs without a 3D cell (open boundaries, zero cell) get a zero stress; their virial is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rsajax.graph import Graph

EnergyFn = Callable[[Any, Graph], jax.Array]


def energy_fn_from_model(model) -> EnergyFn:
    """``energy_fn(variables, graph) -> (G,)`` for a Flax model whose ``apply`` returns (G,)."""

    def energy_fn(variables, graph: Graph) -> jax.Array:
        return model.apply(variables, graph)

    return energy_fn


def strain_graph(graph: Graph, positions: jax.Array, strain: jax.Array) -> Graph:
    """Apply ``x -> x (1 + sym(strain))`` per graph to positions and cell.

    Args:
        positions: (N, 3). strain: (G, 3, 3), not necessarily symmetric (symmetrised here).
    """
    sym = 0.5 * (strain + jnp.swapaxes(strain, -1, -2))
    positions = positions + jnp.einsum("ni,nij->nj", positions, sym[graph.node_graph])
    cell = graph.cell.astype(positions.dtype)
    cell = cell + jnp.einsum("gij,gjk->gik", cell, sym)
    return graph.replace(positions=positions, cell=cell)


def make_potential(energy_fn: EnergyFn, compute_stress: bool = True) -> Callable:
    """One jitted function ``(variables, graph) -> dict`` with

    - ``energy``: (G,) per-graph energies (0 on the padding graph),
    - ``forces``: (N, 3), 0 on padded nodes,
    - ``virial``: (G, 3, 3) ``-dE/d eps``, and ``stress``: (G, 3, 3) in eV/A^3 (zero where the
      graph has no 3D cell); both only when ``compute_stress``.
    """

    def total(positions, strain, variables, graph):
        g = strain_graph(graph, positions, strain)
        energies = energy_fn(variables, g)
        energies = jnp.where(graph.graph_mask, energies, 0.0)
        return jnp.sum(energies), energies

    def compute(variables, graph: Graph) -> dict[str, jax.Array]:
        positions = graph.positions
        strain = jnp.zeros((graph.num_graphs, 3, 3), positions.dtype)
        argnums = (0, 1) if compute_stress else (0,)
        grads, energies = jax.grad(total, argnums=argnums, has_aux=True)(
            positions, strain, variables, graph
        )
        forces = jnp.where(graph.node_mask[:, None], -grads[0], 0.0)
        out = {"energy": energies, "forces": forces}
        if compute_stress:
            de_deps = grads[1]
            volume = jnp.abs(jnp.linalg.det(graph.cell.astype(positions.dtype)))
            has_cell = (volume > 0) & jnp.all(graph.pbc, axis=-1) & graph.graph_mask
            safe_volume = jnp.where(has_cell, volume, 1.0)
            out["virial"] = -de_deps
            out["stress"] = jnp.where(
                has_cell[:, None, None], de_deps / safe_volume[:, None, None], 0.0
            )
        return out

    return jax.jit(compute)
