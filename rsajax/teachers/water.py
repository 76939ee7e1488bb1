"""Exact reference for liquid water: flexible fixed-charge water (SPC/Fw) with an Ewald sum.

Why not GFN2-xTB: its periodic mode is Gamma-point only here and a black-phosphorus cell of 72
atoms already took 18 s per point on these shared cores (:mod:`rsajax.teachers.layered`); a
192-atom water box labelled every MD step is out of reach. The fixed-charge model is the water
counterpart of BKS for silica: exact labels, exact electrostatics.

    E = E_coul + E_LJ + E_bond + E_angle

- ``E_coul``: Ewald sum of all charges (qO = -0.82, qH = +0.41 e; tin-foil boundary) minus the
  ``k_e q_i q_j / r`` of the pairs inside each molecule (minimum image): each molecule interacts
  with every other molecule and every periodic image, not with itself.
- ``E_LJ``: Lennard-Jones between oxygens (sigma = 3.165492 A, epsilon = 0.1554253 kcal/mol),
  multiplied by a cosine switch from 1 at ``lj_on`` = 4.0 A to 0 at ``lj_cut`` = 4.5 A: it is local,
  so everything a 5 A model cannot see is Coulomb.
- ``E_bond = k_b / 2 (r_OH - 1.012)^2`` (k_b = 1059.162 kcal/mol/A^2) and
  ``E_angle = k_theta / 2 (theta_HOH - 113.24 deg)^2`` (k_theta = 75.90 kcal/mol/rad^2).

The parameters are SPC/Fw's (Wu, Tepper and Voth 2006); the switched LJ is this module's change.
Molecular dipoles are ``sum_i q_i (r_i - r_O)`` over a molecule (minimum image), in debye.

Real space uses the minimum image only (``r_cut`` = 0.49 of the narrowest cell width, so no pair
within it has a second image), the reciprocal sum is :mod:`rsajax.teachers.ewald`'s. Cells are
ASE's (rows are lattice vectors); units A, e, eV.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rsajax.lattice import perpendicular_widths
from rsajax.teachers import ewald
from rsajax.teachers.point_charges import random_rotation

KCAL_MOL = 0.0433641153087705  # eV
DEBYE_PER_E_A = 4.803204544
WATER_MASS_AMU = 18.01528
#: ``g/cm^3`` to molecules per A^3.
_MOLECULES_PER_A3 = 0.6022140857 / WATER_MASS_AMU


@dataclasses.dataclass(frozen=True)
class WaterForceField:
    """SPC/Fw in eV, A, e, rad; the O-O Lennard-Jones switched off between ``lj_on`` and
    ``lj_cut``."""

    q_oxygen: float = -0.82
    r0: float = 1.012
    k_bond: float = 1059.162 * KCAL_MOL
    theta0: float = math.radians(113.24)
    k_angle: float = 75.90 * KCAL_MOL
    sigma: float = 3.165492
    epsilon: float = 0.1554253 * KCAL_MOL
    lj_on: float = 4.0
    lj_cut: float = 4.5
    ewald_accuracy: float = 1e-7


FORCE_FIELD = WaterForceField()


def charges_of(n_molecules: int, ff: WaterForceField = FORCE_FIELD) -> np.ndarray:
    """(3 M,) charges in the order O, H, H per molecule."""
    return np.tile([ff.q_oxygen, -ff.q_oxygen / 2, -ff.q_oxygen / 2], n_molecules)


def _minimum_image(d: jnp.ndarray, cell: jnp.ndarray) -> jnp.ndarray:
    frac = d @ jnp.linalg.inv(cell)
    return (frac - jnp.round(frac)) @ cell


def _switch(r: jnp.ndarray, r_on: float, r_cut: float) -> jnp.ndarray:
    t = jnp.clip((r - r_on) / (r_cut - r_on), 0.0, 1.0)
    return 0.5 * (1.0 + jnp.cos(jnp.pi * t))


@dataclasses.dataclass(frozen=True)
class EwaldChoice:
    """Ewald parameters of one cell: real-space minimum image within ``r_cut``."""

    alpha: float
    r_cut: float
    k_cut: float
    n_vectors: np.ndarray


def ewald_choice(cell: np.ndarray, accuracy: float = FORCE_FIELD.ewald_accuracy) -> EwaldChoice:
    """Balanced Ewald parameters with ``r_cut`` = 0.49 of the narrowest width of ``cell`` (rows)."""
    cell = np.asarray(cell, np.float64)
    r_cut = 0.49 * float(perpendicular_widths(cell).min())
    p = ewald.ewald_parameters(r_cut, accuracy)
    n = ewald.reciprocal_integer_vectors(cell.T, p.k_cut)
    return EwaldChoice(p.alpha, p.r_cut, p.k_cut, n)


def energy(
    positions: jnp.ndarray,
    cell: jnp.ndarray,
    choice: EwaldChoice,
    ff: WaterForceField = FORCE_FIELD,
) -> jnp.ndarray:
    """Total energy (eV) of water molecules (O, H, H per molecule) at ``positions`` (3 M, 3).

    ``cell``: (3, 3) rows are lattice vectors; ``choice`` from :func:`ewald_choice` (its
    k-vectors are fixed integers, so ``cell`` may be strained slightly for the virial).
    """
    n = positions.shape[0]
    m = n // 3
    q = jnp.asarray(charges_of(m, ff), positions.dtype)
    mol = jnp.repeat(jnp.arange(m), 3)
    d = _minimum_image(positions[None, :, :] - positions[:, None, :], cell)  # (N, N, 3)
    off = ~jnp.eye(n, dtype=bool)
    r = jnp.sqrt(jnp.where(off, jnp.sum(d**2, axis=-1), 1.0))
    qq = q[:, None] * q[None, :]
    same = (mol[:, None] == mol[None, :]) & off
    # real-space Ewald over every pair within r_cut, minus the bare Coulomb inside molecules
    real = jnp.where(off & (r < choice.r_cut), ewald.real_space_pair(r, qq, choice.alpha), 0.0)
    intra = jnp.where(same, ewald.COULOMB_CONSTANT * qq / r, 0.0)
    box = cell.T
    coul = (
        0.5 * jnp.sum(real - intra)
        + ewald.reciprocal_energy(positions, q, box, choice.n_vectors, choice.alpha, choice.k_cut)
        + ewald.self_and_background_energy(q, box, choice.alpha)
    )
    oxygen = positions[0::3]
    d_oo = _minimum_image(oxygen[None] - oxygen[:, None], cell)
    off_o = ~jnp.eye(m, dtype=bool)
    r_oo = jnp.sqrt(jnp.where(off_o, jnp.sum(d_oo**2, axis=-1), 1.0))
    s6 = (ff.sigma / r_oo) ** 6
    lj = 4.0 * ff.epsilon * (s6**2 - s6) * _switch(r_oo, ff.lj_on, ff.lj_cut)
    e_lj = 0.5 * jnp.sum(jnp.where(off_o, lj, 0.0))
    b1 = _minimum_image(positions[1::3] - oxygen, cell)
    b2 = _minimum_image(positions[2::3] - oxygen, cell)
    r1, r2 = jnp.linalg.norm(b1, axis=-1), jnp.linalg.norm(b2, axis=-1)
    cos = jnp.sum(b1 * b2, axis=-1) / (r1 * r2)
    theta = jnp.arccos(jnp.clip(cos, -1.0 + 1e-12, 1.0 - 1e-12))
    e_bond = 0.5 * ff.k_bond * jnp.sum((r1 - ff.r0) ** 2 + (r2 - ff.r0) ** 2)
    e_angle = 0.5 * ff.k_angle * jnp.sum((theta - ff.theta0) ** 2)
    return coul + e_lj + e_bond + e_angle


@jax.jit
def _energy_and_grad(positions, cell, alpha, r_cut, k_cut, n_vectors):
    choice = EwaldChoice(alpha, r_cut, k_cut, n_vectors)
    return jax.value_and_grad(lambda x: energy(x, cell, choice))(positions)


def check_water(atoms: Atoms, where: str = "structure") -> int:
    """Number of molecules; raises if the atoms are not O, H, H repeated in a periodic cell."""
    numbers = np.asarray(atoms.numbers)
    m = len(numbers) // 3
    if len(numbers) % 3 or not np.array_equal(numbers, np.tile([8, 1, 1], m)):
        raise ValueError(f"{where}: water needs atoms ordered O, H, H per molecule")
    if not np.all(atoms.pbc):
        raise ValueError(f"{where}: the water reference is for periodic cells (pbc all True)")
    return m


def energy_forces(atoms: Atoms, ff: WaterForceField = FORCE_FIELD) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (N, 3) eV/A of a periodic water box (default force field)."""
    if ff != FORCE_FIELD:
        raise ValueError("energy_forces uses the default force field (jitted once)")
    check_water(atoms)
    cell = np.array(atoms.cell)
    c = ewald_choice(cell)
    e, g = _energy_and_grad(
        jnp.asarray(atoms.positions, jnp.float64),
        jnp.asarray(cell, jnp.float64),
        c.alpha,
        c.r_cut,
        c.k_cut,
        jnp.asarray(c.n_vectors),
    )
    return float(e), -np.asarray(g, np.float64)


def molecular_dipoles(atoms: Atoms, ff: WaterForceField = FORCE_FIELD) -> np.ndarray:
    """(M, 3) dipole of each molecule in debye, ``sum_i q_i (r_i - r_O)`` with minimum image."""
    m = check_water(atoms)
    x = atoms.positions.reshape(m, 3, 3)
    cell = np.array(atoms.cell)
    d = x[:, 1:] - x[:, :1]
    frac = d @ np.linalg.inv(cell)
    d = (frac - np.round(frac)) @ cell
    return -0.5 * ff.q_oxygen * d.sum(axis=1) * DEBYE_PER_E_A


def min_intermolecular_distance(atoms: Atoms) -> float:
    """Closest pair of atoms in different molecules, minimum image (A)."""
    n = len(atoms)
    d = atoms.positions[None] - atoms.positions[:, None]
    cell = np.array(atoms.cell)
    frac = d @ np.linalg.inv(cell)
    r = np.linalg.norm((frac - np.round(frac)) @ cell, axis=-1)
    mol = np.arange(n) // 3
    return float(r[mol[:, None] != mol[None, :]].min())


def label(atoms: Atoms, **info) -> Atoms:
    """A labelled copy: energy and forces; ``arrays``: ``molecule_index``, ``point_charge``;
    ``info``: ``min_intermolecular_distance``, ``molecules``, ``reference``, plus ``info``."""
    m = check_water(atoms)
    e, f = energy_forces(atoms)
    out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    out.arrays["molecule_index"] = np.repeat(np.arange(m), 3)
    out.arrays["point_charge"] = charges_of(m)
    out.info.update(
        min_intermolecular_distance=min_intermolecular_distance(atoms),
        molecules=",".join(["water"] * m),
        reference="SPC/Fw water, switched O-O LJ, Ewald (rsajax.teachers.water)",
        **info,
    )
    out.calc = SinglePointCalculator(out, energy=e, forces=f)
    return out


def water_box(n_side: int, seed: int, density_g_cm3: float = 0.997) -> Atoms:
    """``n_side^3`` molecules at their SPC/Fw equilibrium geometry on a cubic grid, randomly
    rotated, in a cube of the given density (unlabelled; a start for MD)."""
    m = n_side**3
    length = (m / (density_g_cm3 * _MOLECULES_PER_A3)) ** (1.0 / 3.0)
    ff = FORCE_FIELD
    half = ff.theta0 / 2
    local = np.array(
        [
            [0.0, 0.0, 0.0],
            [ff.r0 * math.sin(half), 0.0, ff.r0 * math.cos(half)],
            [-ff.r0 * math.sin(half), 0.0, ff.r0 * math.cos(half)],
        ]
    )
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5
    positions = []
    for site in grid * (length / n_side):
        positions.append(site + local @ random_rotation(rng).T)
    return Atoms(
        numbers=np.tile([8, 1, 1], m),
        positions=np.concatenate(positions),
        cell=np.eye(3) * length,
        pbc=True,
    )


def md_system(atoms: Atoms, hydrogen_mass: float = 2.014):
    """The water reference as an :class:`rsajax.md.MDSystem` (NVT in the cell of ``atoms``).

    ``hydrogen_mass`` (amu): deuterium by default, so a 1 fs step is stable for the O-H
    vibration; classical configurational distributions (dipoles included) do not depend on the
    masses. The neighbour list is jax-md's (a 1 A list the energy does not use; the integrator
    and the blow-up checks expect one).
    """
    from jax_md import partition, space

    from rsajax.md.adapter import MDSystem, minimum_image_check, strained_box

    check_water(atoms)
    box = np.array(atoms.cell).T  # columns are lattice vectors (jax-md)
    choice = ewald_choice(np.array(atoms.cell))
    displacement_fn, shift_fn = space.periodic_general(box, fractional_coordinates=True)
    neighbor_fn = partition.neighbor_list(
        displacement_fn,
        box,
        1.0,
        dr_threshold=0.5,
        format=partition.NeighborListFormat.Sparse,
        fractional_coordinates=True,
        disable_cell_list=True,
    )
    box0 = box

    def energy_fn(R, neighbor, box=None, perturbation=None, **unused):
        b = strained_box(jnp.asarray(box0 if box is None else box, R.dtype), perturbation)
        # jax-md's transform (custom JVP): the gradient in fractional R is the Cartesian force,
        # which is what the integrators expect (a plain R @ b.T would give L times it)
        return energy(space.transform(b, R), b.T, choice)

    masses = np.where(np.asarray(atoms.numbers) == 1, hydrogen_mass, 15.999)

    def rebuild(new_box):
        raise ValueError("the water reference system is for fixed-cell (NVT) runs")

    return MDSystem(
        energy_fn=energy_fn,
        neighbor_fn=neighbor_fn,
        shift_fn=shift_fn,
        box=box,
        numbers=np.asarray(atoms.numbers),
        masses=masses,
        list_cutoff=1.0,
        skin=0.5,
        strain_skin=0.0,
        box_checks=(minimum_image_check(1.0),),
        rebuild=rebuild,
    )


def sample_frames(
    system,
    atoms: Atoms,
    *,
    temperature_K: float,
    equilibration_steps: int,
    frames: int,
    stride: int,
    seed: int,
    friction_per_fs: float = 0.01,
    dt_fs: float = 1.0,
) -> list[Atoms]:
    """NVT Langevin MD (:mod:`rsajax.md`) of ``system`` from the positions of ``atoms``:
    ``equilibration_steps``, then ``frames`` frames every ``stride`` steps (positions wrapped into
    the cell; no labels). The same code runs the reference (:func:`md_system`) and a model
    (:func:`rsajax.md.model_system`), so their samples differ only by the potential."""
    import tempfile

    from ase.io import read

    from rsajax.md import Ensemble, Simulation, Stage, build_schedule

    total = equilibration_steps + frames * stride
    schedule = build_schedule([Stage("hold", T=temperature_K, steps=total)], dt_fs, temperature_K)
    R0 = jnp.asarray(atoms.get_scaled_positions(wrap=True), jnp.float64)
    ensemble = Ensemble("nvt_langevin", dt_fs=dt_fs, friction_per_fs=friction_per_fs)
    if equilibration_steps % stride:
        raise ValueError("equilibration_steps must be a multiple of stride")
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulation(
            system,
            ensemble,
            R0,
            schedule,
            seed=seed,
            log_every=stride,
            records_per_chunk=1,  # one chunk shape: every call with this stride shares a compile
            frame_every=stride,
            out_dir=tmp,
            progress=False,
        )
        sim.run()
        out = read(f"{tmp}/trajectory.extxyz", ":")
    keep = [a for a in out if a.info["step"] > equilibration_steps]
    for a in keep:
        a.calc = None
    return keep


__all__ = [
    "DEBYE_PER_E_A",
    "FORCE_FIELD",
    "WaterForceField",
    "charges_of",
    "energy",
    "energy_forces",
    "ewald_choice",
    "label",
    "md_system",
    "min_intermolecular_distance",
    "molecular_dipoles",
    "sample_frames",
    "water_box",
]
