"""Read structures from extxyz (or anything ASE reads), standardise labels, validate."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Sequence

import ase.io
from ase import Atoms

from rsajax.data.errors import StructureError
from rsajax.data.labels import standardize_labels
from rsajax.data.validate import MIN_DISTANCE, validate_atoms


@dataclasses.dataclass
class ReadReport:
    """What :func:`read_structures` did: how many structures were read, kept and skipped (why)."""

    source: str
    read: int = 0
    kept: int = 0
    skipped: list[StructureError] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.source}: read {self.read}, kept {self.kept}, skipped {len(self.skipped)}"
        for error in self.skipped[:5]:
            text += f"\n  - {error}"
        if len(self.skipped) > 5:
            text += f"\n  - ... and {len(self.skipped) - 5} more"
        return text


def read_structures(
    path: str | os.PathLike,
    index: str | int = ":",
    *,
    format: str | None = None,
    energy_key: str | None = "energy",
    forces_key: str | None = "forces",
    stress_key: str | None = "stress",
    virial_key: str | None = "virial",
    dipole_key: str | None = "dipole",
    require: Iterable[str] = (),
    allowed_numbers: Iterable[int] | None = None,
    min_distance: float = MIN_DISTANCE,
    skip_invalid: bool = False,
    return_report: bool = False,
) -> list[Atoms] | tuple[list[Atoms], ReadReport]:
    """Read and validate structures; labels end up in ASE's standard places.

    Args:
        path: an extxyz file or anything ``ase.io.read`` understands.
        index: ASE index string (``":"`` for all frames).
        energy_key, forces_key, stress_key, virial_key, dipole_key: where the file keeps labels
            (e.g. ``energy_key="REF_energy"``); a virial is converted to stress.
        require: labels every structure must have (e.g. ``("energy", "forces")`` for training).
        allowed_numbers: atomic numbers a model knows; others are an error naming the element.
        min_distance: atoms closer than this (A) are an error.
        skip_invalid: drop bad structures instead of raising; they are counted, reported with a
            warning, and listed in the report.
        return_report: also return a :class:`ReadReport`.
    Returns:
        The structures (each with ``info["rsajax_source"] = "file[i]"``), and the report if asked.
    Raises:
        FileNotFoundError: no such file.
        StructureError: a structure is invalid (unless ``skip_invalid``); names file and index.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such structure file: {path}")
    try:
        frames = ase.io.read(path, index=index, format=format)
    except Exception as error:  # ASE raises many kinds; name the file in all of them
        raise StructureError(path, f"ASE could not read the file: {error}") from error
    if isinstance(frames, Atoms):
        frames = [frames]
    report = ReadReport(source=path, read=len(frames))
    kept = []
    for i, atoms in enumerate(frames):
        where = f"{path}[{i}]"
        try:
            standardize_labels(atoms, energy_key, forces_key, stress_key, virial_key, dipole_key)
            validate_atoms(
                atoms,
                where,
                allowed_numbers=allowed_numbers,
                min_distance=min_distance,
                require=require,
            )
        except StructureError as error:
            if not skip_invalid:
                raise
            report.skipped.append(error)
            continue
        except ValueError as error:
            wrapped = StructureError(where, str(error))
            if not skip_invalid:
                raise wrapped from error
            report.skipped.append(wrapped)
            continue
        atoms.info["rsajax_source"] = where
        kept.append(atoms)
    report.kept = len(kept)
    if report.skipped:
        warnings.warn(report.summary(), stacklevel=2)
    if not kept and report.read:
        raise StructureError(path, f"no valid structures left ({len(report.skipped)} skipped)")
    return (kept, report) if return_report else kept


def validate_structures(
    structures: Sequence[Atoms],
    name: str = "structures",
    **kwargs,
) -> None:
    """Validate in-memory structures (same checks as :func:`read_structures`)."""
    for i, atoms in enumerate(structures):
        validate_atoms(atoms, atoms.info.get("rsajax_source", f"{name}[{i}]"), **kwargs)
