"""Checks that a structure is usable, with errors that say which structure and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from rsajax.data.errors import StructureError
from rsajax.data.labels import LABELS, get_labels

#: Default minimum interatomic distance (A); closer pairs are almost always corrupt input.
MIN_DISTANCE = 0.5


def validate_atoms(
    atoms: Atoms,
    where: str,
    *,
    allowed_numbers: Iterable[int] | None = None,
    min_distance: float = MIN_DISTANCE,
    require: Iterable[str] = (),
) -> None:
    """Raise :class:`StructureError` if ``atoms`` cannot be used.

    Checks: empty structure; unknown elements (Z = 0 or > 118) or elements outside
    ``allowed_numbers`` (a model's element table); non-finite positions, cell or labels; a
    degenerate cell with periodic boundaries; atoms (or periodic images) closer than
    ``min_distance``; labels named in ``require`` ("energy", "forces", "stress", "dipole") missing.

    Args:
        atoms: the structure, labels as an ASE calculator's results (see ``rsajax.data.labels``).
        where: how to name the structure in errors, e.g. ``"train.xyz[12]"``.
    """
    n = len(atoms)
    if n == 0:
        raise StructureError(where, "empty structure (no atoms)")
    numbers = atoms.numbers
    bad = sorted(set(int(z) for z in numbers if z <= 0 or z >= len(chemical_symbols)))
    if bad:
        raise StructureError(where, f"unknown element(s) with atomic number {bad}")
    if allowed_numbers is not None:
        allowed = set(int(z) for z in allowed_numbers)
        missing = sorted(set(int(z) for z in numbers) - allowed)
        if missing:
            names = ", ".join(chemical_symbols[z] for z in missing)
            known = ", ".join(chemical_symbols[z] for z in sorted(allowed))
            raise StructureError(where, f"element(s) {names} not in the element table [{known}]")
    if not np.all(np.isfinite(atoms.positions)):
        rows = np.where(~np.isfinite(atoms.positions).all(axis=1))[0]
        raise StructureError(where, f"non-finite positions on atom(s) {rows[:10].tolist()}")
    cell = atoms.cell.array
    if not np.all(np.isfinite(cell)):
        raise StructureError(where, "non-finite cell")
    if atoms.pbc.any():
        volume = abs(np.linalg.det(cell))
        if volume < 1e-6:
            raise StructureError(
                where, f"cell has zero volume ({volume:.3g} A^3) but pbc={atoms.pbc.tolist()}"
            )
    charge = atoms.info.get("charge", 0.0)
    if not isinstance(charge, int | float | np.number) or not np.isfinite(charge):
        raise StructureError(where, f"info['charge'] must be a finite number (e), got {charge!r}")
    labels = get_labels(atoms)
    for name, value in labels.items():
        if value is not None and not np.all(np.isfinite(value)):
            raise StructureError(where, f"non-finite {name} label")
    if labels["forces"] is not None and np.shape(labels["forces"]) != (n, 3):
        raise StructureError(
            where, f"forces have shape {np.shape(labels['forces'])}, expected ({n}, 3)"
        )
    for name in require:
        if name not in LABELS:
            raise ValueError(f"unknown label {name!r}; expected one of {LABELS}")
        if labels[name] is None:
            raise StructureError(where, f"missing {name} label, which training requires")
    _check_min_distance(atoms, where, min_distance)


def _check_min_distance(atoms: Atoms, where: str, min_distance: float) -> None:
    if min_distance <= 0 or len(atoms) == 0:
        return
    from rsajax.data.neighbors import neighbor_list

    senders, receivers, offsets = neighbor_list(atoms, min_distance)
    if len(senders) == 0:
        return
    vectors = atoms.positions[receivers] - atoms.positions[senders] + offsets @ atoms.cell.array
    distances = np.linalg.norm(vectors, axis=1)
    k = int(np.argmin(distances))
    i, j = int(senders[k]), int(receivers[k])
    image = "" if not offsets[k].any() else f" (periodic image {offsets[k].tolist()})"
    raise StructureError(
        where,
        f"atoms {i} ({atoms.get_chemical_symbols()[i]}) and {j} "
        f"({atoms.get_chemical_symbols()[j]}){image} are {distances[k]:.3f} A apart, closer "
        f"than min_distance={min_distance} A",
    )
