"""Did a melt-quench run really melt? Mean square displacement of the hot stage and ring change.

A quench only makes a new glass if the liquid before it forgot the starting structure. Two checks,
both needed for the verdict :attr:`MeltCheck.melted`:

1. **Diffusion in the hot stage.** The mean square displacement (MSD) of the O atoms (all atoms if
   there is no O) from the first to the last frame of the hot stage, with positions unwrapped
   across the periodic boundaries and the centre-of-mass drift removed, must reach
   :data:`MSD_THRESHOLD_A2` = 7 A^2. That is (2.65 A)^2, the O-O nearest-neighbour distance of
   silica squared (Si-O is 1.61 A, Si-Si 3.1 A): on average every O atom has moved by a whole
   neighbour distance, i.e. left its cage. A solid only vibrates: its MSD plateaus at the
   Debye-Waller level, about 0.05 A^2 in the glass at 300 K and well below 1 A^2 even near the
   (potential's) melting point, so vibration never reaches 7 A^2. The shipped BKS data measure
   both ends: its 6000 K melt frames reach an O MSD of 10 A^2 after 1.4 ps and 16 A^2 after
   2.9 ps (D_O about 1e-4 cm^2/s), its 300 K glass frames 0.05 A^2 after 1.9 ps (tested).
2. **A new network.** The shortest-path ring histogram (:mod:`rsajax.analysis.rings`) of the
   final frame differs from the starting structure's: the total variation distance between the two
   ring-size distributions, ``0.5 * sum_n |p_n - q_n|`` with ``p``, ``q`` the fractions of rings
   of n Si atoms, must reach :data:`RING_DISTANCE_THRESHOLD` = 0.05. The same network after
   vibration and relaxation gives 0 (a bond flickering across the 2.1 A cutoff moves a ring or
   two of the 60-70 in a 192-atom box, about 0.02-0.03); the BKS melt 2.9 ps apart gives 0.27.

Unwrapping takes the minimum-image displacement between consecutive frames, so frames must be
close enough in time that no atom moves half a box between them; a displacement of more than
:data:`MAX_FRAME_STEP` of a cell vector between two frames is refused as ambiguous. ``rsajax md``
writes frames every ``output.frame_every`` steps (50 fs in the demo: about 1.5 A for an O atom at
6000 K, in a 14 A box).

``rsajax md`` stores only ``info['step']`` in the frames; the stage of each step is read from the
run's thermo log (``thermo.jsonl`` or ``thermo.csv`` next to ``trajectory.extxyz``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import ase
import ase.io
import numpy as np
from ase.data import chemical_symbols

from rsajax.analysis.rings import ring_fractions, ring_statistics

#: O (or all-atom) MSD over the hot stage, A^2, above which the atoms have left their cages.
MSD_THRESHOLD_A2 = 7.0
#: Total variation distance between ring-size distributions above which the network is new.
RING_DISTANCE_THRESHOLD = 0.05
#: Largest fractional displacement between consecutive frames that unwrapping accepts.
MAX_FRAME_STEP = 0.4


def unwrapped_positions(frames: list[ase.Atoms]) -> np.ndarray:
    """(F, N, 3) Cartesian positions, A, continuous across periodic boundaries.

    Each step between consecutive frames is the minimum-image step of the fractional coordinates,
    accumulated from frame 0; frame k's cell turns the result into Cartesian coordinates.
    """
    if len(frames) < 1:
        raise ValueError("unwrapping needs at least one frame")
    n = len(frames[0])
    for k, a in enumerate(frames):
        if len(a) != n or not np.array_equal(a.numbers, frames[0].numbers):
            raise ValueError(f"frame {k}: atoms differ from frame 0")
        if not a.pbc.all() or abs(a.get_volume()) < 1e-6:
            raise ValueError(f"frame {k}: needs a fully periodic cell with volume > 0")
    frac = np.stack([a.cell.scaled_positions(a.positions) for a in frames])
    steps = np.diff(frac, axis=0)
    steps -= np.round(steps)
    if steps.size and np.abs(steps).max() > MAX_FRAME_STEP:
        k = int(np.argmax(np.abs(steps).max(axis=(1, 2))))
        raise ValueError(
            f"frames {k} and {k + 1}: an atom moved {np.abs(steps[k]).max():.2f} of a cell vector "
            "between them, too far to unwrap; write frames more often (output.frame_every)"
        )
    unwrapped = np.concatenate([frac[:1], frac[:1] + np.cumsum(steps, axis=0)])
    cells = np.stack([a.cell.array for a in frames])
    return np.einsum("fni,fij->fnj", unwrapped, cells)


def mean_square_displacement(
    frames: list[ase.Atoms], remove_drift: bool = True
) -> dict[str, np.ndarray]:
    """MSD from frame 0 of each frame, A^2: ``{"all": (F,), "O": (F,), "Si": (F,), ...}``.

    Positions are unwrapped (:func:`unwrapped_positions`); with ``remove_drift`` the
    centre-of-mass displacement is subtracted first (a thermostat does not conserve momentum).
    """
    x = unwrapped_positions(frames)
    d = x - x[:1]
    if remove_drift:
        m = frames[0].get_masses()
        d = d - np.einsum("n,fni->fi", m, d)[:, None, :] / m.sum()
    sq = np.sum(d**2, axis=-1)
    numbers = frames[0].numbers
    out = {"all": sq.mean(axis=1)}
    for z in np.unique(numbers):
        out[chemical_symbols[z]] = sq[:, numbers == z].mean(axis=1)
    return out


def ring_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between two ring-size histograms (counts), in [0, 1]."""
    p, q = ring_fractions(a), ring_fractions(b)
    size = max(len(p), len(q))
    p, q = np.pad(p, (0, size - len(p))), np.pad(q, (0, size - len(q)))
    return 0.5 * float(np.abs(p - q).sum())


def read_stage_log(path: str | Path) -> dict[int, dict]:
    """``{step: {"stage": label, "T_target_K": T, "time_ps": t}}`` from a ``rsajax md`` thermo
    log (JSONL or CSV); the stage of a record is the stage its step ran in."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"thermo log not found: {path}")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    if not rows or "stage" not in rows[0] or "step" not in rows[0]:
        raise ValueError(f"{path}: no thermo records with 'step' and 'stage'")
    return {
        int(r["step"]): {
            "stage": r["stage"],
            "T_target_K": float(r["T_target_K"]),
            "time_ps": float(r["time_ps"]),
        }
        for r in rows
    }


def hottest_stage(stages: dict[int, dict]) -> str:
    """The stage with the highest mean target temperature (the hold at the top of a melt)."""
    temps: dict[str, list[float]] = {}
    for row in stages.values():
        temps.setdefault(row["stage"], []).append(row["T_target_K"])
    return max(temps, key=lambda s: (np.mean(temps[s]), len(temps[s])))


def hot_stage_frames(
    frames: list[ase.Atoms], stages: dict[int, dict], hot_stage: str | None = None
) -> tuple[str, list[ase.Atoms]]:
    """``(stage, frames)``: the last frame before ``hot_stage`` (its start) and the frames in it.

    ``hot_stage`` None picks :func:`hottest_stage`. Frames need ``info['step']``.
    """
    hot = hot_stage if hot_stage is not None else hottest_stage(stages)
    hot_steps = sorted(s for s, row in stages.items() if row["stage"] == hot)
    if not hot_steps:
        known = sorted({row["stage"] for row in stages.values()})
        raise ValueError(f"no stage {hot!r} in the thermo log (stages: {known})")
    first, last = hot_steps[0], hot_steps[-1]
    if any("step" not in a.info for a in frames):
        raise ValueError("frames need info['step'] (as written by rsajax md)")
    before = [a for a in frames if a.info["step"] < first]
    inside = [a for a in frames if first <= a.info["step"] <= last]
    selected = before[-1:] + inside
    if len(selected) < 2:
        raise ValueError(
            f"stage {hot!r} (steps {first}-{last}) has {len(selected)} frame(s) including its "
            "start; the MSD needs at least 2 (a longer stage, or a smaller output.frame_every)"
        )
    return hot, selected


@dataclass
class MeltCheck:
    """Verdict of :func:`melt_check`; see the module docstring for the two criteria."""

    hot_stage: str
    start_step: int
    end_step: int
    times_ps: np.ndarray  # (F,) time of each hot-stage frame from the stage's start
    msd_curve: dict[str, np.ndarray]  # species symbol or "all" -> (F,) MSD, A^2
    msd_species: str
    rings_start: np.ndarray
    rings_end: np.ndarray
    end_stage: str
    msd_threshold: float = MSD_THRESHOLD_A2
    ring_threshold: float = RING_DISTANCE_THRESHOLD
    msd: dict[str, float] = field(init=False)

    def __post_init__(self):
        self.msd = {k: float(v[-1]) for k, v in self.msd_curve.items()}

    @property
    def ring_distance(self) -> float:
        return ring_distance(self.rings_start, self.rings_end)

    @property
    def diffused(self) -> bool:
        return self.msd[self.msd_species] >= self.msd_threshold

    @property
    def rings_changed(self) -> bool:
        return self.ring_distance >= self.ring_threshold

    @property
    def melted(self) -> bool:
        return self.diffused and self.rings_changed

    def to_dict(self) -> dict:
        return {
            "melted": self.melted,
            "hot_stage": self.hot_stage,
            "hot_steps": [self.start_step, self.end_step],
            "msd_A2": self.msd,
            "msd_species": self.msd_species,
            "msd_threshold_A2": self.msd_threshold,
            "diffused": self.diffused,
            "msd_curve": {
                "time_ps": self.times_ps.tolist(),
                **{k: v.tolist() for k, v in self.msd_curve.items()},
            },
            "rings_start": self.rings_start.tolist(),
            "rings_end": self.rings_end.tolist(),
            "end_stage": self.end_stage,
            "ring_distance": self.ring_distance,
            "ring_threshold": self.ring_threshold,
            "rings_changed": self.rings_changed,
        }

    def lines(self) -> list[str]:
        """Human-readable summary, one fact a line."""
        msd = ", ".join(f"{k} {v:.2f}" for k, v in self.msd.items())
        sizes = range(2, len(self.rings_start))  # 2: edge-sharing tetrahedra
        start = " ".join(f"{n}:{self.rings_start[n]}" for n in sizes)
        end = " ".join(f"{n}:{self.rings_end[n]}" for n in sizes)
        mark = "MELTED" if self.melted else "NOT MELTED"
        return [
            f"{mark}: {self.msd_species} MSD {self.msd[self.msd_species]:.2f} A^2 over stage "
            f"{self.hot_stage!r} (steps {self.start_step}-{self.end_step}), threshold "
            f"{self.msd_threshold} A^2 -> {'passed' if self.diffused else 'FAILED'}",
            f"  MSD per species (A^2): {msd}",
            f"  rings (Si atoms:count) start: {start}",
            f"  rings (Si atoms:count) end ({self.end_stage}): {end}",
            f"  ring distance (total variation) {self.ring_distance:.3f}, threshold "
            f"{self.ring_threshold} -> {'passed' if self.rings_changed else 'FAILED'}",
        ]


def melt_check(
    trajectory: str | Path | list[ase.Atoms],
    start: ase.Atoms,
    log: str | Path | dict[int, dict] | None = None,
    hot_stage: str | None = None,
    msd_threshold: float = MSD_THRESHOLD_A2,
    ring_threshold: float = RING_DISTANCE_THRESHOLD,
    ring_cutoff: float = 2.1,
    max_si: int = 10,
) -> MeltCheck:
    """Melt verdict of a ``rsajax md`` run.

    Args:
        trajectory: ``trajectory.extxyz`` of the run (or its frames, with ``info['step']``).
        start: the structure the run started from (its rings are the reference).
        log: thermo log (path or :func:`read_stage_log` mapping); default ``thermo.jsonl`` (else
            ``thermo.csv``) next to ``trajectory``.
        hot_stage: stage label of the melt; default the hottest stage (:func:`hottest_stage`).
        msd_threshold: A^2, on the O MSD (all atoms without O).
        ring_threshold: on the total variation distance of the ring-size distributions.
        ring_cutoff, max_si: Si-O bond cutoff (A) and largest ring (Si atoms) of the ring search.
    """
    if isinstance(trajectory, (str, Path)):
        path = Path(trajectory)
        if not path.is_file():
            raise FileNotFoundError(f"trajectory not found: {path}")
        frames = ase.io.read(path, index=":")
        frames = frames if isinstance(frames, list) else [frames]
        if log is None:
            jsonl, table = path.parent / "thermo.jsonl", path.parent / "thermo.csv"
            log = jsonl if jsonl.is_file() or not table.is_file() else table
    else:
        frames = list(trajectory)
        if log is None:
            raise ValueError("melt_check on a list of frames needs the thermo log (log=...)")
    if len(frames) < 2:
        raise ValueError(f"the trajectory has {len(frames)} frame(s); the MSD needs at least 2")
    stages = log if isinstance(log, dict) else read_stage_log(log)
    hot, hot_frames = hot_stage_frames(frames, stages, hot_stage)
    curve = mean_square_displacement(hot_frames)
    species = "O" if "O" in curve else "all"
    steps = np.array([a.info["step"] for a in hot_frames])
    missing = [int(s) for s in steps if s not in stages]
    if missing:
        raise ValueError(f"frames at steps {missing[:3]} have no record in the thermo log")
    times = np.array([stages[s]["time_ps"] - stages[steps[0]]["time_ps"] for s in steps])
    end = frames[-1]
    end_step = end.info.get("step")
    return MeltCheck(
        hot_stage=hot,
        start_step=int(steps[0]),
        end_step=int(steps[-1]),
        times_ps=times,
        msd_curve=curve,
        msd_species=species,
        rings_start=ring_statistics(
            start.positions, start.cell[:], start.numbers, ring_cutoff, max_si
        ),
        rings_end=ring_statistics(end.positions, end.cell[:], end.numbers, ring_cutoff, max_si),
        end_stage=stages.get(end_step, {}).get("stage", "?"),
        msd_threshold=msd_threshold,
        ring_threshold=ring_threshold,
    )
