"""Node-only Graphs (no edges) for the RSA kernel and k-set tests."""

from __future__ import annotations

import numpy as np

from rsajax.graph import Graph


def batch_graph(structures, pad_graph: bool = True) -> Graph:
    """A node-only Graph from ``[(positions, cell, pbc), ...]`` (O atoms), plus the data layer's
    padding graph (one node, a huge open cell) unless ``pad_graph`` is False."""
    pos, node_graph, cells, pbcs = [], [], [], []
    for g, (p, cell, pbc) in enumerate(structures):
        pos.append(np.asarray(p, float))
        node_graph += [g] * len(p)
        cells.append(np.asarray(cell, float))
        pbcs.append(list(pbc))
    n_node = [len(p) for p in pos]
    if pad_graph:
        pos.append(np.zeros((1, 3)))
        node_graph.append(len(structures))
        cells.append(np.eye(3) * 1000.0)
        pbcs.append([False] * 3)
        n_node.append(1)
    num_graphs = len(cells)
    node_mask = np.arange(len(node_graph)) < sum(len(p) for p, _, _ in structures)
    return Graph(
        species=np.where(node_mask, 8, 0).astype(np.int32),
        positions=np.concatenate(pos),
        cell=np.stack(cells),
        pbc=np.asarray(pbcs, bool),
        senders=np.zeros(0, np.int32),
        receivers=np.zeros(0, np.int32),
        cell_offsets=np.zeros((0, 3), np.int32),
        node_graph=np.asarray(node_graph, np.int32),
        node_mask=node_mask,
        edge_mask=np.zeros(0, bool),
        graph_mask=np.arange(num_graphs) < len(structures),
        n_node=np.asarray(n_node, np.int32),
        n_edge=np.zeros(num_graphs, np.int32),
        weight=np.ones(num_graphs),
    )


def single_graph(positions, cell, pbc=(True, True, True)) -> Graph:
    """One structure plus the padding graph."""
    return batch_graph([(positions, cell, pbc)])
