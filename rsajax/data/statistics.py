"""Dataset statistics that set a model's normalisation: E0s, neighbours, scale and shift."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from ase.data import chemical_symbols

from rsajax.data.graphs import GraphRecord
from rsajax.errors import InputError


@dataclasses.dataclass(frozen=True)
class DatasetStatistics:
    """Summary of a training set.

    Attributes:
        atomic_numbers: sorted elements present.
        atomic_energies: least-squares E0 per element (eV), same order.
        avg_num_neighbors: mean number of edges per atom within the cutoff.
        mean_interaction_energy: mean over structures of (E - sum E0) / N (eV/atom): the shift.
        std_energy_per_atom: std of (E - sum E0) / N (eV/atom).
        rms_forces: root mean square force component (eV/A): the usual scale.
        num_structures, num_atoms: counts.
    """

    atomic_numbers: tuple[int, ...]
    atomic_energies: tuple[float, ...]
    avg_num_neighbors: float
    mean_interaction_energy: float
    std_energy_per_atom: float
    rms_forces: float
    num_structures: int
    num_atoms: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        e0 = ", ".join(
            f"{chemical_symbols[z]}: {e:.4f}"
            for z, e in zip(self.atomic_numbers, self.atomic_energies, strict=True)
        )
        return (
            f"{self.num_structures} structures, {self.num_atoms} atoms\n"
            f"E0 (eV): {e0}\n"
            f"avg_num_neighbors: {self.avg_num_neighbors:.3f}\n"
            f"interaction energy: mean {self.mean_interaction_energy:.4f} eV/atom, "
            f"std {self.std_energy_per_atom:.4f} eV/atom\n"
            f"force RMS: {self.rms_forces:.4f} eV/A"
        )


def least_squares_e0(records: Sequence[GraphRecord], atomic_numbers: Sequence[int]) -> np.ndarray:
    """E0 per element minimising sum_s (E_s - sum_a n_sa E0_a)^2 over labelled structures.

    Returns:
        (len(atomic_numbers),) energies in eV. Raises if no structure has an energy.
    """
    index = {z: i for i, z in enumerate(atomic_numbers)}
    labelled = [r for r in records if r.energy is not None]
    if not labelled:
        raise InputError("no structure has an energy label; cannot fit E0s")
    counts = np.zeros((len(labelled), len(atomic_numbers)))
    for s, r in enumerate(labelled):
        for z, n in zip(*np.unique(r.numbers, return_counts=True), strict=True):
            counts[s, index[int(z)]] = n
    energies = np.array([r.energy for r in labelled])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return e0


def compute_statistics(
    records: Sequence[GraphRecord], atomic_numbers: Sequence[int] | None = None
) -> DatasetStatistics:
    """Statistics of a list of records (neighbour lists already built at the model cutoff)."""
    if not records:
        raise ValueError("no structures")
    if atomic_numbers is None:
        atomic_numbers = sorted(set(int(z) for r in records for z in r.numbers))
    atomic_numbers = tuple(int(z) for z in atomic_numbers)
    num_atoms = sum(r.n_node for r in records)
    avg_neighbors = sum(r.n_edge for r in records) / num_atoms
    has_energy = any(r.energy is not None for r in records)
    if has_energy:
        e0 = least_squares_e0(records, atomic_numbers)
        lookup = dict(zip(atomic_numbers, e0, strict=True))
        per_atom = np.array(
            [
                (r.energy - sum(lookup[int(z)] for z in r.numbers)) / r.n_node
                for r in records
                if r.energy is not None
            ]
        )
        mean, std = float(per_atom.mean()), float(per_atom.std())
    else:
        e0, mean, std = np.zeros(len(atomic_numbers)), 0.0, 0.0
    forces = [r.forces for r in records if r.forces is not None]
    rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2))) if forces else 1.0
    return DatasetStatistics(
        atomic_numbers=atomic_numbers,
        atomic_energies=tuple(float(x) for x in e0),
        avg_num_neighbors=float(avg_neighbors),
        mean_interaction_energy=mean,
        std_energy_per_atom=std,
        rms_forces=rms,
        num_structures=len(records),
        num_atoms=num_atoms,
    )
