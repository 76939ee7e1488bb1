"""The one potential interface: per-graph energies, and forces, virial and stress from them.

Training, the ASE calculator and the benchmarks go through :func:`make_potential`. MD shares the
energy (:func:`energy_fn_from_model`) but not the derivatives: jax-md wants an energy function of
fractional positions, neighbour list, box and strain, and takes forces and the integrator's
pressure from it itself (``rsajax.md.adapter``, ``rsajax.md.integrators.thermo``);
``tests/md/test_adapter*.py`` check that its energy, forces and stress equal these.
Forces are ``-dE/d positions``. The virial and stress come from a symmetric strain ``eps`` applied
to positions *and* cell inside the differentiated function (as in mace-torch / nequip):
``virial = -dE/d eps`` and ``stress = dE/d eps / |det cell|`` (ASE sign: positive = tensile).
Graphs without a 3D cell (open boundaries, zero cell) get a zero stress; their virial is kept.

An energy function may also return ``(energy, long_range_energy)`` (both (G,), e.g.
``energy_fn_from_model(model, long_range_part=True)``): forces, virial and stress still come from
the total ``energy`` only, and the long-range part is reported beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rsajax.graph import Graph

#: ``(variables, graph) -> (G,)`` energies, or ``(energy (G,), long_range_energy (G,))``.
EnergyFn = Callable[[Any, Graph], "jax.Array | tuple[jax.Array, jax.Array]"]


def energy_fn_from_model(model, long_range_part: bool = False) -> EnergyFn:
    """``energy_fn(variables, graph) -> (G,)`` for a Flax model whose ``apply`` returns (G,).

    With ``long_range_part``: ``energy_fn(variables, graph) -> (energy, long_range_energy)``, both
    (G,), from ``MACE.energy_parts`` (the RSA branch's additive energy for the ``energy``
    combination; for the feature combinations the energy minus that with the RSA outputs zeroed,
    one more forward pass). Zeros for a short-range model or a model without ``energy_parts``.
    """
    if not long_range_part:

        def energy_fn(variables, graph: Graph) -> jax.Array:
            return model.apply(variables, graph)

        return energy_fn

    parts = getattr(type(model), "energy_parts", None)

    def energy_parts_fn(variables, graph: Graph) -> tuple[jax.Array, jax.Array]:
        if parts is None:
            energy = model.apply(variables, graph)
            return energy, jnp.zeros_like(energy)
        return model.apply(variables, graph, method=parts)

    return energy_parts_fn


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
      graph has no 3D cell); both only when ``compute_stress``,
    - ``long_range_energy``: (G,) the long-range part of ``energy`` (0 on the padding graph), only
      when ``energy_fn`` returns ``(energy, long_range_energy)``. Forces and stress are those of
      the total energy either way.
    """

    def total(positions, strain, variables, graph):
        g = strain_graph(graph, positions, strain)
        out = energy_fn(variables, g)
        energies, long_range = out if isinstance(out, tuple) else (out, None)
        energies = jnp.where(graph.graph_mask, energies, 0.0)
        if long_range is not None:
            long_range = jnp.where(graph.graph_mask, long_range, 0.0)
        return jnp.sum(energies), (energies, long_range)

    def compute(variables, graph: Graph) -> dict[str, jax.Array]:
        positions = graph.positions
        strain = jnp.zeros((graph.num_graphs, 3, 3), positions.dtype)
        argnums = (0, 1) if compute_stress else (0,)
        grads, (energies, long_range) = jax.grad(total, argnums=argnums, has_aux=True)(
            positions, strain, variables, graph
        )
        forces = jnp.where(graph.node_mask[:, None], -grads[0], 0.0)
        out = {"energy": energies, "forces": forces}
        if long_range is not None:
            out["long_range_energy"] = long_range
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
