"""Run a :class:`~rsajax.md.protocols.Schedule` in jitted chunks of ``lax.scan``.

Per chunk, on the host: neighbour-list overflow and the host-side box checks of the system
(minimum image, structures fixed at allocation) are read; on either, the list (or the whole
system) is reallocated outside jit and the chunk is redone from its start, with more capacity on
every retry, so no step ever runs on a wrong list. Then the chunk is checked for a blow-up (NaN,
temperature far above target, overlapping atoms); a blow-up writes what the chunk produced up to
the bad record and raises :class:`BlowUpError` naming the step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from rsajax.errors import InputError
from rsajax.md.adapter import MDSystem, update_neighbors
from rsajax.md.integrators import GPA, KB, Ensemble, make_integrator, thermo
from rsajax.md.output import RunOutput, density_g_cm3, load_checkpoint
from rsajax.md.protocols import Schedule

MAX_RETRIES = 6


class BlowUpError(RuntimeError):
    """The simulation blew up; the message names the step and what went wrong."""


@dataclasses.dataclass(frozen=True)
class BlowUpLimits:
    """A record blows up if it has a NaN, ``T > max_T_ratio * max(T_target, 300 K)``, or two atoms
    closer than ``min_distance`` (A)."""

    max_T_ratio: float = 5.0
    min_distance: float = 0.5


@dataclasses.dataclass
class RunResult:
    state: object
    system: MDSystem
    rows: list[dict]
    steps: int
    reallocations: int
    rebuilds: int


def make_chunk_fn(system: MDSystem, integrator, log_every: int):
    """Jitted ``chunk(state, nbrs, ref_box, kT (C, L), P (C, L)) -> (state, nbrs, ref_box,
    thermo {(C,)}, positions (C, N, 3), boxes (C L, 3, 3))`` with ``L = log_every``."""

    def one_step(carry, targets):
        state, nbrs, ref_box = carry
        kT, pressure = targets
        state = integrator.step(state, nbrs, kT, pressure)
        box = integrator.box(state)
        nbrs, ref_box = update_neighbors(system, state.position, nbrs, box, ref_box)
        return (state, nbrs, ref_box), box

    def one_record(carry, targets):
        carry, boxes = jax.lax.scan(one_step, carry, targets)
        state, nbrs, _ = carry
        return carry, (thermo(system, state, nbrs, integrator.box(state)), state.position, boxes)

    @jax.jit
    def chunk(state, nbrs, ref_box, kT, pressure):
        carry, (th, positions, boxes) = jax.lax.scan(
            one_record, (state, nbrs, ref_box), (kT, pressure)
        )
        return (*carry, th, positions, boxes.reshape(-1, 3, 3))

    return chunk


def _compiled(system: MDSystem, ensemble: Ensemble, kT0: float, p0: float, log_every: int):
    """Integrator and jitted chunk for ``system`` and these settings, kept in the system's own
    ``compiled`` store: every run of the same system object shares them, and they go with it."""
    key = ("chunk", ensemble, kT0, p0, log_every)
    if key not in system.compiled:
        integrator = make_integrator(system, ensemble, kT0, p0)
        # jax-md's init evaluates forces; eagerly that is op-by-op dispatch (~7 s for a 648-atom
        # MACE on 2 cores, paid by every run); jitted it compiles once per system and settings.
        integrator = dataclasses.replace(integrator, init=jax.jit(integrator.init))
        system.compiled[key] = (integrator, make_chunk_fn(system, integrator, log_every))
    return system.compiled[key]


def _min_distance_violation(numbers, R_frac, box, limit: float) -> float | None:
    from rsajax.data import neighbor_list

    atoms = Atoms(
        numbers=numbers,
        scaled_positions=np.asarray(R_frac, np.float64) % 1.0,
        cell=np.asarray(box, np.float64).T,
        pbc=True,
    )
    senders, receivers, offsets = neighbor_list(atoms, limit)
    if len(senders) == 0:
        return None
    d = atoms.positions[receivers] - atoms.positions[senders] + offsets @ atoms.cell.array
    return float(np.min(np.linalg.norm(d, axis=-1)))


class Simulation:
    """A schedule run on a system with one integrator, writing to ``out_dir`` (optional).

    Args:
        R0: (N, 3) fractional coordinates of ``system.box``.
        log_every: steps between thermo records (and the blow-up checks).
        records_per_chunk: records per jitted chunk (host checks run once per chunk).
        frame_every: steps between trajectory frames (a multiple of ``log_every``), or None.
        checkpoint_every: chunks between checkpoints (and one at the end), or None.
    """

    def __init__(
        self,
        system: MDSystem,
        ensemble: Ensemble,
        R0,
        schedule: Schedule,
        *,
        seed: int = 0,
        log_every: int = 10,
        records_per_chunk: int = 10,
        frame_every: int | None = None,
        out_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        limits: BlowUpLimits = BlowUpLimits(),
        progress: bool = True,
    ):
        if frame_every is not None and frame_every % log_every:
            raise InputError(
                f"frame_every ({frame_every}) must be a multiple of log_every ({log_every})"
            )
        if schedule.steps % log_every:
            raise InputError(
                f"the protocol has {schedule.steps} steps, not a multiple of log_every={log_every}"
            )
        self.system, self.ensemble, self.schedule = system, ensemble, schedule
        self.log_every, self.records_per_chunk = log_every, records_per_chunk
        self.frame_every, self.out_dir = frame_every, out_dir
        self.checkpoint_every, self.limits, self.progress = checkpoint_every, limits, progress
        self.R0 = jnp.asarray(R0)
        self.dtype = self.R0.dtype
        self.key = jax.random.PRNGKey(seed)
        self.reallocations = self.rebuilds = 0
        self.rows: list[dict] = []
        self._build(system)

    def _build(self, system: MDSystem) -> None:
        self.system = system
        kT0 = float(self.schedule.T_K[0]) * KB
        p0 = float(self.schedule.pressure_GPa[0]) * GPA
        self.integrator, self.chunk_fn = _compiled(system, self.ensemble, kT0, p0, self.log_every)

    def _targets(self, start: int, stop: int):
        shape = (-1, self.log_every)
        kT = jnp.asarray(self.schedule.T_K[start:stop] * KB, self.dtype).reshape(shape)
        p = jnp.asarray(self.schedule.pressure_GPa[start:stop] * GPA, self.dtype).reshape(shape)
        return kT, p

    def initial_state(self):
        nbrs = self.system.allocate(self.R0)
        kT, p = self._targets(0, self.log_every)
        state = self.integrator.init(self.key, self.R0, nbrs, kT[0, 0], p[0, 0])
        return state, nbrs

    def run(self, resume: bool = False) -> RunResult:
        """Run the whole schedule (or what is left after the checkpoint when ``resume``)."""
        state, nbrs = self.initial_state()
        step = 0
        if resume:
            state, step, box, _ = load_checkpoint(self.out_dir, state)
            if not np.allclose(box, self.system.box):
                self._build(self.system.rebuild(box))
            nbrs = self.system.allocate(state.position, box=self.integrator.box(state))
        out = None if self.out_dir is None else RunOutput(self.out_dir, step if resume else None)
        total = self.schedule.steps
        chunk_steps = self.log_every * self.records_per_chunk
        bar = tqdm(total=total, initial=step, disable=not self.progress, unit="step")
        chunks = 0
        while step < total:
            stop = min(step + chunk_steps, total)
            state, nbrs, th, positions, boxes = self._run_chunk(state, nbrs, step, stop)
            rows, frames, error = self._records(th, positions, boxes, step)
            if out is not None:
                out.write_thermo(rows)
                out.write_frames(frames)
            self.rows += rows
            if error is not None:
                bar.close()
                raise BlowUpError(error + (f"; output kept in {self.out_dir}" if out else ""))
            step, chunks = stop, chunks + 1
            bar.update(stop - bar.n)
            bar.set_postfix(T=f"{rows[-1]['T_K']:.0f}K", E=f"{rows[-1]['E_pot_eV']:.2f}")
            if (
                out is not None
                and self.checkpoint_every
                and (chunks % self.checkpoint_every == 0 or step == total)
            ):
                out.save_checkpoint(state, step, self.system.box)
        bar.close()
        return RunResult(state, self.system, self.rows, step, self.reallocations, self.rebuilds)

    def _run_chunk(self, state, nbrs, start: int, stop: int):
        """Run steps ``start..stop`` and redo them until the list and the boxes were valid."""
        kT, p = self._targets(start, stop)
        box_start = self.integrator.box(state)
        for attempt in range(MAX_RETRIES):
            ref_box = jnp.asarray(box_start, self.dtype)
            new_state, new_nbrs, _, th, positions, boxes = self.chunk_fn(
                state, nbrs, ref_box, kT, p
            )
            reason = self.system.check_boxes(np.asarray(boxes))
            if reason is not None:
                self.rebuilds += 1
                try:
                    system = self.system.rebuild(np.asarray(box_start))
                except ValueError as err:
                    raise RuntimeError(
                        f"steps {start}-{stop}: {reason}; cannot reallocate: {err}"
                    ) from err
                if system.check_boxes(np.asarray(boxes)) is not None:
                    raise RuntimeError(
                        f"steps {start}-{stop}: {reason}, even when reallocated at "
                        "the chunk's start; use shorter chunks (records_per_chunk)"
                    )
                self._build(system)
                nbrs = self.system.allocate(
                    state.position, box=box_start, extra_capacity=8 * attempt
                )
                continue
            if bool(new_nbrs.did_buffer_overflow):
                self.reallocations += 1  # more room on every retry of this chunk
                nbrs = self.system.allocate(
                    state.position, box=box_start, extra_capacity=8 * attempt
                )
                continue
            return new_state, new_nbrs, th, positions, boxes
        raise BlowUpError(
            f"steps {start}-{stop}: the neighbour list still overflows after "
            f"{MAX_RETRIES} reallocations; is the system exploding?"
        )

    def _records(self, th, positions, boxes, start: int):
        """Thermo rows and frames of a chunk; stops at the first blown-up record."""
        th = {k: np.asarray(v) for k, v in th.items()}
        positions, boxes = np.asarray(positions), np.asarray(boxes)
        rows, frames = [], []
        dt_ps = self.ensemble.dt_fs / 1000.0
        masses = self.system.masses
        for i in range(len(th["temperature"])):
            step = start + (i + 1) * self.log_every
            j = step - 1
            T_target = float(self.schedule.T_K[j])
            volume = float(th["volume"][i])
            box = np.asarray(boxes[(i + 1) * self.log_every - 1], np.float64)
            row = {
                "step": step,
                "time_ps": step * dt_ps,
                "stage": self.schedule.labels[self.schedule.stage[j]],
                "T_K": float(th["temperature"][i]),
                "T_target_K": T_target,
                "E_pot_eV": float(th["potential"][i]),
                "E_kin_eV": float(th["kinetic"][i]),
                "E_tot_eV": float(th["potential"][i] + th["kinetic"][i]),
                "P_GPa": float(th["pressure"][i]) / GPA,
                "P_target_GPa": float(self.schedule.pressure_GPa[j]),
                "volume_A3": volume,
                "density_g_cm3": float(density_g_cm3(masses, volume)),
                "E_lr_eV": float(th["long_range"][i]) if "long_range" in th else None,
            }
            rows.append(row)
            error = self._blow_up(row, positions[i], box, step)
            write_frame = self.frame_every and step % self.frame_every == 0
            if write_frame or error is not None:
                atoms = Atoms(
                    numbers=self.system.numbers,
                    cell=box.T,
                    pbc=True,
                    scaled_positions=positions[i] % 1.0,
                )
                atoms.info.update(step=step, T_K=row["T_K"], E_pot_eV=row["E_pot_eV"])
                if self.system.total_charge:  # the calculator reads it back from the frame
                    atoms.info["charge"] = self.system.total_charge
                frames.append(atoms)
            if error is not None:
                return rows, frames, error
        return rows, frames, None

    def _blow_up(self, row: dict, R_frac: np.ndarray, box: np.ndarray, step: int) -> str | None:
        values = [row[k] for k in ("T_K", "E_pot_eV", "P_GPa", "volume_A3")]
        if not np.all(np.isfinite(values)) or not np.all(np.isfinite(R_frac)):
            return f"blow-up at step {step}: NaN or inf in the state (T={row['T_K']})"
        limit = self.limits.max_T_ratio * max(row["T_target_K"], 300.0)
        if self.ensemble.kind != "nve" and row["T_K"] > limit:
            return (
                f"blow-up at step {step}: T = {row['T_K']:.0f} K, far above the target "
                f"{row['T_target_K']:.0f} K (limit {limit:.0f} K)"
            )
        d = _min_distance_violation(self.system.numbers, R_frac, box, self.limits.min_distance)
        if d is not None:
            return (
                f"blow-up at step {step}: atoms overlap ({d:.3f} A apart, limit "
                f"{self.limits.min_distance} A)"
            )
        return None


def relax(
    system: MDSystem, R, steps: int = 200, dt_start_fs: float = 0.1, dt_max_fs: float = 1.0
) -> jnp.ndarray:
    """FIRE minimisation (jax-md) of fractional positions ``R`` (N, 3) in ``system.box``; a start
    for MD from a structure with overlapping or strained contacts. Returns relaxed ``R``."""
    from ase import units
    from jax_md import minimize

    R = jnp.asarray(R)
    init_fn, apply_fn = minimize.fire_descent(
        system.energy_fn,
        system.shift_fn,
        dt_start=dt_start_fs * units.fs,
        dt_max=dt_max_fs * units.fs,
    )
    box = jnp.asarray(system.box, R.dtype)

    @jax.jit
    def run(state, nbrs):
        def step(carry, _):
            state, nbrs = carry
            state = apply_fn(state, neighbor=nbrs)
            nbrs, _ = update_neighbors(system, state.position, nbrs, box, box)
            return (state, nbrs), None

        return jax.lax.scan(step, (state, nbrs), None, length=steps)[0]

    for attempt in range(MAX_RETRIES):
        nbrs = system.allocate(R, extra_capacity=8 * attempt)
        state, nbrs = run(
            init_fn(R, mass=jnp.asarray(system.masses, R.dtype)[:, None], neighbor=nbrs), nbrs
        )
        if not bool(nbrs.did_buffer_overflow):
            return state.position
    raise RuntimeError("relax: the neighbour list keeps overflowing")
