"""Static-shape batching: a few padding buckets chosen from dataset statistics, and shuffling."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from rsajax.data.graphs import Caps, GraphRecord, collate
from rsajax.graph import Graph


def _round_up(value: int, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


def choose_buckets(
    records: Sequence[GraphRecord],
    batch_size: int,
    num_buckets: int = 3,
    seed: int = 0,
    num_trials: int = 20,
    multiple: int = 8,
) -> list[Caps]:
    """Padding caps for randomly shuffled batches of ``batch_size`` structures.

    The largest bucket is a guaranteed bound (the ``batch_size`` largest structures together), so
    every batch fits; smaller buckets sit at quantiles of node and edge totals over ``num_trials``
    simulated shuffles. Each bucket is one compiled shape: ``num_buckets`` bounds recompilation.

    Returns:
        Caps sorted from small to large (duplicates removed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    if not records:
        raise ValueError("no structures to batch")
    nodes = np.array([r.n_node for r in records])
    edges = np.array([r.n_edge for r in records])
    k = min(batch_size, len(records))
    bound_nodes = int(np.sort(nodes)[-k:].sum()) + 1
    bound_edges = int(np.sort(edges)[-k:].sum())
    rng = np.random.default_rng(seed)
    node_totals, edge_totals = [], []
    for _ in range(num_trials):
        order = rng.permutation(len(records))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            node_totals.append(nodes[chunk].sum() + 1)
            edge_totals.append(edges[chunk].sum())
    quantiles = np.arange(1, num_buckets) / num_buckets
    caps = []
    for q in quantiles:
        n = _round_up(int(np.quantile(node_totals, q)), multiple)
        e = _round_up(max(int(np.quantile(edge_totals, q)), 1), multiple)
        caps.append(Caps(n, e, batch_size + 1))
    caps.append(
        Caps(
            _round_up(bound_nodes, multiple),
            _round_up(max(bound_edges, 1), multiple),
            batch_size + 1,
        )
    )
    unique = sorted(set(caps), key=lambda c: (c.n_node, c.n_edge))
    return unique


def pick_bucket(buckets: Sequence[Caps], records: Sequence[GraphRecord]) -> Caps:
    """The smallest bucket that fits the batch."""
    n_node = sum(r.n_node for r in records)
    n_edge = sum(r.n_edge for r in records)
    for caps in buckets:
        if caps.fits(n_node, n_edge, len(records)):
            return caps
    raise ValueError(f"batch with {n_node} nodes and {n_edge} edges fits no bucket {list(buckets)}")


class GraphDataset:
    """Batches of padded Graphs over a fixed set of records.

    The order of epoch ``e`` is a pure function of ``(seed, e)``, so a training run can resume at
    any (epoch, batch) position exactly.

    Args:
        records: structures with neighbour lists (see :func:`rsajax.data.atoms_to_record`).
        batch_size: structures per batch.
        shuffle: reshuffle every epoch.
        seed: shuffling seed.
        buckets: padding caps; chosen by :func:`choose_buckets` when None.
        drop_last: drop a last incomplete batch.
        dtype: float dtype of positions and labels.
        kset_fn: attaches a long-range model's k-set to each batch (static size per dataset).
    """

    def __init__(
        self,
        records: Sequence[GraphRecord],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        buckets: Sequence[Caps] | None = None,
        num_buckets: int = 3,
        drop_last: bool = False,
        dtype=np.float64,
        kset_fn=None,
    ):
        self.records = list(records)
        self.kset_fn = kset_fn
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.dtype = dtype
        self.buckets = (
            list(buckets)
            if buckets is not None
            else choose_buckets(self.records, batch_size, num_buckets=num_buckets, seed=seed)
        )

    def __len__(self) -> int:
        full, rest = divmod(len(self.records), self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def order(self, epoch: int) -> np.ndarray:
        """Record indices in the order of ``epoch``."""
        if not self.shuffle:
            return np.arange(len(self.records))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.records))

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[Graph]:
        """Padded batches of ``epoch``, beginning at batch number ``start``."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            chosen = [
                self.records[i] for i in order[b * self.batch_size : (b + 1) * self.batch_size]
            ]
            yield collate(
                chosen, pick_bucket(self.buckets, chosen), dtype=self.dtype, kset_fn=self.kset_fn
            )

    def __iter__(self) -> Iterator[Graph]:
        return self.batches(0)
