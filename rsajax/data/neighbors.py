"""Neighbour lists on the host with vesin, for any triclinic cell and mixed boundaries."""

from __future__ import annotations

import numpy as np
import vesin
from ase import Atoms


def neighbor_list(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list (both directions) within ``cutoff``.

    Cells smaller than twice the cutoff are handled: an atom can then see several images of the
    same neighbour, and its own images, each as a separate edge with its own cell offset.

    Args:
        atoms: structure; ``atoms.cell`` rows are lattice vectors, ``atoms.pbc`` per direction.
        cutoff: radius in A.
    Returns:
        senders (E,) int32, receivers (E,) int32, cell_offsets (E, 3) int32, such that
        ``positions[receivers] - positions[senders] + cell_offsets @ cell`` is the edge vector.
        Edges are sorted by (sender, receiver) for reproducibility.
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    positions = np.asarray(atoms.positions, dtype=np.float64)
    box = np.asarray(atoms.cell.array, dtype=np.float64)
    if not pbc.any():
        # vesin needs a box even without periodicity; any box works then.
        box = np.zeros((3, 3))
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shifts = calculator.compute(points=positions, box=box, periodic=pbc, quantities="ijS")
    order = np.lexsort((j, i))
    return (
        i[order].astype(np.int32),
        j[order].astype(np.int32),
        shifts[order].astype(np.int32),
    )
