"""Bond-angle distributions: Si-O-Si (at O) and O-Si-O (at Si) in silica, or any triplet.

A bond is a centre-neighbour pair of the requested species closer than ``cutoff`` (for Si-O take
the first minimum of g_SiO, about 2.0-2.3 A). Every unordered pair of bonds at one centre gives
one angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vesin

Array = np.ndarray


def bond_angles(
    positions: Array, cell: Array, species: Array, center: int, neighbor: int, cutoff: float
) -> np.ndarray:
    """All neighbor-center-neighbor angles (degrees) of one frame.

    Args:
        positions: (N, 3), A.
        cell: (3, 3) lattice vectors as rows, A.
        species: (N,) atomic numbers.
        center, neighbor: atomic numbers (e.g. 8, 14 for Si-O-Si).
        cutoff: bond length cutoff, A.

    Returns:
        (A,) angles in degrees.
    """
    species = np.asarray(species)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, vec = nl.compute(
        np.asarray(positions, dtype=np.float64), np.asarray(cell, dtype=np.float64), True, "ijD"
    )
    keep = (species[i] == center) & (species[j] == neighbor)
    i, vec = i[keep], vec[keep]
    order = np.argsort(i, kind="stable")
    i, vec = i[order], vec[order]
    # for bond e at centre c, its partners are the later bonds of the same centre
    _, start, count = np.unique(i, return_index=True, return_counts=True)
    group_end = np.repeat(start + count, count)
    n_partner = group_end - np.arange(len(i)) - 1
    first = np.repeat(np.arange(len(i)), n_partner)
    offset = np.arange(len(first)) - np.repeat(np.cumsum(n_partner) - n_partner, n_partner)
    second = first + 1 + offset
    u, v = vec[first], vec[second]
    cos = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@dataclass(frozen=True)
class AngleDistribution:
    """Histogram and moments of a bond-angle distribution.

    Attributes:
        edges: (B + 1,) bin edges, degrees.
        density: (B,) normalised histogram (integrates to 1 over degrees).
        mean, std: mean and standard deviation, degrees.
        mode: centre of the most populated bin, degrees.
        count: number of angles.
    """

    edges: np.ndarray
    density: np.ndarray
    mean: float
    std: float
    mode: float
    count: int


def angle_distribution(angles: Array, bin_width: float = 2.0) -> AngleDistribution:
    """Histogram (0-180 deg) and moments of angles in degrees."""
    angles = np.asarray(angles, dtype=np.float64)
    if angles.size == 0:
        raise ValueError("no bond angles found: check the species and the bond cutoff")
    edges = np.arange(0.0, 180.0 + bin_width, bin_width)
    density, _ = np.histogram(angles, bins=edges, density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return AngleDistribution(
        edges=edges,
        density=density,
        mean=float(angles.mean()),
        std=float(angles.std()),
        mode=float(centres[np.argmax(density)]),
        count=int(angles.size),
    )


def silica_angles(
    frames: list, cutoff: float = 2.1, bin_width: float = 2.0
) -> dict[str, AngleDistribution]:
    """Si-O-Si and O-Si-O distributions pooled over ``frames`` (ase.Atoms)."""
    out = {}
    for name, (c, n) in {"Si-O-Si": (8, 14), "O-Si-O": (14, 8)}.items():
        pooled = [bond_angles(a.positions, a.cell[:], a.numbers, c, n, cutoff) for a in frames]
        out[name] = angle_distribution(np.concatenate(pooled), bin_width)
    return out
