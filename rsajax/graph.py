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
import jax
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


def pad_graph(
    *,
    species: Array,
    positions: Array,
    node_graph: Array,
    cell: Array,
    pbc: Array,
    n_node: Array,
    n_edge: Array,
    weight: Array,
    senders: Array,
    receivers: Array,
    cell_offsets: Array,
    edge_mask: Array | None = None,
    num_nodes: int | None = None,
    num_edges: int | None = None,
    num_graphs: int | None = None,
    **fields: Any,
) -> Graph:
    """The padded :class:`Graph` of ``n`` real nodes, ``e`` edge slots and ``g`` real graphs.

    The padding contract of this module, coded once (data batches, model initialisation and MD
    build their Graphs here). Slots ``N = num_nodes`` (default ``n + 1``), ``E = num_edges``
    (default ``e + 1``), ``G = num_graphs`` (default ``g + 1``); at least one padding node and one
    padding graph are kept:

    - padded nodes: Z = 0 at the origin, in the padding graph (the last slot, ``G - 1``);
    - padded edges: from the first padded node (index ``n``) to itself through the lattice offset
      (1, 0, 0), so through the padding graph's cell, never of zero length;
    - the padding graph's cell is ``PADDING_LENGTH`` times the identity, open; graph slots between
      the real ones and it are empty (zero cell, open); padded graphs have weight 0 and
      ``n_node = n_edge = 0``.

    Works on numpy arrays (host batches stay numpy) and on jax arrays, also inside ``jit``.

    Args:
        species, positions, node_graph: (n,), (n, 3), (n,) the real nodes.
        cell, pbc, n_node, n_edge, weight: (g, 3, 3), (g, 3), (g,), (g,), (g,) the real graphs.
        senders, receivers, cell_offsets: (e,), (e,), (e, 3) edge slots (indices into the n
            real nodes, or ``n`` for a slot the caller padded itself).
        edge_mask: (e,) bool, which of the e slots are edges (e.g. a neighbour list's slots
            beyond the cutoff are not); default all. A masked slot must be inert as given.
        fields: optional Graph fields (labels, ``kset``, ...) already sized to the padded slots,
            passed through unchanged.
    """
    arrays = (species, positions, cell, senders, receivers, cell_offsets, n_edge, edge_mask)
    xp = jnp if any(isinstance(a, jax.Array) for a in arrays) else np
    n, e, g = species.shape[0], senders.shape[0], cell.shape[0]
    N = n + 1 if num_nodes is None else num_nodes
    E = e + 1 if num_edges is None else num_edges
    G = g + 1 if num_graphs is None else num_graphs
    if not (N > n and E >= e and G > g):
        raise ValueError(
            f"{n} nodes, {e} edges, {g} graphs do not fit {N} node, {E} edge, {G} graph slots "
            "(one padding node and one padding graph are always kept)"
        )

    def pad(x, size: int, value, dtype=None):
        x = xp.asarray(x) if dtype is None else xp.asarray(x, dtype)
        return xp.concatenate([x, xp.full((size - x.shape[0], *x.shape[1:]), value, x.dtype)])

    cell = xp.asarray(cell)
    padding_cell = xp.eye(3, dtype=cell.dtype)[None] * PADDING_LENGTH
    real_edges = xp.arange(E) < e
    if edge_mask is not None:
        real_edges = real_edges & pad(edge_mask, E, False, bool)
    padding_offsets = xp.tile(xp.asarray([[1, 0, 0]], np.int32), (E - e, 1))
    return Graph(
        species=pad(species, N, 0, np.int32),
        positions=pad(positions, N, 0),
        cell=xp.concatenate([cell, xp.zeros((G - 1 - g, 3, 3), cell.dtype), padding_cell]),
        pbc=pad(pbc, G, False, bool),
        senders=pad(senders, E, n, np.int32),
        receivers=pad(receivers, E, n, np.int32),
        cell_offsets=xp.concatenate([xp.asarray(cell_offsets, np.int32), padding_offsets]),
        node_graph=pad(node_graph, N, G - 1, np.int32),
        node_mask=xp.arange(N) < n,
        edge_mask=real_edges,
        graph_mask=xp.arange(G) < g,
        n_node=pad(n_node, G, 0, np.int32),
        n_edge=pad(n_edge, G, 0, np.int32),
        weight=pad(weight, G, 0),
        **fields,
    )


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
