"""Stage 3: melt-quench the teacher and every trained model with one protocol, several replicas
advanced together with ``vmap`` (:func:`rsajax.md.replicas.run_replicas`), float32.

Protocol (:class:`~experiments.silica_study.presets.MDSpec`): phase ``melt`` (NVT Langevin in the
start glass's box: heat to the melt temperature, hold, stage ``hot``), then phase ``quench``
(Nose-Hoover NPT at 0 GPa: a linear ramp at the stated rate, stage ``quench``, then a hold at
300 K, stage ``glass``). Every replica starts from the same teacher glass with its own seed
(velocities and thermostat noise), so the melt decorrelates them. The models run with the
``core_repulsion`` wall of ``rsajax demo`` (zero at every distance their data covers; checked
against the data's closest pairs in stage 1); the teacher has its own 30-6 wall.

Outputs per model in ``OUT/md/<model>/``: ``rep<k>/`` for each replica as ``rsajax md`` writes
them (``thermo.jsonl``, ``thermo.csv``, ``trajectory.extxyz`` with ``info['stage']``), the
phase checkpoints ``melt/checkpoint.npz`` and ``quench/checkpoint.npz`` (every
``checkpoint_every`` chunks, all replicas in one file), ``melt.json`` (the melt check of every
replica: O MSD over the hot stage and ring change from the start, :mod:`rsajax.analysis.melt`)
and ``done.json`` (steps, seconds, atom-steps per second). A phase's seconds add up over its
sittings: each checkpoint records the wall time spent on the steps it holds (compilation
included), so ``seconds`` covers ``steps_timed`` steps; only steps checkpointed before this was
recorded (2026-12-07) are left out of it, and ``steps_timed < steps`` says so.
A finished model is skipped; an interrupted phase continues from its checkpoint only with
``resume``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path

import ase
import ase.io
import numpy as np

from experiments.silica_study.presets import MDSpec
from experiments.silica_study.reuse import long_range_silica
from experiments.silica_study.training import ResumeNeeded

#: Head room of an RSA model's integer k-set for NPT box changes (the library default is 0.1): it
#: only sizes the host-side set (vectors beyond k_cut have zero weight), so the energy is the same;
#: a hot liquid released to 0 GPa can grow by more than 10% within one chunk. NVT phases keep
#: their box and take neither this nor the neighbour list's strain skin (``box_may_strain``).
RSA_MD_MARGIN = 0.25
#: A replica blew up when its temperature exceeds this multiple of the recent targets.
BLOWUP_RATIO = 5.0
BLOWUP_WINDOW = 500


def log(message: str) -> None:
    long_range_silica().log(message)


def phases(md: MDSpec):
    """``[(name, Ensemble, Schedule)]`` of the protocol; each schedule is padded (holding its last
    target) to whole chunks of ``log_every * records_per_chunk`` steps."""
    from rsajax.md.integrators import Ensemble
    from rsajax.md.protocols import Schedule, Stage, build_schedule

    p = md.pressure_GPa
    melt = [
        Stage("heat", T_end=md.t_melt, time_ps=md.heat_ps, name="heat"),
        Stage("hold", time_ps=md.hot_ps, name="hot"),
    ]
    quench = [
        Stage("quench", T_end=md.t_glass, rate_K_per_ps=md.quench_rate, pressure_GPa=p),
        Stage("hold", time_ps=md.glass_ps, pressure_GPa=p, name="glass"),
    ]
    chunk = md.log_every * md.records_per_chunk
    out = []
    for name, ensemble, stages, t0 in (
        ("melt", Ensemble("nvt_langevin", md.dt_fs, friction_per_fs=md.friction_per_fs), melt,
         md.t_glass),
        ("quench", Ensemble("npt", md.dt_fs, tau_T_fs=md.tau_T_fs, tau_P_fs=md.tau_P_fs), quench,
         md.t_melt),
    ):  # fmt: skip
        s = build_schedule(stages, md.dt_fs, t0)
        extra = -s.steps % chunk
        padded = (
            np.concatenate([x, np.repeat(x[-1:], extra)]) for x in (s.T_K, s.pressure_GPa, s.stage)
        )
        s = Schedule(*padded, s.labels)
        out.append((name, ensemble, s))
    return out


def build_system(
    model: str,
    model_dir: Path | None,
    atoms: ase.Atoms,
    teacher: str = "bks",
    box_may_strain: bool = True,
):
    """The MD system of the teacher (``model == "teacher"``: the BKS variant ``teacher``) or of a
    trained model (float32, the demo's wall, neighbour lists and RSA k-set with room for NPT box
    changes where ``box_may_strain``; see :func:`trained_system`)."""
    if model == "teacher":
        from rsajax.md.teacher import bks_system
        from rsajax.teachers.bks import variant

        # the supercell and Ewald k-set cover boxes within 15% strain of the start (NPT)
        params = variant(teacher)
        return bks_system(atoms.numbers, atoms.cell.array.T, params=params, strain_margin=0.15)
    from rsajax.nn.model import load_model

    model_, variables = load_model(model_dir)
    if model_.config.dtype != "float32":
        raise ValueError(
            f"{model_dir}: the study runs float32 MD; the model is {model_.config.dtype}"
        )
    return trained_system(model_, variables, atoms, box_may_strain=box_may_strain)


def trained_system(
    model_,
    variables,
    atoms: ase.Atoms,
    margin: float = RSA_MD_MARGIN,
    box_may_strain: bool = True,
):
    """The MD system of a MACE ``(model_, variables)``: the demo's wall, neighbour lists, and an
    RSA k-set with at least ``margin`` head room for NPT box changes. A box that never changes
    (NVT; ``box_may_strain=False``) gets the library's fixed-box system instead: no strain skin on
    the neighbour list and a k-set of exactly the vectors within ``k_cut`` (2800 instead of 5448
    in the cpu preset's 384-atom start box), with the same energies."""
    from rsajax.demo import CORE_REPULSION
    from rsajax.md.adapter import model_system, with_core_repulsion
    from rsajax.nn.model import MACE

    config = model_.config
    fixed_box = {} if box_may_strain else {"strain_skin": 0.0}  # the library's fixed-box system
    if box_may_strain and config.long_range is not None and config.long_range.margin < margin:
        rsa = dataclasses.replace(config.long_range, margin=margin)
        model_ = MACE(dataclasses.replace(config, long_range=rsa))
    system = model_system(model_, variables, atoms.numbers, atoms.cell.array.T, **fixed_box)
    return with_core_repulsion(
        system, CORE_REPULSION["radii"], float(CORE_REPULSION["strength_eV"])
    )


class _Writer:
    """``on_chunk`` of one phase: thermo rows and frames per replica (``rsajax md``'s format,
    global steps), checkpoints of all replicas, and a temperature blow-up check."""

    def __init__(
        self, system, md, schedule, outputs, phase_dir, offset, chunks_done=0, timed=(0.0, 0, 0)
    ):
        self.system, self.md, self.schedule = system, md, schedule
        self.outputs, self.phase_dir, self.offset = outputs, phase_dir, offset
        self.chunks = chunks_done
        self.states, self.step = None, None  # after the last chunk written
        # (seconds, steps they cover) of earlier sittings, and this sitting's first step
        self.seconds_before, self.steps_timed_before, self.first_step = timed
        self.began = time.time()

    def timing(self, step: int) -> dict:
        """``{"seconds", "steps_timed"}`` of all sittings up to ``step`` of this sitting."""
        return {
            "seconds": self.seconds_before + time.time() - self.began,
            "steps_timed": self.steps_timed_before + step - self.first_step,
        }

    def __call__(self, step, states, thermo, positions, boxes):
        from rsajax.md.output import density_g_cm3, save_checkpoint
        from rsajax.md.simulation import BlowUpError

        md, s = self.md, self.schedule
        n_rec = positions.shape[1]
        for r, out in enumerate(self.outputs):
            rows, frames = [], []
            for i in range(n_rec):
                local = step - (n_rec - i - 1) * md.log_every
                j = local - 1
                stage = s.labels[s.stage[j]]
                volume = float(thermo["volume"][r, i])
                row = {
                    "step": self.offset + local,
                    "time_ps": (self.offset + local) * md.dt_fs / 1000.0,
                    "stage": stage,
                    "T_K": float(thermo["temperature"][r, i]),
                    "T_target_K": float(s.T_K[j]),
                    "E_pot_eV": float(thermo["potential"][r, i]),
                    "E_kin_eV": float(thermo["kinetic"][r, i]),
                    "E_tot_eV": float(thermo["potential"][r, i] + thermo["kinetic"][r, i]),
                    "P_GPa": float(thermo["pressure"][r, i]),
                    "P_target_GPa": float(s.pressure_GPa[j]),
                    "volume_A3": volume,
                    "density_g_cm3": float(density_g_cm3(self.system.masses, volume)),
                    "E_lr_eV": (
                        float(thermo["long_range"][r, i]) if "long_range" in thermo else None
                    ),
                }
                rows.append(row)
                # a thermostat lags a fast ramp by about rate x tau: compare with the highest
                # target of the last BLOWUP_WINDOW steps, not the current one
                recent = float(s.T_K[max(0, j - BLOWUP_WINDOW) : j + 1].max())
                if row["T_K"] > BLOWUP_RATIO * max(recent, 300.0):
                    out.write_thermo(rows)
                    raise BlowUpError(
                        f"replica {r}, step {row['step']}: T = {row['T_K']:.0f} K, more than "
                        f"{BLOWUP_RATIO:g} x the highest target of the last {BLOWUP_WINDOW} steps "
                        f"({recent:.0f} K)"
                    )
                if local % md.frame_every[stage] == 0:
                    atoms = ase.Atoms(
                        numbers=self.system.numbers,
                        cell=np.asarray(boxes[r, i], np.float64).T,
                        scaled_positions=np.asarray(positions[r, i], np.float64) % 1.0,
                        pbc=True,
                    )
                    atoms.info.update(step=row["step"], stage=stage, T_K=row["T_K"])
                    frames.append(atoms)
            out.write_thermo(rows)
            out.write_frames(frames)
        self.chunks += 1
        self.states, self.step = states, step
        if self.chunks % md.checkpoint_every == 0 or step == s.steps:
            meta = {"offset": self.offset, **self.timing(step)}
            save_checkpoint(self.phase_dir, states, step, self.system.box, meta)


def _in_float32(fn):
    """``fn`` run inside ``jax.enable_x64(False)``: the study's MD precision, and the caller's
    own setting back afterwards (also after an interruption)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        import jax

        with jax.enable_x64(False):
            return fn(*args, **kwargs)

    return wrapped


@_in_float32
def run_model(
    model: str,
    model_dir: Path | None,
    start: ase.Atoms,
    md: MDSpec,
    out: Path,
    seed: int,
    resume: bool,
    teacher: str = "bks",
) -> dict:
    """Melt-quench ``md.replicas`` replicas of one model (skipped when ``out/done.json`` exists;
    ``teacher``: the BKS variant when ``model`` is the teacher); returns ``done.json``'s content.
    The MD runs in float32 for all three; the caller's JAX precision is left as it was."""
    import jax
    import jax.numpy as jnp

    from rsajax.md.output import RunOutput, load_checkpoint
    from rsajax.md.replicas import run_replicas
    from rsajax.md.simulation import BlowUpError

    done_path = out / "done.json"
    if done_path.is_file():
        log(f"md: {out} is finished")
        return json.loads(done_path.read_text())
    plan = phases(md)
    has_checkpoint = any((out / name / "checkpoint.npz").is_file() for name, _, _ in plan)
    if has_checkpoint and not resume:
        raise ResumeNeeded(
            f"{out} holds an unfinished melt-quench; pass --resume to continue it or delete "
            "the folder to start again"
        )
    if not has_checkpoint and out.exists():
        shutil.rmtree(out)  # a start that never reached a checkpoint: nothing to keep
    out.mkdir(parents=True, exist_ok=True)
    n_rep = md.replicas
    seeds = [1000 * seed + k for k in range(n_rep)]
    R = np.broadcast_to(start.get_scaled_positions(), (n_rep, len(start), 3))
    box = start.cell.array.T
    summary = {"model": model, "replicas": n_rep, "atoms": len(start), "phases": {}}
    if model == "teacher":
        summary["teacher"] = teacher
    offset = 0
    for name, ensemble, schedule in plan:
        phase_dir = out / name
        final = phase_dir / "final.npz"
        if final.is_file():  # phase finished earlier
            with np.load(final) as f:
                R, box = f["positions"], f["box"]
            summary["phases"][name] = json.loads((phase_dir / "done.json").read_text())
            offset += schedule.steps
            continue
        checkpoint = phase_dir / "checkpoint.npz"
        start_step, restore, timed = 0, None, (0.0, 0, 0)
        if checkpoint.is_file():
            with np.load(checkpoint) as f:
                start_step, box = int(f["step"]), np.asarray(f["box"])  # allocation box
                meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
            # a checkpoint from before timings were recorded: its steps stay untimed
            timed = (float(meta.get("seconds", 0.0)), int(meta.get("steps_timed", 0)), start_step)
            log(f"md: {model} phase {name}: resuming at step {start_step}/{schedule.steps}")

            def restore(template, phase_dir=phase_dir):
                return load_checkpoint(phase_dir, template)[0]

        system = build_system(
            model, model_dir, _with_box(start, box), teacher, ensemble.kind == "npt"
        )
        fresh = start_step == 0 and offset == 0
        outputs = [
            RunOutput(out / f"rep{k}", None if fresh else offset + start_step) for k in range(n_rep)
        ]
        writer = _Writer(
            system, md, schedule, outputs, phase_dir, offset, start_step // _chunk(md), timed
        )
        log(
            f"md: {model} phase {name} ({ensemble.kind}): {n_rep} replicas x {len(start)} atoms, "
            f"{schedule.steps} steps, stages {schedule.labels}"
        )
        rebuilds = 0
        while True:
            try:
                result = run_replicas(
                    system,
                    ensemble,
                    jnp.asarray(R, jnp.float32),
                    np.broadcast_to(schedule.T_K, (n_rep, schedule.steps)),
                    np.broadcast_to(schedule.pressure_GPa, (n_rep, schedule.steps)),
                    seeds=[s + (0 if name == "melt" else 500) for s in seeds],
                    log_every=md.log_every,
                    records_per_chunk=md.records_per_chunk,
                    start_step=start_step,
                    restore=restore,
                    on_chunk=writer,
                )
                break
            except RuntimeError as error:
                # NPT moved a box out of what the allocation covers (an RSA k-set, the teacher's
                # Ewald set and supercell): allocate again for the replicas' mean box and redo
                # the chunk from the last good states, as rsajax.md.Simulation does for one run
                if isinstance(error, BlowUpError) or writer.states is None or rebuilds >= 20:
                    raise
                rebuilds += 1
                box = np.asarray(jax.vmap(_box_fn(system, ensemble))(writer.states)).mean(axis=0)
                log(f"md: {model} step {offset + writer.step}: {error}; allocating again")
                system = build_system(
                    model, model_dir, _with_box(start, box), teacher, ensemble.kind == "npt"
                )
                writer.system, start_step = system, writer.step

                def restore(template, states=writer.states):
                    return states

        timing = writer.timing(schedule.steps)
        steps = schedule.steps - start_step
        R = np.asarray(result.states.position)
        boxes = np.asarray(jax.vmap(_box_fn(system, ensemble))(result.states))
        box = boxes.mean(axis=0)  # the next phase allocates for the mean box (NPT: a spread)
        np.savez(final, positions=R, box=box, boxes=boxes)
        done = dict(
            kind=ensemble.kind,
            steps=int(schedule.steps),
            steps_run_here=int(steps),
            steps_timed=int(timing["steps_timed"]),
            seconds=round(timing["seconds"], 1),
            atom_steps_per_s=round(
                n_rep * len(start) * timing["steps_timed"] / max(timing["seconds"], 1e-9), 1
            ),
            reallocations=int(result.reallocations),
            box_reallocations=rebuilds,
        )
        (phase_dir / "done.json").write_text(json.dumps(done, indent=1) + "\n")
        summary["phases"][name] = done
        log(f"md: {model} phase {name} done: {json.dumps(done)}")
        offset += schedule.steps
    summary["melt"] = melt_checks(out, start, n_rep)
    summary["seconds"] = round(sum(p["seconds"] for p in summary["phases"].values()), 1)
    done_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _chunk(md: MDSpec) -> int:
    return md.log_every * md.records_per_chunk


def _with_box(atoms: ase.Atoms, box: np.ndarray) -> ase.Atoms:
    """A copy of ``atoms`` in the column-major ``box`` (fractional positions kept)."""
    out = atoms.copy()
    out.set_cell(np.asarray(box).T, scale_atoms=True)
    return out


def _box_fn(system, ensemble):
    from rsajax.md.integrators import make_integrator

    return make_integrator(system, ensemble, 1.0).box


def melt_checks(out: Path, start: ase.Atoms, n_rep: int) -> list[dict]:
    """The melt check of every replica (O MSD over ``hot``, ring change from ``start``)."""
    from rsajax.analysis.melt import melt_check

    checks = []
    for k in range(n_rep):
        try:
            check = melt_check(out / f"rep{k}" / "trajectory.extxyz", start, hot_stage="hot")
        except (ValueError, FileNotFoundError) as error:
            checks.append({"replica": k, "melted": False, "error": str(error)})
            log(f"md: {out.name} replica {k}: NOT MELTED: the check failed: {error}")
            continue
        entry = {"replica": k, **check.to_dict()}
        entry.pop("msd_curve")
        checks.append(entry)
        log(f"md: {out.name} replica {k}: " + check.lines()[0])
    (out / "melt.json").write_text(json.dumps(checks, indent=1) + "\n")
    return checks
