"""Thin helpers from lists of ase.Atoms (trajectory frames) to the array-based analysis."""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io
import numpy as np
from ase.units import _amu
from tqdm.auto import tqdm

from rsajax.analysis.rdf import RDF, partial_rdf
from rsajax.analysis.rings import ring_statistics
from rsajax.analysis.structure_factor import (
    StructureFactor,
    combine,
    finish,
    reciprocal_grid,
    shell_sums,
    species_onehot,
)
from rsajax.errors import InputError


def read_frames(path: str | Path, index: str = ":") -> list[ase.Atoms]:
    """Read frames (extxyz, ASE .traj, anything ase.io reads) and check they are analysable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory not found: {path}")
    try:
        frames = ase.io.read(path, index=index)
    except Exception as err:  # ASE raises many kinds; name the file in all of them
        raise InputError(f"{path}: ASE could not read the trajectory ({err})") from err
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise InputError(f"{path}: no frames")
    ref = frames[0].numbers
    for k, a in enumerate(frames):
        if not a.pbc.all() or abs(a.get_volume()) < 1e-6:
            raise InputError(f"{path} frame {k}: needs a fully periodic cell with volume > 0")
        if not np.array_equal(a.numbers, ref):
            raise InputError(f"{path} frame {k}: species differ from frame 0")
    return frames


def atoms_from_arrays(positions: np.ndarray, cells: np.ndarray, species: np.ndarray) -> list:
    """Frames as ase.Atoms from arrays (e.g. a jax-md run): positions (F, N, 3) Cartesian A,
    cells (F, 3, 3) or (3, 3) with lattice vectors as rows, species (N,) atomic numbers."""
    positions = np.asarray(positions, dtype=np.float64)
    positions = positions[None] if positions.ndim == 2 else positions
    cells = np.broadcast_to(np.asarray(cells, dtype=np.float64), (len(positions), 3, 3))
    return [
        ase.Atoms(numbers=species, positions=p, cell=c, pbc=True)
        for p, c in zip(positions, cells, strict=True)
    ]


def density_g_cm3(frames: list[ase.Atoms]) -> float:
    """Mean mass density over frames, g/cm^3."""
    rho = [a.get_masses().sum() * _amu * 1e3 / (a.get_volume() * 1e-24) for a in frames]
    return float(np.mean(rho))


def structure_factor_frames(
    frames: list[ase.Atoms],
    q_max: float = 12.0,
    shell_width: float = 0.05,
    max_per_shell: int | None = 200,
    batch: int = 4,
    progress: bool = True,
) -> StructureFactor:
    """Partial Faber-Ziman S_ab(q) averaged over frames.

    Frames with the same cell share one q-grid and are processed ``batch`` at a time; frames
    with different cells (NPT) get their own grid and are merged shell by shell.
    """
    kinds, onehot = species_onehot(frames[0].numbers)
    groups: list[tuple[np.ndarray, list[int]]] = []
    for k, a in enumerate(frames):
        for cell, members in groups:
            if np.allclose(cell, a.cell[:], atol=1e-8):
                members.append(k)
                break
        else:
            groups.append((np.array(a.cell[:]), [k]))
    parts = []
    bar = tqdm(total=len(frames), desc="S(Q)", unit="frame", disable=not progress)
    for cell, members in groups:
        grid = reciprocal_grid(cell, q_max, shell_width, max_per_shell)
        sums = 0.0
        for start in range(0, len(members), batch):
            idx = members[start : start + batch]
            pos = np.stack([frames[k].positions for k in idx])
            sums = sums + np.asarray(
                shell_sums(pos, cell, onehot, grid.hkl, grid.shell, grid.n_shells)
            )
            bar.update(len(idx))
        parts.append(finish(sums, grid, onehot, len(members), kinds))
    bar.close()
    return combine(parts)


def rdf_frames(frames: list[ase.Atoms], r_max: float = 8.0, n_bins: int = 400) -> RDF:
    """Partial g_ab(r) averaged over frames."""
    pos = np.stack([a.positions for a in frames])
    cells = np.stack([a.cell[:] for a in frames])
    return partial_rdf(pos, cells, frames[0].numbers, r_max, n_bins)


def ring_statistics_frames(
    frames: list[ase.Atoms],
    cutoff: float = 2.1,
    max_si: int = 10,
    engine: str = "python",
    progress: bool = True,
) -> np.ndarray:
    """(max_si + 1,) SP-ring counts per Si-size, summed over frames."""
    total = np.zeros(max_si + 1, dtype=np.int64)
    for a in tqdm(frames, desc="rings", unit="frame", disable=not progress):
        total += ring_statistics(a.positions, a.cell[:], a.numbers, cutoff, max_si, engine)
    return total
