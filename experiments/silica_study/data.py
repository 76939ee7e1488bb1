"""Stage 1: BKS teacher data over the liquid, the supercooled liquid, the glass, crystals and
strained cells at several densities; held-out test frames with the far Coulomb part; the start
glass of stage 3.

Outputs in ``OUT/data``: ``parts/*.xyz`` (one file per generator piece, so an interrupted stage
redoes only the missing pieces), ``train.xyz``, ``train_no_supercooled.xyz`` (the ablation's
training set), ``test.xyz``, ``start.extxyz`` and ``data.json`` (counts per phase and density,
closest pairs against the MD wall, label statistics, timings). The stage is finished when
``data.json`` exists.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import ase
import ase.io
import jax
import numpy as np

from experiments.silica_study.presets import Preset
from experiments.silica_study.reuse import long_range_silica

#: Temperature classes of a frame (crystals are their own class).
PHASES = ("crystal", "liquid", "supercooled", "glass")


def log(message: str) -> None:
    long_range_silica().log(message)


def phase_of(info: dict, liquid_K: float, glass_K: float) -> str:
    """``crystal``, ``liquid`` (T >= liquid_K), ``glass`` (T <= glass_K) or ``supercooled`` from
    a frame's ``info`` (``stage``, ``temperature_K``; strained copies carry their parent's T)."""
    if info.get("stage") == "crystal":
        return "crystal"
    if "temperature_K" not in info:
        raise ValueError(f"frame without temperature_K (stage {info.get('stage')!r})")
    t = float(info["temperature_K"])
    if t >= liquid_K:
        return "liquid"
    return "glass" if t <= glass_K else "supercooled"


def split_extxyz(text: str) -> list[str]:
    """The frames of an extxyz text, each as its own text (count line, comment, atom lines)."""
    lines = text.splitlines(keepends=True)
    frames, k = [], 0
    while k < len(lines):
        if not lines[k].strip():
            k += 1
            continue
        n = int(lines[k].split()[0])
        frames.append("".join(lines[k : k + n + 2]))
        k += n + 2
    return frames


def write_filtered(source: Path, target: Path, keep: list[bool]) -> int:
    """Copy the frames of ``source`` with ``keep`` True to ``target`` verbatim; returns the count
    (labels are not rewritten, so they stay bit for bit the teacher's)."""
    frames = split_extxyz(source.read_text())
    if len(frames) != len(keep):
        raise ValueError(f"{source}: {len(frames)} frames but {len(keep)} keep flags")
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(f for f, k in zip(frames, keep, strict=True) if k))
    tmp.replace(target)
    return int(sum(keep))


def closest_pairs(frames: list[ase.Atoms], r_max: float = 3.0) -> dict[str, float]:
    """Closest Si-O, O-O and Si-Si distance (A) over ``frames``."""
    from ase.neighborlist import neighbor_list

    out = {"Si-O": np.inf, "O-O": np.inf, "Si-Si": np.inf}
    names = {(14, 8): "Si-O", (8, 14): "Si-O", (8, 8): "O-O", (14, 14): "Si-Si"}
    for atoms in frames:
        i, j, d = neighbor_list("ijd", atoms, r_max)
        zi, zj = atoms.numbers[i], atoms.numbers[j]
        for (a, b), name in names.items():
            sel = (zi == a) & (zj == b)
            if sel.any():
                out[name] = min(out[name], float(d[sel].min()))
    return {k: round(v, 4) for k, v in out.items()}


def _write_part(path: Path, make, writer) -> float:
    """Write one generated piece unless it exists; returns the seconds it took (0 if skipped)."""
    if path.is_file():
        return 0.0
    began = time.time()
    frames = list(make())
    tmp = path.with_suffix(".tmp")
    writer(tmp, frames)
    tmp.replace(path)
    return round(time.time() - began, 1)


class TeacherMismatch(ValueError):
    """A work folder's data were made by another teacher than the preset's."""


def teacher_of(out: Path) -> str | None:
    """The BKS variant that made the data in ``out`` (a data folder): recorded in ``data.json``,
    or in ``parts/teacher.txt`` while the stage runs; ``bks`` for data from before the record (the
    only teacher then); None when ``out`` holds no data."""
    summary_path, mark = out / "data.json", out / "parts" / "teacher.txt"
    if summary_path.is_file():
        return json.loads(summary_path.read_text()).get("teacher", "bks")
    if mark.is_file():
        return mark.read_text().strip()
    if (out / "parts").is_dir() and any((out / "parts").glob("*.xyz")):
        return "bks"
    return None


def check_teacher(preset: Preset, out: Path, mark_new: bool = True) -> None:
    """Raise :class:`TeacherMismatch` unless the data in ``out`` (finished, or the pieces of an
    unfinished stage) were made by ``preset.teacher`` (:func:`teacher_of`). ``mark_new``: record
    ``preset.teacher`` in a folder whose data stage has not finished."""
    made_by = teacher_of(out) or preset.teacher
    if made_by != preset.teacher:
        raise TeacherMismatch(
            f"{out}: its data were made with the teacher {made_by!r}, but preset "
            f"{preset.name!r} uses {preset.teacher!r}; use another --out (or delete the folder)"
        )
    if mark_new and not (out / "data.json").is_file():
        mark = out / "parts" / "teacher.txt"
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(preset.teacher + "\n")


def generate(preset: Preset, out: Path) -> dict:
    """Run stage 1 (skipped when ``out/data.json`` exists); returns the data summary."""
    summary_path = out / "data.json"
    check_teacher(preset, out)
    if summary_path.is_file():
        log(f"data: {out} is complete")
        return json.loads(summary_path.read_text())
    from rsajax.demo import CORE_REPULSION
    from rsajax.teachers import generate as gen
    from rsajax.teachers.coulomb_split import CoulombSplitLabeller

    lr = long_range_silica()
    spec, seed = preset.data, preset.seed
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    train_parts = [parts / "crystals.xyz"] + [parts / f"density_{d}.xyz" for d in spec.densities]
    test_parts = [parts / f"test_box{k}.xyz" for k in range(len(spec.test_boxes))]
    with jax.enable_x64(True):  # labels in float64 (the MD itself runs in float32)
        base = spec.silica_config(preset.name, spec.densities[0], preset.teacher)
        log(f"data: {len(spec.crystal_repeats)} crystals x {spec.crystal_frames} strained frames")
        timings["crystals"] = _write_part(
            train_parts[0], lambda: gen.crystal_frames(base, seed), gen.write_extxyz
        )
        for k, density in enumerate(spec.densities):
            config = spec.silica_config(preset.name, density, preset.teacher)

            def melt_quench(config=config, k=k, density=density):
                for index, run in enumerate(config.runs):
                    log(f"data: melt-quench of {3 * run.n_units} atoms at {config.density} g/cm3")
                    for atoms in gen.melt_quench_frames(
                        config, run, seed, k * len(config.runs) + index
                    ):
                        atoms.info.update(seed=seed, config=config.name, run_density_g_cm3=density)
                        yield atoms

            timings[f"density_{density}"] = _write_part(
                train_parts[k + 1], melt_quench, gen.write_extxyz
            )
        splitter = CoulombSplitLabeller()
        for k, box in enumerate(spec.test_boxes):
            log(f"data: test box {k}: {box}")
            timings[f"test_box{k}"] = _write_part(
                test_parts[k],
                lambda box=box, k=k: lr.test_box_frames(box, seed, k, splitter, preset.teacher),
                lr.write_extxyz,
            )
    (out / "train.xyz").write_text("".join(p.read_text() for p in train_parts))
    (out / "test.xyz").write_text("".join(p.read_text() for p in test_parts))
    train = ase.io.read(out / "train.xyz", ":")
    test = ase.io.read(out / "test.xyz", ":")
    phases = [phase_of(a.info, spec.liquid_K, spec.glass_K) for a in train]
    kept = write_filtered(
        out / "train.xyz", out / "train_no_supercooled.xyz", [p != "supercooled" for p in phases]
    )
    start = ase.io.read(test_parts[0], index=-1)
    start.calc = None
    ase.io.write(out / "start.extxyz", start)
    counts: dict[str, dict[str, int]] = {}
    for atoms, phase in zip(train, phases, strict=True):
        key = "crystal" if phase == "crystal" else f"{float(atoms.info['run_density_g_cm3']):.2f}"
        counts.setdefault(key, {}).setdefault(phase, 0)
        counts[key][phase] += 1
        if atoms.info.get("stage") == "strained":
            counts[key]["strained (of those)"] = counts[key].get("strained (of those)", 0) + 1
    closest = closest_pairs(train)
    wall = CORE_REPULSION["radii"]
    wall_ok = all(wall[pair] < closest[pair] for pair in wall)
    if not wall_ok:
        log(f"WARNING: the MD wall {wall} reaches into the data's closest pairs {closest}")
    summary = dict(
        preset=preset.name,
        seed=seed,
        teacher=preset.teacher,
        train_frames=len(train),
        train_no_supercooled_frames=kept,
        test_frames=len(test),
        atoms_per_frame=sorted({len(a) for a in train}),
        test_atoms_per_frame=sorted({len(a) for a in test}),
        frames_by_density_and_phase=counts,
        phase_limits_K=dict(liquid_at_least=spec.liquid_K, glass_at_most=spec.glass_K),
        densities_g_cm3=list(spec.densities),
        start=dict(atoms=len(start), density_g_cm3=round(_density(start), 4)),
        closest_pairs_A=closest,
        md_wall_radii_A=wall,
        md_wall_below_data=wall_ok,
        test_statistics=lr.label_statistics(test),
        timings_s=timings,
    )
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    log(f"data: {len(train)} training frames {counts}; {len(test)} test frames")
    return summary


def _density(atoms: ase.Atoms) -> float:
    from rsajax.analysis.frames import density_g_cm3

    return density_g_cm3([atoms])
