"""Host-side data: read and validate structures, neighbour lists, padding, batching, statistics."""

from rsajax.data.batching import GraphDataset, choose_buckets, pick_bucket
from rsajax.data.errors import StructureError
from rsajax.data.graphs import (
    Caps,
    GraphRecord,
    atoms_to_graph,
    atoms_to_record,
    collate,
    graph_to_atoms,
)
from rsajax.data.io import ReadReport, read_structures, validate_structures
from rsajax.data.labels import attach_labels, get_labels, standardize_labels
from rsajax.data.neighbors import neighbor_list
from rsajax.data.statistics import DatasetStatistics, compute_statistics, least_squares_e0
from rsajax.data.validate import validate_atoms

__all__ = [
    "Caps",
    "DatasetStatistics",
    "GraphDataset",
    "GraphRecord",
    "ReadReport",
    "StructureError",
    "atoms_to_graph",
    "atoms_to_record",
    "attach_labels",
    "choose_buckets",
    "collate",
    "compute_statistics",
    "get_labels",
    "graph_to_atoms",
    "least_squares_e0",
    "neighbor_list",
    "pick_bucket",
    "read_structures",
    "standardize_labels",
    "validate_atoms",
    "validate_structures",
]

from rsajax.data.synthetic import random_silica_box, silica_box_length  # noqa: E402

__all__ += ["random_silica_box", "silica_box_length"]
