"""Structures -> padded :class:`~rsajax.graph.Graph` batches (host side, numpy)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np
from ase import Atoms

from rsajax.data.labels import get_labels
from rsajax.data.neighbors import neighbor_list
from rsajax.graph import Graph, pad_graph


@dataclasses.dataclass(frozen=True)
class GraphRecord:
    """One structure with its neighbour list, ready to batch. Arrays are numpy.

    Shapes: numbers (n,), positions (n, 3), cell (3, 3), pbc (3,), senders/receivers (e,),
    cell_offsets (e, 3); labels as in :func:`rsajax.data.labels.get_labels` or None.
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    cell_offsets: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    dipole: np.ndarray | None = None
    weight: float = 1.0
    source: str = ""
    total_charge: float = 0.0

    @property
    def n_node(self) -> int:
        return len(self.numbers)

    @property
    def n_edge(self) -> int:
        return len(self.senders)


@dataclasses.dataclass(frozen=True)
class Caps:
    """Static padded sizes of a batch: node, edge and graph slots (padding included)."""

    n_node: int
    n_edge: int
    n_graph: int

    def fits(self, n_node: int, n_edge: int, n_graph: int) -> bool:
        """Whether real counts fit, keeping one padding node and one padding graph."""
        return n_node < self.n_node and n_edge <= self.n_edge and n_graph < self.n_graph


def atoms_to_record(atoms: Atoms, cutoff: float) -> GraphRecord:
    """Neighbour list and labels of one structure."""
    senders, receivers, offsets = neighbor_list(atoms, cutoff)
    labels = get_labels(atoms)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    return GraphRecord(
        numbers=np.asarray(atoms.numbers, dtype=np.int32),
        positions=np.asarray(atoms.positions, dtype=np.float64),
        cell=cell,
        pbc=np.asarray(atoms.pbc, dtype=bool),
        senders=senders,
        receivers=receivers,
        cell_offsets=offsets,
        energy=None if labels["energy"] is None else float(labels["energy"]),
        forces=labels["forces"],
        stress=labels["stress"],
        dipole=labels["dipole"],
        weight=float(atoms.info.get("config_weight", 1.0)),
        source=str(atoms.info.get("rsajax_source", "")),
        total_charge=total_charge(atoms),
    )


def total_charge(atoms: Atoms) -> float:
    """Net charge of a structure in e: ``atoms.info["charge"]`` (ASE's key), 0 when absent."""
    value = atoms.info.get("charge", 0.0)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"info['charge'] must be a number (e), got {value!r}") from None


#: Host function that chooses a long-range model's k-set for a batch (``Graph -> KSet``).
KSetFn = Callable[[Graph], object]


def collate(
    records: Sequence[GraphRecord],
    caps: Caps | None = None,
    dtype=np.float64,
    kset_fn: KSetFn | None = None,
) -> Graph:
    """Concatenate records into one padded Graph.

    With ``caps=None`` the batch is padded minimally (one padding node, one padding edge, one
    padding graph). Padding follows the contract in :mod:`rsajax.graph`. ``kset_fn`` (for
    long-range models) attaches the batch's k-set as ``graph.kset``.
    """
    if not records:
        raise ValueError("cannot collate an empty list of structures")
    n_node = sum(r.n_node for r in records)
    n_edge = sum(r.n_edge for r in records)
    n_graph = len(records)
    if caps is None:
        caps = Caps(n_node + 1, n_edge + 1, n_graph + 1)
    if not caps.fits(n_node, n_edge, n_graph):
        raise ValueError(
            f"batch of {n_graph} graphs, {n_node} nodes, {n_edge} edges does not fit {caps} "
            "(one padding node and one padding graph are always kept)"
        )
    N, G = caps.n_node, caps.n_graph
    # Labels are laid out on the padded slots (zeros and has_* False where a structure has none).
    energy = np.zeros(G, dtype)
    forces = np.zeros((N, 3), dtype)
    stress = np.zeros((G, 3, 3), dtype)
    dipole = np.zeros((G, 3), dtype)
    charge = np.zeros(G, dtype)
    has = {name: np.zeros(G, bool) for name in ("energy", "forces", "stress", "dipole")}
    starts = np.cumsum([0] + [r.n_node for r in records])[:-1]  # first node of each record
    for g, r in enumerate(records):
        nodes = slice(starts[g], starts[g] + r.n_node)
        charge[g] = r.total_charge
        if r.energy is not None:
            energy[g], has["energy"][g] = r.energy, True
        if r.forces is not None:
            forces[nodes], has["forces"][g] = r.forces, True
        if r.stress is not None:
            stress[g], has["stress"][g] = r.stress, True
        if r.dipole is not None:
            dipole[g], has["dipole"][g] = r.dipole, True

    graph = pad_graph(
        species=np.concatenate([r.numbers for r in records]),
        positions=np.concatenate([r.positions for r in records]).astype(dtype),
        node_graph=np.repeat(np.arange(n_graph), [r.n_node for r in records]),
        cell=np.stack([r.cell for r in records]).astype(dtype),
        pbc=np.stack([r.pbc for r in records]),
        n_node=np.array([r.n_node for r in records]),
        n_edge=np.array([r.n_edge for r in records]),
        weight=np.array([r.weight for r in records], dtype),
        senders=np.concatenate([r.senders + s for r, s in zip(records, starts, strict=True)]),
        receivers=np.concatenate([r.receivers + s for r, s in zip(records, starts, strict=True)]),
        cell_offsets=np.concatenate([r.cell_offsets for r in records]).reshape(-1, 3),
        num_nodes=N,
        num_edges=caps.n_edge,
        num_graphs=G,
        energy=energy,
        forces=forces,
        stress=stress,
        dipole=dipole,
        total_charge=charge,
        has_energy=has["energy"],
        has_forces=has["forces"],
        has_stress=has["stress"],
        has_dipole=has["dipole"],
    )
    if kset_fn is None:
        return graph
    # The k-set's quadrature nodes and weights follow the graph's dtype (a float32 batch must not
    # carry float64 inputs that promote the model under x64).
    kset = jax.tree_util.tree_map(
        lambda a: np.asarray(a, dtype) if np.issubdtype(np.asarray(a).dtype, np.floating) else a,
        kset_fn(graph),
    )
    return graph.replace(kset=kset)


def atoms_to_graph(
    atoms: Atoms | Sequence[Atoms],
    cutoff: float,
    caps: Caps | None = None,
    dtype=np.float64,
    kset_fn: KSetFn | None = None,
) -> Graph:
    """One padded Graph from one structure or a list of them (see :func:`collate`)."""
    structures = [atoms] if isinstance(atoms, Atoms) else list(atoms)
    records = [atoms_to_record(a, cutoff) for a in structures]
    return collate(records, caps=caps, dtype=dtype, kset_fn=kset_fn)


def graph_to_atoms(graph: Graph, index: int = 0) -> Atoms:
    """The real structure in graph slot ``index`` as ASE Atoms (positions, cell, pbc only)."""
    node_graph = np.asarray(graph.node_graph)
    nodes = (node_graph == index) & np.asarray(graph.node_mask)
    return Atoms(
        numbers=np.asarray(graph.species)[nodes],
        positions=np.asarray(graph.positions)[nodes],
        cell=np.asarray(graph.cell)[index],
        pbc=np.asarray(graph.pbc)[index],
    )
