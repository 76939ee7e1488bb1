"""``rsajax md CONFIG``: run an MD protocol from a YAML config with a saved rsajax model or the BKS
teacher. See ``experiments/configs/md_*.yaml`` for complete examples::

    model: models/silica_sr        # an rsajax model directory, or "bks" / "bks-glass"
    structure: start.extxyz        # first frame used; or random_silica: {n_atoms: 192, seed: 0}
    dtype: float64                 # float32 runs the model in single precision
    seed: 0
    relax_steps: 0                 # FIRE steps before MD (for random starts)
    initial_temperature_K: 300
    ensemble: {kind: nvt_langevin, dt_fs: 1.0, friction_per_fs: 0.01}
    stages:
      - {kind: heat, T_end: 3000, steps: 1000}
      - {kind: hold, time_ps: 1}
      - {kind: quench, T_end: 300, rate_K_per_ps: 1000}
    output: {dir: runs/melt_quench, log_every: 10, records_per_chunk: 10, frame_every: 100,
             checkpoint_every: 10}
    core_repulsion:                # optional pair wall below the training data's closest pairs
      radii: {O-O: 1.6, Si-O: 1.1, Si-Si: 2.0}   # A; strength_eV: 10 (see md.adapter)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from rsajax.errors import InputError

TOP_KEYS = {
    "model",
    "structure",
    "dtype",
    "seed",
    "relax_steps",
    "initial_temperature_K",
    "ensemble",
    "stages",
    "output",
    "skin",
    "limits",
    "core_repulsion",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``md`` on an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "md",
        help="run an MD protocol (heat, hold, quench, anneal) in jax-md",
        description="Run molecular dynamics of a saved rsajax model (or the BKS silica teacher) "
        "in jax-md from a YAML config: thermo log (CSV, JSONL), extxyz and ASE trajectories, "
        "checkpoints.",
    )
    p.add_argument("config", type=Path, help="YAML run configuration")
    p.add_argument("--out", type=Path, help="output directory (overrides output.dir)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in the output directory"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def load_config(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    unknown = set(config) - TOP_KEYS
    if unknown:
        raise InputError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(TOP_KEYS)})")
    for key in ("model", "structure", "stages"):
        if key not in config:
            raise InputError(f"{path}: missing required key {key!r}")
    return config


def from_section(make, where: str, section: str, values):
    """``make(**values)`` for a config section; a wrong key or value is an :class:`InputError`
    naming the config file and the section. ``make`` is a settings class that only checks its
    arguments, so a TypeError or ValueError here is the config's."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: {section} must be a mapping, got {values!r}")
    if dataclasses.is_dataclass(make):
        known = {f.name for f in dataclasses.fields(make)}
        if set(values) - known:
            raise InputError(
                f"{where}: {section}: unknown keys {sorted(set(values) - known)} "
                f"(known: {sorted(known)})"
            )
    try:
        return make(**values)
    except (TypeError, ValueError) as err:
        raise InputError(f"{where}: {section}: {err}") from err


def load_structure(spec, where: str):
    from ase.io import read

    from rsajax.data import random_silica_box

    if isinstance(spec, dict) and "random_silica" in spec:
        return from_section(random_silica_box, where, "random_silica", spec["random_silica"])
    if not isinstance(spec, str):
        raise InputError(f"{where}: structure must be a file path or {{random_silica: {{...}}}}")
    if not Path(spec).is_file():
        raise FileNotFoundError(f"{spec}: structure file not found (named in {where})")
    try:
        atoms = read(spec, index=0)
    except Exception as err:  # ASE raises many kinds; name the file in all of them
        raise InputError(f"{spec}: ASE could not read the structure ({err})") from err
    if not np.all(atoms.pbc) or atoms.cell.rank != 3:
        raise InputError(f"{spec}: MD needs a periodic 3D cell")
    from rsajax.data.graphs import total_charge

    try:
        total_charge(atoms)
    except ValueError as err:
        raise InputError(f"{spec}: {err}") from err
    return atoms


def build_system(config: dict, atoms, dtype: str):
    from rsajax.teachers.bks import VARIANTS

    wall = config.get("core_repulsion")
    if wall and config["model"] in VARIANTS:
        raise InputError("core_repulsion is for rsajax models; the BKS teacher has its own wall")
    if wall and (set(wall) - {"radii", "strength_eV"} or not isinstance(wall.get("radii"), dict)):
        raise InputError(
            f"core_repulsion: needs radii {{pair: A}} and optional strength_eV, got {wall}"
        )
    system = _build_system(config, atoms, dtype)
    if wall:
        from rsajax.md.adapter import with_core_repulsion

        system = with_core_repulsion(system, wall["radii"], float(wall.get("strength_eV", 10.0)))
    return system


def _build_system(config: dict, atoms, dtype: str):
    from rsajax.data.graphs import total_charge
    from rsajax.md.adapter import model_system
    from rsajax.md.teacher import bks_system
    from rsajax.teachers.bks import VARIANTS

    box = np.asarray(atoms.cell.array, np.float64).T
    skin = float(config.get("skin", 0.5))
    if config["model"] in VARIANTS:  # the BKS teacher: 10 A (bks) or 5.5 A (bks-glass) cut
        return bks_system(atoms.numbers, box, params=VARIANTS[config["model"]], skin=skin)
    import jax

    from rsajax.nn.model import MACE, load_model

    model, variables = load_model(config["model"])
    if model.config.dtype != dtype:
        model = MACE(dataclasses.replace(model.config, dtype=dtype))
        variables = jax.tree_util.tree_map(
            lambda x: (
                np.asarray(x, dtype) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
            ),
            variables,
        )
    # Listed pairs are model work (masked beyond r_max): only NPT needs list room for box changes.
    npt = config.get("ensemble", {}).get("kind") == "npt"
    no_box_change = {} if npt else {"strain_skin": 0.0}
    return model_system(
        model,
        variables,
        atoms.numbers,
        box,
        skin=skin,
        total_charge=total_charge(atoms),
        **no_box_change,
    )


#: ``output`` keys and their types (``dir`` is the run directory; the rest go to Simulation).
OUTPUT_KEYS = {
    "dir": str,
    "log_every": int,
    "records_per_chunk": int,
    "frame_every": int,
    "checkpoint_every": int,
}


def output_settings(values, where: str) -> dict:
    """The ``output`` section checked: known keys, positive integers (a null frame or checkpoint
    interval turns that output off)."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: output must be a mapping, got {values!r}")
    unknown = set(values) - set(OUTPUT_KEYS)
    if unknown:
        raise InputError(
            f"{where}: output: unknown keys {sorted(unknown)} (known: {sorted(OUTPUT_KEYS)})"
        )
    for key, value in values.items():
        optional = key in ("frame_every", "checkpoint_every") and value is None
        if OUTPUT_KEYS[key] is int and not optional:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{where}: output.{key} must be a positive integer, got {value!r}")
    return dict(values)


def scalar(config: dict, key: str, default, kind: type, where: str):
    """``config[key]`` (or ``default``) as ``kind`` (int or float), or an :class:`InputError`."""
    value = config.get(key)
    value = default if value is None else value
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not whole):
        raise InputError(
            f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        )
    return kind(value)


def run(args) -> int:
    config = load_config(args.config)
    dtype = config.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        raise InputError(f"{args.config}: dtype must be float32 or float64, got {dtype!r}")
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp

    from rsajax.md.integrators import Ensemble
    from rsajax.md.protocols import Schedule, build_schedule, stage_from_dict
    from rsajax.md.simulation import BlowUpLimits, Simulation, relax

    where = str(args.config)
    atoms = load_structure(config["structure"], where)
    ensemble = from_section(Ensemble, where, "ensemble", config.get("ensemble", {}))
    limits = from_section(BlowUpLimits, where, "limits", config.get("limits", {}))
    if not isinstance(config["stages"], list):
        raise InputError(f"{where}: stages must be a list of stage mappings")
    stages = [
        from_section(lambda **d: stage_from_dict(d), where, f"stages[{i}]", s)
        for i, s in enumerate(config["stages"])
    ]
    seed = scalar(config, "seed", 0, int, where)
    relax_steps = scalar(config, "relax_steps", 0, int, where)
    T_initial = scalar(config, "initial_temperature_K", 300.0, float, where)
    scalar(config, "skin", 0.5, float, where)
    output = output_settings(config.get("output", {}), where)
    system = build_system(config, atoms, dtype)
    config_dir = Path(output.pop("dir", "md_run"))  # always removed: Simulation takes no "dir"
    out_dir = args.out or config_dir
    log_every = output.pop("log_every", 10)
    schedule = build_schedule(stages, ensemble.dt_fs, T_initial)
    extra = -schedule.steps % log_every
    if extra:  # hold the last targets so the run ends on a log record
        schedule = Schedule(
            *(
                np.concatenate([x, np.repeat(x[-1:], extra)])
                for x in (schedule.T_K, schedule.pressure_GPa, schedule.stage)
            ),
            schedule.labels,
        )
    R = jnp.asarray(atoms.get_scaled_positions(), dtype)
    if relax_steps and not args.resume:
        R = relax(system, R, relax_steps)
    sim = Simulation(
        system,
        ensemble,
        R,
        schedule,
        seed=seed,
        log_every=log_every,
        out_dir=out_dir,
        limits=limits,
        progress=not args.no_progress,
        **output,
    )
    result = sim.run(resume=args.resume)
    if not result.rows:
        print(f"{out_dir}: the checkpoint is at step {result.steps}, nothing left to run")
        return 0
    last = result.rows[-1]
    print(
        f"{result.steps} steps ({last['time_ps']:.2f} ps), final T {last['T_K']:.0f} K, "
        f"density {last['density_g_cm3']:.3f} g/cm3; neighbour-list reallocations "
        f"{result.reallocations}; output in {out_dir}"
    )
    return 0
