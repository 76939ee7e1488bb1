"""Global batches for data parallelism: D sub-batches padded to the same caps and stacked.

A global batch of ``batch_size`` structures is split into ``sub_batches`` contiguous chunks of the
epoch's order (:meth:`rsajax.data.GraphDataset.order`, a pure function of seed and epoch, so a run
can resume at any (epoch, batch)). Every chunk is collated with the smallest padding bucket that
fits all chunks, so the stack has one static shape per bucket.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import numpy as np

from rsajax.data import Caps, GraphDataset, GraphRecord, collate
from rsajax.graph import Graph


def stack_graphs(graphs: Sequence[Graph]) -> Graph:
    """Stack D Graphs of identical caps on a new leading axis: every array gets shape (D, ...)."""
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *graphs)


class GlobalBatches:
    """Deterministic stacked batches of one dataset.

    Args:
        records: the structures.
        batch_size: structures per global batch (all sub-batches together).
        sub_batches: D, the number of stacked sub-batches (a multiple of the device count).
        num_buckets, shuffle, seed, dtype, kset_fn: as in :class:`rsajax.data.GraphDataset`
            (``kset_fn`` attaches a long-range model's k-set to every sub-batch).
    """

    def __init__(
        self,
        records: Sequence[GraphRecord],
        batch_size: int,
        sub_batches: int,
        *,
        num_buckets: int = 2,
        shuffle: bool = True,
        seed: int = 0,
        dtype=np.float64,
        kset_fn=None,
    ):
        if batch_size % sub_batches:
            raise ValueError(
                f"batch size {batch_size} is not a multiple of the {sub_batches} "
                "sub-batches (one per device, or parallel.sub_batches)"
            )
        self.batch_size, self.sub_batches, self.dtype = batch_size, sub_batches, dtype
        self.kset_fn = kset_fn
        self.dataset = GraphDataset(
            records,
            batch_size // sub_batches,
            shuffle=shuffle,
            seed=seed,
            num_buckets=num_buckets,
            dtype=dtype,
        )
        self.records = self.dataset.records

    def __len__(self) -> int:
        return -(-len(self.records) // self.batch_size)

    def _caps(self, chunks: list[list[GraphRecord]]) -> Caps:
        nodes = max(sum(r.n_node for r in c) for c in chunks)
        edges = max(sum(r.n_edge for r in c) for c in chunks)
        graphs = max(len(c) for c in chunks)
        for caps in self.dataset.buckets:
            if caps.fits(nodes, edges, graphs):
                return caps
        raise ValueError(f"sub-batch of {nodes} nodes, {edges} edges fits no bucket")

    def batch(self, epoch: int, index: int) -> tuple[Graph, np.ndarray]:
        """Global batch ``index`` of ``epoch``.

        Returns:
            (stacked Graph with arrays (D, ...), active (D,) bool). A sub-batch is inactive only in
            a last batch with fewer than D structures; it then repeats a structure and is ignored
            by the loss.
        """
        order = self.dataset.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        parts = np.array_split(order, self.sub_batches)
        active = np.array([len(p) > 0 for p in parts])
        chunks = [[self.records[i] for i in (p if len(p) else order[:1])] for p in parts]
        caps = self._caps(chunks)
        graphs = [collate(c, caps, dtype=self.dtype, kset_fn=self.kset_fn) for c in chunks]
        return stack_graphs(graphs), active

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Graph, np.ndarray]]:
        """Global batches of ``epoch`` from number ``start`` on."""
        for index in range(start, len(self)):
            yield self.batch(epoch, index)
