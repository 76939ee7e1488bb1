"""Run output: thermodynamic log (CSV + JSONL), trajectory frames (extxyz + ASE .traj), and
atomic checkpoints of a long run.

Files are appended as the run goes and flushed per chunk, so a run that stops (blow-up, kill)
keeps everything written up to there. A checkpoint is written to a temporary file and renamed
(``os.replace``), so a crash while writing never leaves a broken checkpoint. On resume, log rows
and frames after the checkpoint's step are dropped so that no step appears twice.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import jax
import numpy as np
from ase import Atoms
from ase.io import read, write
from ase.io.trajectory import Trajectory
from ase.units import _amu

from rsajax.errors import InputError

THERMO_FIELDS = (
    "step",
    "time_ps",
    "stage",
    "T_K",
    "T_target_K",
    "E_pot_eV",
    "E_kin_eV",
    "E_tot_eV",
    "P_GPa",
    "P_target_GPa",
    "volume_A3",
    "density_g_cm3",
    "E_lr_eV",
)
#: ``E_lr_eV``: the long-range (RSA) part of ``E_pot_eV`` (``MACE.energy_parts``), computed at log
#: points only; empty in the CSV (null in the JSONL) for systems without an RSA part (short-range
#: models, the BKS teacher, whose Coulomb sum is not separated) and in rows resumed from logs
#: written before the column existed.
CHECKPOINT = "checkpoint.npz"


def density_g_cm3(masses_amu: np.ndarray, volume_A3: np.ndarray) -> np.ndarray:
    """Mass density (g/cm^3) of atoms with masses (amu) in volume(s) (A^3)."""
    return np.sum(masses_amu) * _amu * 1e3 / (np.asarray(volume_A3) * 1e-24)


class RunOutput:
    """Writers for one run directory: ``thermo.csv``, ``thermo.jsonl``, ``trajectory.extxyz``,
    ``trajectory.traj``, ``checkpoint.npz``."""

    def __init__(self, directory: str | Path, resume_step: int | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "thermo.csv"
        self.jsonl_path = self.dir / "thermo.jsonl"
        self.xyz_path = self.dir / "trajectory.extxyz"
        self.traj_path = self.dir / "trajectory.traj"
        if resume_step is None:
            for path in (self.csv_path, self.jsonl_path, self.xyz_path, self.traj_path):
                path.unlink(missing_ok=True)
        else:
            self._truncate(resume_step)
        if not self.csv_path.exists():
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(THERMO_FIELDS)

    def _truncate(self, step: int) -> None:
        """Drop log rows and frames after ``step`` (written after the checkpoint). Logs of older
        versions (fewer columns) are rewritten from the JSONL with the current columns."""
        if not self.jsonl_path.exists() and self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            if header is not None and tuple(header) != THERMO_FIELDS:
                raise InputError(
                    f"{self.csv_path}: columns {header} differ from this version's "
                    f"{list(THERMO_FIELDS)} and there is no {self.jsonl_path.name} to rewrite it "
                    "from; move the old log away to resume"
                )
        if self.jsonl_path.exists():
            rows = [json.loads(line) for line in self.jsonl_path.read_text().splitlines() if line]
            rows = [r for r in rows if r["step"] <= step]
            self.jsonl_path.unlink()
            self.csv_path.unlink(missing_ok=True)
            self.write_thermo(rows)
        frames = []
        if self.xyz_path.exists():
            frames = [a for a in read(self.xyz_path, index=":") if a.info["step"] <= step]
            self.xyz_path.unlink()
        self.traj_path.unlink(missing_ok=True)
        self.write_frames(frames)

    def write_thermo(self, rows: list[dict]) -> None:
        """Append rows (dicts with :data:`THERMO_FIELDS`; a missing or None field is written
        empty in the CSV and null in the JSONL) to the CSV and JSONL logs."""
        if not rows:
            return
        rows = [{k: r.get(k) for k in THERMO_FIELDS} for r in rows]
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(THERMO_FIELDS)
            writer.writerows([[r[k] for k in THERMO_FIELDS] for r in rows])
        with open(self.jsonl_path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    def write_frames(self, frames: list[Atoms]) -> None:
        """Append frames (``info['step']`` set) to the extxyz and ASE trajectory files."""
        if not frames:
            return
        write(self.xyz_path, frames, format="extxyz", append=True)
        with Trajectory(self.traj_path, "a") as traj:
            for atoms in frames:
                traj.write(atoms)

    def save_checkpoint(self, state, step: int, box: np.ndarray, extra: dict | None = None) -> Path:
        """Atomically write the integrator state pytree, the step and the allocation box."""
        return save_checkpoint(self.dir, state, step, box, extra)


def save_checkpoint(
    directory: str | Path, state, step: int, box: np.ndarray, extra: dict | None = None
) -> Path:
    """Atomically write ``directory/checkpoint.npz``: the leaves of the integrator state pytree
    (any pytree, e.g. a batch of replica states), the step, the allocation box and ``extra``
    (JSON); :func:`load_checkpoint` reads it back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays["step"] = np.asarray(step)
    arrays["box"] = np.asarray(box)
    arrays["meta"] = np.asarray(json.dumps(extra or {}))
    path = directory / CHECKPOINT
    tmp = directory / (CHECKPOINT + ".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(directory: str | Path, template) -> tuple[object, int, np.ndarray, dict]:
    """``(state, step, box, meta)`` from ``directory/checkpoint.npz``; ``template`` is a state of
    the same integrator and system (its structure and dtypes are reused)."""
    path = Path(directory) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    with np.load(path) as data:
        leaves, treedef = jax.tree_util.tree_flatten(template)
        n = sum(1 for k in data.files if k.startswith("leaf_"))
        if n != len(leaves):
            raise InputError(
                f"{path}: checkpoint has {n} state arrays, this integrator needs "
                f"{len(leaves)} (different ensemble?)"
            )
        restored = []
        for i, like in enumerate(leaves):
            value = data[f"leaf_{i}"]
            if value.shape != np.shape(like):
                raise InputError(
                    f"{path}: state array {i} has shape {value.shape}, expected "
                    f"{np.shape(like)} (different system?)"
                )
            restored.append(jax.numpy.asarray(value, dtype=jax.numpy.asarray(like).dtype))
        state = jax.tree_util.tree_unflatten(treedef, restored)
        return state, int(data["step"]), np.asarray(data["box"]), json.loads(str(data["meta"]))
