"""BKS silica with a full Ewald sum and a short-range wall, as a jax-md energy function.

``phi_ij(r) = k_e q_i q_j / r + A_ij exp(-B_ij r) - C_ij / r^6 + 4 e_ij [(s_ij/r)^30 - (s_ij/r)^6]``
(van Beest, Kramer, van Santen, PRL 64, 1955 (1990)). The last term is the 30-6 Lennard-Jones wall
that Saika-Voivod, Sciortino and Poole added to BKS (PRE 63, 011202 (2000); PRE 69, 041503
(2004)): BKS's ``-C / r^6`` wins at short range and hot ions fuse. We use it rather than CHIK's
``D / r^24`` because CHIK's D values were fitted with CHIK's own C: with BKS's O-O parameters they
leave an O-O pocket at 1.1 A (behind a 21 eV barrier), while the 30-6 wall makes Si-O and O-O
repulsive all the way in, and changes the pair energy at 1.6 A (Si-O) by 4 meV.
The short-range part (Buckingham + wall) is cut at ``r_cut`` (10 A in :data:`BKS`, 5.5 A in
:data:`BKS_GLASS`) and shifted to zero there.
Coulomb is an Ewald sum (``rsajax.teachers.ewald``) whose real-space part shares the neighbour
list, including the self energy.

Conventions (jax-md's): ``box`` is column-major (``box = atoms.cell.T``), positions are
fractional, and ``energy_fn(R, neighbor, box=..., perturbation=...)`` applies ``perturbation`` to
every Cartesian vector (``B = perturbation @ box``) so that jax-md's stress and NPT see the strain.
Cells narrower than ``2 (r_cut + skin)`` are handled by an internal supercell
(``rsajax.teachers.supercell``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from jax_md import space

from rsajax.teachers import ewald
from rsajax.teachers.supercell import (
    ImageNeighborFns,
    image_neighbor_list,
    make_tiler,
    replication_for_cutoff,
    supercell_box,
)

SILICON, OXYGEN = 14, 8
#: Type index of each element in the parameter tables.
TYPE_OF_NUMBER = {SILICON: 0, OXYGEN: 1}
#: Masses in amu (IUPAC standard atomic weights).
MASSES = {SILICON: 28.0855, OXYGEN: 15.999}


@dataclasses.dataclass(frozen=True)
class BKSParameters:
    """Tables indexed (type_i, type_j) with Si = 0, O = 1; energies in eV, lengths in A."""

    charges: tuple[float, float] = (2.4, -1.2)
    a: tuple[tuple[float, float], ...] = ((0.0, 18003.7572), (18003.7572, 1388.7730))
    b: tuple[tuple[float, float], ...] = ((1.0, 4.87318), (4.87318, 2.76000))
    c: tuple[tuple[float, float], ...] = ((0.0, 133.5381), (133.5381, 175.0000))
    #: 30-6 Lennard-Jones wall (Saika-Voivod et al.): epsilon (eV) and sigma (A)
    wall_epsilon: tuple[tuple[float, float], ...] = ((0.0, 0.003097948), (0.003097948, 0.00105105))
    wall_sigma: tuple[tuple[float, float], ...] = ((1.0, 1.313635), (1.313635, 1.779239))
    r_cut: float = 10.0
    ewald_accuracy: float = 1e-6

    @property
    def ewald(self) -> ewald.EwaldParameters:
        return ewald.ewald_parameters(self.r_cut, self.ewald_accuracy)


BKS = BKSParameters()

#: BKS with its short-range part (Buckingham + wall) cut and shifted at 5.5 A instead of 10 A: the
#: convention of the glass studies that made BKS the standard model of silica glass (Vollmayr,
#: Kob and Binder, PRB 54, 15808 (1996), who also smoothed the cut; Horbach and Kob, PRB 60, 3169
#: (1999)). Coulomb stays a converged Ewald sum. The -C/r^6 attraction between 5.5 and 10 A is
#: worth 2-3 GPa of cohesion in the liquid and glass: with ``BKS`` a melt-quench at 0 GPa makes a
#: glass of 2.67 g/cm3, denser than BKS alpha-quartz (2.60) and far from experiment (2.20);
#: ``experiments/silica_study/teacher_cut.py`` measures both variants.
BKS_GLASS = BKSParameters(r_cut=5.5)

#: Teacher variants by name (what presets, configs and data summaries record).
VARIANTS = {"bks": BKS, "bks-glass": BKS_GLASS}


def variant(name: str) -> BKSParameters:
    """The BKS parameters called ``name`` (a key of :data:`VARIANTS`)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown BKS variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def short_range_pair(r: jnp.ndarray, ti: jnp.ndarray, tj: jnp.ndarray, p: BKSParameters):
    """Buckingham + 30-6 wall for type pairs (ti, tj), unshifted, eV. Shapes broadcast."""
    tables = (p.a, p.b, p.c, p.wall_epsilon, p.wall_sigma)
    a, b, c, eps, sigma = (jnp.asarray(t, dtype=r.dtype)[ti, tj] for t in tables)
    s6 = (sigma / r) ** 6
    return a * jnp.exp(-b * r) - c / r**6 + 4.0 * eps * (s6**5 - s6)


@dataclasses.dataclass(frozen=True)
class BKSSystem:
    """Everything jax-md needs to run BKS silica in one box shape.

    Attributes:
        energy_fn: ``energy_fn(R, neighbor, box=None, perturbation=None) -> E`` (eV), ``R`` (N, 3)
            fractional coordinates; ``box`` defaults to the construction box.
        neighbor_fn: allocate / update with (N, 3) fractional coordinates (see ``supercell``).
        shift_fn: jax-md shift for fractional coordinates of the box (Cartesian ``dR``).
        box: (3, 3) construction box, columns are lattice vectors.
        reps: supercell replication used for the neighbour list.
        numbers: (N,) atomic numbers; masses: (N,) amu.
    """

    energy_fn: Callable
    neighbor_fn: ImageNeighborFns
    shift_fn: Callable
    box: np.ndarray
    reps: tuple[int, int, int]
    numbers: np.ndarray
    masses: np.ndarray


def check_numbers(numbers: np.ndarray, where: str = "structure") -> np.ndarray:
    """(N,) type indices (Si 0, O 1); raise if any element is not Si or O."""
    numbers = np.asarray(numbers)
    bad = sorted(set(numbers.tolist()) - set(TYPE_OF_NUMBER))
    if bad:
        raise ValueError(f"{where}: BKS knows only Si and O, found atomic numbers {bad}")
    return np.array([TYPE_OF_NUMBER[z] for z in numbers.tolist()], dtype=np.int32)


def bks_silica(
    numbers: np.ndarray,
    box: np.ndarray,
    *,
    params: BKSParameters = BKS,
    skin: float = 0.5,
    strain_margin: float = 0.0,
    capacity_multiplier: float = 1.25,
) -> BKSSystem:
    """Build the BKS energy function, neighbour list and shift for a box.

    Args:
        numbers: (N,) atomic numbers (8 and 14 only).
        box: (3, 3) cell, columns are lattice vectors (``atoms.cell.T``).
        skin: neighbour-list skin (A); the list rebuilds when an atom moved half of it.
        strain_margin: boxes up to this strain from ``box`` (passed as ``box=``) stay exact: the
            supercell and the set of k-vectors are sized for them.
    """
    types = check_numbers(numbers)
    box = np.asarray(box, dtype=np.float64)
    n_atoms = len(types)
    list_cutoff = params.r_cut + skin
    reps = replication_for_cutoff(box, list_cutoff, strain_margin)
    n_images = int(np.prod(reps))
    ew = params.ewald
    n_vectors = ewald.reciprocal_integer_vectors(box, ew.k_cut, strain_margin)
    charges_np = np.asarray(params.charges)[types]

    neighbor_fn = image_neighbor_list(box, reps, params.r_cut, skin, capacity_multiplier)
    _, shift_fn = space.periodic_general(jnp.asarray(box), fractional_coordinates=True)
    tile = make_tiler(reps)
    box0 = box

    def energy_fn(R, neighbor, box=None, perturbation=None, **unused):
        dtype = R.dtype
        b = jnp.asarray(box0 if box is None else box, dtype=dtype)
        charges = jnp.asarray(charges_np, dtype=dtype)
        # positions continuous with the list's reference: a wrap of R by a lattice vector since the
        # last build would otherwise swap which supercell image an index in the list refers to
        ref = jax.lax.stop_gradient(neighbor.reference_position).astype(dtype)
        R_super = tile(ref + space.periodic_displacement(1.0, R - ref))
        valid = neighbor.idx < n_atoms * n_images  # (N, K) neighbours among the supercell atoms
        j = jnp.where(valid, neighbor.idx, 0)
        # jax-md's periodic_general displacement, batched: wrap, transform (custom JVP), strain
        d_frac = space.periodic_displacement(1.0, R_super[j] - R_super[:n_atoms, None, :])
        dr = space.transform(supercell_box(b, reps), d_frac)
        if perturbation is not None:
            dr = space.raw_transform(perturbation, dr)
        r2 = jnp.sum(dr**2, axis=-1)
        inside = valid & (r2 < params.r_cut**2)
        r = jnp.sqrt(jnp.where(inside, r2, 1.0))  # double where: no NaN from padded pairs
        original = j % n_atoms  # image blocks are N atoms long, in the original order
        ti, tj = jnp.asarray(types)[:, None], jnp.asarray(types)[original]
        shift = short_range_pair(jnp.asarray(params.r_cut, dtype), ti, tj, params)
        qq = charges[:, None] * charges[original]
        pair = short_range_pair(r, ti, tj, params) - shift + ewald.real_space_pair(r, qq, ew.alpha)
        e_real = 0.5 * jnp.sum(jnp.where(inside, pair, 0.0))
        strained = b if perturbation is None else perturbation @ b
        cartesian = space.transform(strained, R)
        e_recip = ewald.reciprocal_energy(
            cartesian, charges, strained, jnp.asarray(n_vectors), ew.alpha, ew.k_cut
        )
        return e_real + e_recip + ewald.self_and_background_energy(charges, strained, ew.alpha)

    masses = np.array([MASSES[z] for z in np.asarray(numbers).tolist()])
    return BKSSystem(energy_fn, neighbor_fn, shift_fn, box, reps, np.asarray(numbers), masses)


def make_label_fn(system: BKSSystem) -> Callable:
    """Jitted ``label(R, neighbor, box) -> (E, F (N, 3), stress (3, 3))``, ASE's stress sign.

    Forces are ``-dE/dR`` (Cartesian, by jax-md's convention for fractional ``R``); stress is
    ``(1/V) dE/d(eps)`` for the deformation ``I + eps`` applied to all Cartesian vectors.
    """

    def label(R, neighbor, box):
        def energy(R, eps):
            return system.energy_fn(R, neighbor, box=box, perturbation=jnp.eye(3) + eps)

        e, (g_r, g_eps) = jax.value_and_grad(energy, argnums=(0, 1))(R, jnp.zeros((3, 3), R.dtype))
        return e, -g_r, g_eps / jnp.abs(jnp.linalg.det(box))

    return jax.jit(label)


def bks_energy_forces_stress(
    atoms: Atoms, params: BKSParameters = BKS
) -> tuple[float, np.ndarray, np.ndarray]:
    """BKS energy (eV), forces (N, 3) eV/A and stress (3, 3) eV/A^3 (ASE sign) of a periodic cell.

    Computed in float64 whatever the global JAX setting. Builds and compiles for this cell; to
    label many frames of one shape, use :func:`bks_silica` and :func:`make_label_fn`.
    """
    if not np.all(atoms.pbc):
        raise ValueError(f"{atoms.get_chemical_formula()}: BKS with Ewald needs pbc in 3D")
    check_numbers(atoms.numbers, atoms.get_chemical_formula())
    with jax.enable_x64(True):
        box = np.asarray(atoms.cell.array, dtype=np.float64).T
        system = bks_silica(atoms.numbers, box, params=params, skin=0.0)
        R = jnp.asarray(atoms.get_scaled_positions(wrap=True), dtype=jnp.float64)
        neighbors = system.neighbor_fn.allocate(R)
        e, f, s = make_label_fn(system)(R, neighbors, jnp.asarray(box))
        return float(e), np.asarray(f), np.asarray(s)
