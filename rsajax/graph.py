"""The one batch type that flows through rsajax: a padded, batched, periodic graph.

Conventions (shared by data, models, MD, training):

- ``species`` holds atomic numbers (Z); padded nodes have Z = 0. Models map Z to their own
  element table, so a Graph does not depend on a model.
- ``cell`` rows are lattice vectors (ASE convention). Open boundaries keep a zero cell.
- Edges follow mace-torch / vesin: the vector of edge e is
  ``positions[receivers[e]] - positions[senders[e]] + cell_offsets[e] @ cell[graph_of_edge]``.
- Padding is inert: padded nodes sit in a padding graph (the last graph) with Z = 0; padded edges
  join the first padded node to itself through a lattice vector of length ``PADDING_LENGTH`` of the
  padding graph's cell, so they never have zero length and lie beyond any cutoff.
- Labels are optional (``None`` when the dataset has none). ``stress`` is the full 3x3 tensor in
  eV/A^3 with ASE's sign (positive = tensile, ``stress = (1/V) dE/d(strain)``).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray | np.ndarray

#: Length (A) of the padding graph's lattice vectors; far beyond any interatomic cutoff.
PADDING_LENGTH = 1000.0


@flax.struct.dataclass
class Graph:
    """A batch of ``G`` graph slots with ``N`` node slots and ``E`` edge slots.

    Attributes:
        species: (N,) int32 atomic numbers, 0 on padded nodes.
        positions: (N, 3) Cartesian positions in A.
        cell: (G, 3, 3) lattice vectors as rows, A; zeros for open boundaries.
        pbc: (G, 3) bool periodicity per lattice direction.
        senders: (E,) int32 node index where each edge starts.
        receivers: (E,) int32 node index where each edge ends.
        cell_offsets: (E, 3) integer lattice offsets (stored as int32) of the receiver's image.
        node_graph: (N,) int32 index of the graph each node belongs to.
        node_mask: (N,) bool, True on real nodes.
        edge_mask: (E,) bool, True on real edges.
        graph_mask: (G,) bool, True on real graphs.
        n_node: (G,) int32 real nodes per graph.
        n_edge: (G,) int32 real edges per graph.
        energy: (G,) total energy, eV, or None.
        forces: (N, 3) eV/A, or None.
        stress: (G, 3, 3) eV/A^3 (ASE sign), or None.
        dipole: (G, 3) e*A, or None.
        total_charge: (G,) net charge of each structure in e (an input, not a label: ASE's
            ``atoms.info["charge"]``), or None for all neutral. Long-range models with
            ``RSAConfig.net_charge`` use it in periodic cells.
        weight: (G,) per-structure loss weight (0 on padding).
        has_energy, has_forces, has_stress, has_dipole: (G,) bool, which labels each structure has.
        kset: the k-vectors of reciprocal-space attention (:class:`rsajax.nn.rsa.kset.KSet`), chosen
            on the host for long-range models; None for short-range models.
    """

    species: Array
    positions: Array
    cell: Array
    pbc: Array
    senders: Array
    receivers: Array
    cell_offsets: Array
    node_graph: Array
    node_mask: Array
    edge_mask: Array
    graph_mask: Array
    n_node: Array
    n_edge: Array
    weight: Array
    energy: Array | None = None
    forces: Array | None = None
    stress: Array | None = None
    dipole: Array | None = None
    total_charge: Array | None = None
    has_energy: Array | None = None
    has_forces: Array | None = None
    has_stress: Array | None = None
    has_dipole: Array | None = None
    kset: Any = None

    @property
    def num_graphs(self) -> int:
        """G, the number of graph slots including the padding graph."""
        return self.cell.shape[0]

    @property
    def num_nodes(self) -> int:
        """N, the number of node slots including padding."""
        return self.species.shape[0]

    @property
    def num_edges(self) -> int:
        """E, the number of edge slots including padding."""
        return self.senders.shape[0]


def edge_vectors(positions: Array, graph: Graph) -> jnp.ndarray:
    """Edge vectors from (possibly strained) positions and the graph's cell.

    Kept as a function of ``positions`` and ``graph.cell`` so that autodiff through it gives forces
    (d/d positions) and the virial (d/d a strain applied to positions and cell together).

    Args:
        positions: (N, 3) positions.
        graph: the batch; its ``cell`` (G, 3, 3) is used as is.
    Returns:
        (E, 3) vectors from sender to receiver image.
    """
    edge_graph = graph.node_graph[graph.senders]
    offsets = graph.cell_offsets.astype(positions.dtype)
    shift = jnp.einsum("ei,eij->ej", offsets, graph.cell[edge_graph])
    return positions[graph.receivers] - positions[graph.senders] + shift


def safe_norm(vectors: Array, mask: Array, axis: int = -1) -> jnp.ndarray:
    """Euclidean norm that is finite with a finite gradient even where ``mask`` is False.

    Uses the double-``where`` pattern: masked rows are replaced by a unit vector *before* the
    square root, so no 0/0 appears in the backward pass.

    Args:
        vectors: (..., 3).
        mask: (...,) bool; masked-out rows return 1.0.
    """
    squared = jnp.sum(vectors * vectors, axis=axis)
    squared = jnp.where(mask, squared, 1.0)
    return jnp.sqrt(squared)


def segment_sum_nodes(values: Array, graph: Graph) -> jnp.ndarray:
    """Sum node values (N, ...) into graph slots (G, ...), ignoring padded nodes."""
    import jax

    mask = graph.node_mask.reshape((-1,) + (1,) * (values.ndim - 1))
    return jax.ops.segment_sum(
        jnp.where(mask, values, 0), graph.node_graph, num_segments=graph.num_graphs
    )
