"""Silica training data labelled by BKS: crystals, melt, supercooled liquid, glass, strained cells.

Order of the frames (fixed, so a seed reproduces a file): for each crystal, ``crystal_frames``
strained and rattled copies; then for each melt-quench run: random start at the target density
(placed at 2.2 g/cm^3 and compressed when denser), FIRE relaxation, Langevin MD at ``t_melt``
(equilibration, then ``melt`` frames), a linear ramp to ``t_glass`` (``quench`` frames),
``anneal`` frames at ``t_glass``, and ``strained`` copies of randomly chosen frames of the run.
Every frame records how it was made in ``atoms.info``.

Positions are rounded to 1e-6 A *before* labelling, so the labels in the file are the BKS labels
of the positions in the file (to the written precision of the labels).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rsajax.teachers import dynamics, structures
from rsajax.teachers.bks import bks_silica, make_label_fn, variant


@dataclasses.dataclass(frozen=True)
class MeltQuenchRun:
    """One melt-quench trajectory: box size and how many frames each stage gives."""

    n_units: int
    melt_frames: int
    quench_frames: int
    anneal_frames: int
    strained_frames: int
    quench_ps: float


@dataclasses.dataclass(frozen=True)
class SilicaConfig:
    """How a silica data set is made (times in ps, temperatures in K, density in g/cm^3)."""

    name: str
    runs: tuple[MeltQuenchRun, ...]
    crystal_repeats: tuple[tuple[str, tuple[int, int, int]], ...]
    crystal_frames: int
    density: float = 2.2
    t_melt: float = 6000.0
    t_glass: float = 300.0
    equilibrate_ps: float = 2.0
    melt_ps: float = 3.0
    anneal_ps: float = 2.0
    dt_fs: float = 1.0
    friction_per_fs: float = 0.01
    relax_steps: int = 200
    max_strain: float = 0.04
    crystal_max_strain: float = 0.02
    crystal_rattle_A: tuple[float, float] = (0.01, 0.12)
    md_dtype: str = "float32"
    steps_per_chunk: int = 50
    skin: float = 1.0
    #: which BKS labels the data and drives its MD (``rsajax.teachers.bks.VARIANTS``)
    teacher: str = "bks"


CONFIGS = {
    "small": SilicaConfig(
        name="small",
        runs=(
            MeltQuenchRun(
                64,
                melt_frames=30,
                quench_frames=80,
                anneal_frames=20,
                strained_frames=30,
                quench_ps=20.0,
            ),
            MeltQuenchRun(
                32,
                melt_frames=15,
                quench_frames=40,
                anneal_frames=10,
                strained_frames=15,
                quench_ps=10.0,
            ),
        ),
        crystal_repeats=(("alpha-quartz", (2, 2, 2)), ("beta-cristobalite", (2, 1, 1))),
        crystal_frames=12,
    ),
    "large": SilicaConfig(
        name="large",
        runs=tuple(
            MeltQuenchRun(
                n,
                melt_frames=100,
                quench_frames=400,
                anneal_frames=100,
                strained_frames=100,
                quench_ps=100.0,
            )
            for n in (512, 216, 64)
        ),
        crystal_repeats=(("alpha-quartz", (4, 4, 4)), ("beta-cristobalite", (3, 3, 3))),
        crystal_frames=60,
        melt_ps=10.0,
        anneal_ps=10.0,
    ),
}

CRYSTALS: dict[str, Callable[[], Atoms]] = {
    "alpha-quartz": structures.alpha_quartz,
    "beta-cristobalite": structures.beta_cristobalite,
}


class Labeller:
    """BKS labels for many frames with the same atoms and nearby cells, compiled once."""

    def __init__(self, atoms: Atoms, strain_margin: float, teacher: str = "bks"):
        self.numbers = atoms.numbers.copy()
        self.system = bks_silica(
            atoms.numbers,
            atoms.cell.array.T,
            params=variant(teacher),
            skin=0.0,
            strain_margin=strain_margin,
        )
        self.label_fn = make_label_fn(self.system)
        self.neighbors = None

    def __call__(self, atoms: Atoms) -> Atoms:
        """Attach energy, forces and stress (SinglePointCalculator) to ``atoms`` and return it."""
        if not np.array_equal(atoms.numbers, self.numbers):
            raise ValueError("Labeller: atoms differ from the ones it was built for")
        box = jnp.asarray(atoms.cell.array.T, dtype=jnp.float64)
        R = jnp.asarray(atoms.get_scaled_positions(wrap=True), dtype=jnp.float64)
        fns = self.system.neighbor_fn
        if self.neighbors is not None:  # force a rebuild for the new cell and positions
            far = self.neighbors.replace(reference_position=R + 0.5)
            self.neighbors = fns.update(R, far, box=box)
        if self.neighbors is None or bool(self.neighbors.did_buffer_overflow):
            self.neighbors = fns.allocate(R, box=box, extra_capacity=16)
        energy, forces, stress = self.label_fn(R, self.neighbors, box)
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(energy), forces=np.asarray(forces), stress=np.asarray(stress)
        )
        return atoms


def rounded_frame(numbers, cell: np.ndarray, fractional: np.ndarray, info: dict) -> Atoms:
    """Atoms with wrapped positions rounded to 1e-6 A (the precision written to the file)."""
    atoms = Atoms(numbers=numbers, cell=cell, scaled_positions=np.mod(fractional, 1.0), pbc=True)
    atoms.positions = np.round(atoms.positions, 6)
    atoms.info.update(info)
    return atoms


def crystal_frames(config: SilicaConfig, seed: int) -> Iterator[Atoms]:
    """Strained and rattled copies of each crystal."""
    for index, (name, repeat) in enumerate(config.crystal_repeats):
        rng = np.random.default_rng([seed, 1000 + index])
        base = CRYSTALS[name]().repeat(repeat)
        labeller = Labeller(base, 3.0 * config.crystal_max_strain, config.teacher)
        for _ in range(config.crystal_frames):
            strain = structures.random_strain(rng, config.crystal_max_strain)
            rattle = rng.uniform(*config.crystal_rattle_A)
            atoms = structures.strained(base, strain)
            atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
            info = dict(
                stage="crystal",
                source=f"{name} {'x'.join(map(str, repeat))}",
                strain=strain.ravel(),
                rattle_A=round(rattle, 6),
                temperature_K=0.0,
            )
            yield labeller(
                rounded_frame(
                    atoms.numbers, atoms.cell.array, atoms.get_scaled_positions(wrap=False), info
                )
            )


def melt_quench_frames(config: SilicaConfig, run: MeltQuenchRun, seed: int, index: int):
    """Frames of one melt-quench run, then strained copies of some of them."""
    rng = np.random.default_rng([seed, index])
    start_atoms = structures.random_silica_compressed(run.n_units, config.density, rng)
    numbers, cell = start_atoms.numbers, start_atoms.cell.array
    system = bks_silica(numbers, cell.T, params=variant(config.teacher), skin=config.skin)
    R = dynamics.relax(system, start_atoms.get_scaled_positions(), config.relax_steps)
    dtype = jnp.dtype(config.md_dtype)
    chunk = config.steps_per_chunk
    traj = dynamics.start(
        system,
        R,
        config.t_melt,
        jax.random.PRNGKey(seed * 7919 + index),
        dt_fs=config.dt_fs,
        friction_per_fs=config.friction_per_fs,
        steps_per_chunk=chunk,
        dtype=dtype,
    )
    labeller = Labeller(start_atoms, 3.0 * config.max_strain, config.teacher)
    source = f"melt-quench {run.n_units} SiO2 at {config.density} g/cm3"

    def steps(ps: float, frames: int) -> int:
        """Steps between frames: a whole number of chunks, at least one."""
        return max(chunk, int(round(ps * 1000.0 / config.dt_fs / frames / chunk)) * chunk)

    def frame(stage: str, temperature: float) -> Atoms:
        info = dict(
            stage=stage,
            source=source,
            temperature_K=round(float(temperature), 3),
            time_ps=round(traj.steps_done * config.dt_fs / 1000.0, 6),
            strain=np.zeros(9),
            rattle_A=0.0,
        )
        fractional = np.asarray(traj.state.position, dtype=np.float64)
        return labeller(rounded_frame(numbers, cell, fractional, info))

    traj.run(np.full(steps(config.equilibrate_ps, 1), config.t_melt))
    made = []
    n = steps(config.melt_ps, run.melt_frames)
    for _ in range(run.melt_frames):
        traj.run(np.full(n, config.t_melt))
        made.append(frame("melt", config.t_melt))
        yield made[-1]
    n = steps(run.quench_ps, run.quench_frames)
    ramp = np.linspace(config.t_melt, config.t_glass, n * run.quench_frames)
    for k in range(run.quench_frames):
        traj.run(ramp[k * n : (k + 1) * n])
        made.append(frame("quench", ramp[(k + 1) * n - 1]))
        yield made[-1]
    n = steps(config.anneal_ps, run.anneal_frames)
    for _ in range(run.anneal_frames):
        traj.run(np.full(n, config.t_glass))
        made.append(frame("anneal", config.t_glass))
        yield made[-1]
    for k in rng.choice(len(made), size=run.strained_frames, replace=False):
        strain = structures.random_strain(rng, config.max_strain)
        parent = made[k]
        atoms = structures.strained(parent, strain)
        info = dict(parent.info, stage="strained", strain=strain.ravel())
        yield labeller(
            rounded_frame(numbers, atoms.cell.array, atoms.get_scaled_positions(wrap=False), info)
        )


def generate(config: SilicaConfig, seed: int = 0) -> Iterator[Atoms]:
    """All frames of a data set, in file order (needs ``jax_enable_x64``; labels are float64)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError("generate() needs jax.config.update('jax_enable_x64', True) first")
    for atoms in crystal_frames(config, seed):
        atoms.info.update(seed=seed, config=config.name)
        yield atoms
    for index, run in enumerate(config.runs):
        for atoms in melt_quench_frames(config, run, seed, index):
            atoms.info.update(seed=seed, config=config.name, run=index)
            yield atoms


def _number(value: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(value))


def write_extxyz(path: str, frames: list[Atoms]) -> None:
    """Compact extxyz (positions and forces at 1e-6) that ``ase.io.read`` reads labels from."""
    with open(path, "w") as handle:
        for atoms in frames:
            results = atoms.calc.results
            lattice = " ".join(_number(x) for x in atoms.cell.array.ravel())
            stress = " ".join(_number(x) for x in np.asarray(results["stress"]).ravel())
            extra = []
            for key, value in atoms.info.items():
                if isinstance(value, np.ndarray):
                    extra.append(f'{key}="{" ".join(_number(x) for x in value.ravel())}"')
                elif isinstance(value, str):
                    extra.append(f'{key}="{value}"')
                else:
                    extra.append(f"{key}={value}")
            handle.write(f"{len(atoms)}\n")
            handle.write(
                f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
                f'energy={_number(results["energy"])} stress="{stress}" '
                f'{" ".join(extra)} pbc="T T T"\n'
            )
            forces = np.asarray(results["forces"])
            for symbol, p, f in zip(
                atoms.get_chemical_symbols(), atoms.positions, forces, strict=True
            ):
                handle.write(
                    f"{symbol} {p[0]:.6f} {p[1]:.6f} {p[2]:.6f} {f[0]:.6f} {f[1]:.6f} {f[2]:.6f}\n"
                )


def build_dataset(
    config: SilicaConfig, out: str, seed: int = 0, log: Callable[[str], None] = print
) -> dict:
    """Generate, write ``out`` (extxyz) and ``out`` with ``.json`` (how it was made); summary."""
    began = time.time()
    frames = []
    for atoms in generate(config, seed):
        frames.append(atoms)
        if len(frames) % 20 == 0:
            log(f"{len(frames)} frames, {time.time() - began:.0f} s, last: {atoms.info['stage']}")
    write_extxyz(out, frames)
    stages: dict[str, int] = {}
    for atoms in frames:
        stages[atoms.info["stage"]] = stages.get(atoms.info["stage"], 0) + 1
    summary = dict(
        file=out.rsplit("/", 1)[-1],
        frames=len(frames),
        atoms_per_frame=sorted({len(a) for a in frames}),
        stages=stages,
        seed=seed,
        seconds=round(time.time() - began, 1),
        config=dataclasses.asdict(config),
        teacher=dict(
            name=f"{config.teacher}: BKS + Ewald + 30-6 LJ wall (rsajax.teachers.bks)",
            parameters=dataclasses.asdict(variant(config.teacher)),
        ),
        versions=dict(jax=jax.__version__),
        command=f"rsajax teach silica --config {config.name} --teacher {config.teacher} "
        f"--seed {seed} --out {out}",
    )
    with open(out.rsplit(".", 1)[0] + ".json", "w") as handle:
        json.dump(summary, handle, indent=1)
    return summary
