"""Temperature / pressure protocols as composable stages: heat, hold, quench, anneal.

A protocol is a list of :class:`Stage`; :func:`build_schedule` turns it into per-step target
temperatures and pressures. :mod:`rsajax.md.simulation` runs a schedule in chunks of ``lax.scan``.
Temperatures in K, pressures in GPa, times in ps, rates in K/ps.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from rsajax.errors import InputError

STAGE_KINDS = ("heat", "hold", "quench", "anneal")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a protocol.

    - ``heat`` / ``quench``: linear ramp from ``T_start`` (default: where the previous stage
      ended) to ``T_end``, over ``steps`` or ``time_ps``, or at ``rate_K_per_ps``.
    - ``hold``: constant ``T`` (default: the previous temperature) for ``steps`` or ``time_ps``.
    - ``anneal``: ramp to ``T`` at ``rate_K_per_ps``, hold it for ``steps`` / ``time_ps``, ramp
      back to the starting temperature at the same rate.

    ``pressure_GPa`` is the NPT target during the stage (ignored by NVE / NVT).
    """

    kind: str
    T: float | None = None
    T_start: float | None = None
    T_end: float | None = None
    steps: int | None = None
    time_ps: float | None = None
    rate_K_per_ps: float | None = None
    pressure_GPa: float = 0.0
    name: str | None = None

    def __post_init__(self):
        if self.kind not in STAGE_KINDS:
            raise InputError(f"stage kind {self.kind!r} unknown; choose from {STAGE_KINDS}")
        if self.kind in ("heat", "quench") and self.T_end is None:
            raise InputError(f"{self.kind} stage needs T_end")
        if self.kind in ("heat", "quench"):
            given = [x is not None for x in (self.steps, self.time_ps, self.rate_K_per_ps)]
            if sum(given) != 1:
                raise InputError(
                    f"{self.kind} stage needs exactly one of steps, time_ps, rate_K_per_ps"
                )
        if self.kind in ("hold", "anneal") and (self.steps is None) == (self.time_ps is None):
            raise InputError(f"{self.kind} stage needs exactly one of steps, time_ps")
        if self.kind == "anneal" and (self.T is None or self.rate_K_per_ps is None):
            raise InputError("anneal stage needs T (the annealing temperature) and rate_K_per_ps")
        if self.rate_K_per_ps is not None and not self.rate_K_per_ps > 0:
            raise InputError(f"rate_K_per_ps must be positive, got {self.rate_K_per_ps}")

    @property
    def label(self) -> str:
        return self.name or self.kind


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Per-step targets: ``T_K`` (S,), ``pressure_GPa`` (S,), ``stage`` (S,) index into
    ``labels``. Entry ``i`` is the target during step ``i + 1``."""

    T_K: np.ndarray
    pressure_GPa: np.ndarray
    stage: np.ndarray
    labels: tuple[str, ...]

    @property
    def steps(self) -> int:
        return len(self.T_K)


def _steps(time_ps: float, dt_fs: float) -> int:
    return max(1, int(math.ceil(round(time_ps * 1000.0 / dt_fs, 9))))


def _ramp(t0: float, t1: float, n: int) -> np.ndarray:
    return t0 + (t1 - t0) * np.arange(1, n + 1) / n


def _ramp_steps(stage: Stage, t0: float, t1: float, dt_fs: float) -> int:
    if stage.steps is not None:
        return int(stage.steps)
    if stage.time_ps is not None:
        return _steps(stage.time_ps, dt_fs)
    return _steps(abs(t1 - t0) / stage.rate_K_per_ps, dt_fs)


def stage_temperatures(stage: Stage, T_prev: float, dt_fs: float) -> np.ndarray:
    """(S,) target temperatures of one stage that starts at ``T_prev``."""
    if stage.kind in ("heat", "quench"):
        t0 = T_prev if stage.T_start is None else stage.T_start
        return _ramp(t0, stage.T_end, _ramp_steps(stage, t0, stage.T_end, dt_fs))
    hold_steps = stage.steps if stage.steps is not None else _steps(stage.time_ps, dt_fs)
    if stage.kind == "hold":
        t = T_prev if stage.T is None else stage.T
        return np.full(int(hold_steps), float(t))
    ramp = _steps(abs(stage.T - T_prev) / stage.rate_K_per_ps, dt_fs)
    return np.concatenate(
        [
            _ramp(T_prev, stage.T, ramp),
            np.full(int(hold_steps), stage.T),
            _ramp(stage.T, T_prev, ramp),
        ]
    )


def build_schedule(stages: list[Stage], dt_fs: float, T_initial: float) -> Schedule:
    """Concatenate stages into one :class:`Schedule` starting from ``T_initial`` (K)."""
    if not stages:
        raise InputError("a protocol needs at least one stage")
    temps, pressures, index = [], [], []
    t_prev = float(T_initial)
    for i, stage in enumerate(stages):
        t = stage_temperatures(stage, t_prev, dt_fs)
        if np.any(t < 0):
            raise InputError(f"stage {i} ({stage.label}): negative target temperature")
        temps.append(t)
        pressures.append(np.full(len(t), float(stage.pressure_GPa)))
        index.append(np.full(len(t), i, dtype=np.int32))
        t_prev = float(t[-1])
    return Schedule(
        np.concatenate(temps),
        np.concatenate(pressures),
        np.concatenate(index),
        tuple(s.label for s in stages),
    )


def stage_from_dict(d: dict) -> Stage:
    """A :class:`Stage` from a config mapping, with a clear error on unknown keys."""
    fields = {f.name for f in dataclasses.fields(Stage)}
    unknown = set(d) - fields
    if unknown:
        raise InputError(f"stage {d}: unknown keys {sorted(unknown)} (known: {sorted(fields)})")
    return Stage(**d)
