"""Exact long-range reference: dimers of small rigid-ish molecules carrying fixed point charges.

Each molecule is a template (geometry in A, one charge in e per atom). The charge depends on the
atom's role in its molecule, not only on its element (H is +0.35 in ammonium, +0.417 in water,
-0.10 in formate), so a model must infer it from the local environment. For a dimer ``A + B``:

    E = E_coul + E_rep + E_intra

- ``E_coul = k_e sum_{i in A, j in B} q_i q_j / r_ij`` over every pair of atoms in *different*
  molecules (no intramolecular Coulomb: a molecule's internal energy stays local and exact).
  Periodic cells: the Ewald sum of all charges (tin-foil boundary, neutralising background for a
  net-charged cell) minus ``k_e q_i q_j / r_ij`` of every intramolecular pair (minimum image), so
  each molecule interacts with the other molecule, with every periodic image and with the
  background, but not with itself inside the cell.
- ``E_rep = sum_{i in A, j in B} eps exp((R_i + R_j - r_ij) / rho)``: Born-Mayer repulsion with an
  element radius ``R`` (minimum image when periodic). Contact is repulsive and an oppositely
  charged pair has a minimum.
- ``E_intra = sum_{i < j, same molecule} k_ij / 2 (r_ij - r0_ij)^2`` with ``r0`` the template's
  distance: every intramolecular pair is a harmonic spring (stiff for bonds, softer otherwise), so
  small random distortions cost energy and the molecular energy is a local, exact function.

Everything beyond a local model's cutoff is ``E_coul`` (``E_rep`` is below 1e-8 eV at 5 A): for a
dimer whose closest intermolecular pair is beyond ``r_max`` a short-range model sees two separate
molecules and can only predict ``E_A + E_B``; the interaction ``E_coul`` (``k_e Q_A Q_B / d``
plus dipole terms for charged molecules) is out of its reach.

Units: A, e, eV; forces in eV/A from ``jax.grad`` in float64 (whatever the global JAX setting).
Cells follow ASE (rows are lattice vectors).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_masses, atomic_numbers

from rsajax.lattice import perpendicular_widths
from rsajax.teachers import ewald

COULOMB_CONSTANT = ewald.COULOMB_CONSTANT
#: No generated intermolecular pair is closer than this (A).
D_MIN = 1.6
#: Periodic dimers: raise if any periodic copy of an atom comes closer than this (A).
R_IMAGE_MIN = 8.0


# --------------------------------------------------------------------------- molecule templates


@dataclasses.dataclass(frozen=True)
class Molecule:
    """A rigid-ish molecule: symbols, template positions (A) and fixed point charges (e)."""

    name: str
    symbols: tuple[str, ...]
    positions: tuple[tuple[float, float, float], ...]
    charges: tuple[float, ...]
    description: str = ""

    def __post_init__(self):
        if not len(self.symbols) == len(self.positions) == len(self.charges):
            raise ValueError(
                f"molecule {self.name}: symbols, positions and charges differ in length"
            )

    @property
    def numbers(self) -> np.ndarray:
        """(n,) atomic numbers."""
        return np.array([atomic_numbers[s] for s in self.symbols], dtype=np.int64)

    @property
    def masses(self) -> np.ndarray:
        """(n,) masses in amu."""
        return atomic_masses[self.numbers]

    @property
    def net_charge(self) -> float:
        return float(round(sum(self.charges), 10))

    def centred_positions(self) -> np.ndarray:
        """(n, 3) template positions with the centre of mass at the origin."""
        x = np.asarray(self.positions, dtype=np.float64)
        return x - self.masses @ x / self.masses.sum()

    def dipole(self) -> np.ndarray:
        """(3,) dipole about the centre of mass (e A)."""
        return np.asarray(self.charges) @ self.centred_positions()

    def radius(self) -> float:
        """Largest distance of an atom from the centre of mass (A)."""
        return float(np.linalg.norm(self.centred_positions(), axis=1).max())


def _bent(center: str, bond: float, angle_deg: float) -> np.ndarray:
    """(3, 3) positions of a bent X-H2: X at the origin, the Hs in the xy plane."""
    half = math.radians(angle_deg) / 2.0
    return np.array(
        [
            [0.0, 0.0, 0.0],
            [bond * math.sin(half), bond * math.cos(half), 0.0],
            [-bond * math.sin(half), bond * math.cos(half), 0.0],
        ]
    )


def _pyramid(bond: float, angle_deg: float) -> np.ndarray:
    """(4, 3) positions of a C3v X-H3 with H-X-H angle ``angle_deg``: X at the origin."""
    # H-H distance 2 b sin(a/2) = sqrt(3) b sin(theta), theta from the C3 axis
    sin_theta = 2.0 * math.sin(math.radians(angle_deg) / 2.0) / math.sqrt(3.0)
    cos_theta = math.sqrt(1.0 - sin_theta**2)
    rows = [[0.0, 0.0, 0.0]]
    for phi in (0.0, 2.0 * math.pi / 3.0, 4.0 * math.pi / 3.0):
        rows.append(
            [
                bond * sin_theta * math.cos(phi),
                bond * sin_theta * math.sin(phi),
                -bond * cos_theta,
            ]
        )
    return np.array(rows)


def _tetrahedron(bond: float) -> np.ndarray:
    """(5, 3) positions of a Td X-H4: X at the origin."""
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
    return np.vstack([np.zeros(3), bond * v / math.sqrt(3.0)])


def _formate() -> np.ndarray:
    """(4, 3) positions of HCOO-: C at the origin, C-O 1.25 A, O-C-O 130 deg, C-H 1.10 A."""
    half = math.radians(130.0) / 2.0
    co, ch = 1.25, 1.10
    return np.array(
        [
            [0.0, 0.0, 0.0],
            [co * math.sin(half), co * math.cos(half), 0.0],
            [-co * math.sin(half), co * math.cos(half), 0.0],
            [0.0, -ch, 0.0],
        ]
    )


def _as_tuple(x: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    return tuple(tuple(float(v) for v in row) for row in x)


#: The molecule library. Charges: OPLS-like for ammonium and formate, TIP3P for water; ammonia,
#: hydronium and hydroxide are simple fixed-charge models. Each sums to its net charge.
MOLECULES: dict[str, Molecule] = {
    m.name: m
    for m in (
        Molecule(
            "ammonium",
            ("N", "H", "H", "H", "H"),
            _as_tuple(_tetrahedron(1.03)),
            (-0.40, 0.35, 0.35, 0.35, 0.35),
            "NH4+, tetrahedral, N-H 1.03 A; net +1",
        ),
        Molecule(
            "formate",
            ("C", "O", "O", "H"),
            _as_tuple(_formate()),
            (0.70, -0.80, -0.80, -0.10),
            "HCOO-, C-O 1.25 A, O-C-O 130 deg, C-H 1.10 A; net -1",
        ),
        Molecule(
            "water",
            ("O", "H", "H"),
            _as_tuple(_bent("O", 0.9572, 104.52)),
            (-0.834, 0.417, 0.417),
            "TIP3P geometry and charges; neutral, dipole 0.49 e A",
        ),
        Molecule(
            "ammonia",
            ("N", "H", "H", "H"),
            _as_tuple(_pyramid(1.012, 106.67)),
            (-1.02, 0.34, 0.34, 0.34),
            "NH3, N-H 1.012 A, H-N-H 106.67 deg; neutral",
        ),
        Molecule(
            "hydronium",
            ("O", "H", "H", "H"),
            _as_tuple(_pyramid(0.976, 111.3)),
            (-0.41, 0.47, 0.47, 0.47),
            "H3O+, O-H 0.976 A, H-O-H 111.3 deg; net +1",
        ),
        Molecule(
            "hydroxide",
            ("O", "H"),
            ((0.0, 0.0, 0.0), (0.0, 0.0, 0.97)),
            (-1.30, 0.30),
            "OH-, O-H 0.97 A; net -1",
        ),
    )
}

#: Named dimers (molecule A, molecule B): every class of net charges.
PAIRS: dict[str, tuple[str, str]] = {
    "ammonium_formate": ("ammonium", "formate"),  # +1 / -1
    "hydronium_hydroxide": ("hydronium", "hydroxide"),  # +1 / -1
    "ammonium_ammonium": ("ammonium", "ammonium"),  # +1 / +1
    "formate_formate": ("formate", "formate"),  # -1 / -1
    "ammonium_water": ("ammonium", "water"),  # +1 / 0
    "formate_water": ("formate", "water"),  # -1 / 0
    "water_water": ("water", "water"),  # 0 / 0
    "ammonia_water": ("ammonia", "water"),  # 0 / 0
}


def molecules_of(pair: str) -> tuple[Molecule, Molecule]:
    """The two templates of a named pair (``PAIRS``) or of ``"nameA_nameB"``."""
    if pair in PAIRS:
        a, b = PAIRS[pair]
    else:
        a, _, b = pair.partition("_")
    if a not in MOLECULES or b not in MOLECULES:
        raise ValueError(
            f"unknown dimer {pair!r}: give one of {sorted(PAIRS)} or 'A_B' with A, B in "
            f"{sorted(MOLECULES)}"
        )
    return MOLECULES[a], MOLECULES[b]


# --------------------------------------------------------------------------- force field


@dataclasses.dataclass(frozen=True)
class ForceField:
    """Non-Coulomb terms, what counts as contact, and the Ewald accuracy.

    Attributes:
        repulsion_energy: ``eps`` (eV), the repulsion of a pair at ``r = R_i + R_j``.
        repulsion_length: ``rho`` (A).
        radii: element -> repulsion radius ``R`` (A).
        contact_depth: generated pairs stay at least ``R_i + R_j - contact_depth`` apart (and at
            least ``D_MIN``), so one pair's repulsion is at most ``eps exp(depth / rho)``
            (0.4 eV by default) and heavy atoms never meet at 1.6 A.
        bond_stiffness: ``k`` (eV/A^2) of intramolecular pairs closer than ``bond_cut`` in the
            template (bonds); ``angle_stiffness`` for the other intramolecular pairs.
        ewald_accuracy: relative size of the neglected Ewald terms (periodic cells).

    With the defaults the water dimer binds by 0.17 eV (O...H 2.1 A), ammonium-water by 0.75 eV
    and the ammonium-formate ion pair by 5.0 eV (best of 30 random orientations).
    """

    repulsion_energy: float = 0.02
    repulsion_length: float = 0.25
    radii: tuple[tuple[str, float], ...] = (("H", 0.5), ("C", 1.7), ("N", 1.6), ("O", 1.55))
    contact_depth: float = 0.75
    bond_stiffness: float = 30.0
    angle_stiffness: float = 10.0
    bond_cut: float = 1.3
    ewald_accuracy: float = 1e-10

    def radius(self, symbol: str) -> float:
        table = dict(self.radii)
        if symbol not in table:
            raise ValueError(f"no repulsion radius for element {symbol!r} (have {sorted(table)})")
        return table[symbol]


FORCE_FIELD = ForceField()


@dataclasses.dataclass(frozen=True)
class DimerTopology:
    """Per-atom data of a dimer (A's atoms first, then B's).

    Shapes: numbers, charges, molecule_index, radii (N,); reference_distances (N, N): template
    distances of intramolecular pairs, 0 elsewhere.
    """

    pair: str
    molecules: tuple[str, str]
    numbers: np.ndarray
    charges: np.ndarray
    molecule_index: np.ndarray
    radii: np.ndarray
    reference_distances: np.ndarray

    @property
    def net_charges(self) -> tuple[float, float]:
        return tuple(float(self.charges[self.molecule_index == m].sum()) for m in (0, 1))


def topology(pair: str, forcefield: ForceField = FORCE_FIELD) -> DimerTopology:
    """The :class:`DimerTopology` of a named pair."""
    mol_a, mol_b = molecules_of(pair)
    symbols = mol_a.symbols + mol_b.symbols
    n_a = len(mol_a.symbols)
    index = np.array([0] * n_a + [1] * len(mol_b.symbols))
    ref = np.zeros((len(symbols), len(symbols)))
    for start, mol in ((0, mol_a), (n_a, mol_b)):
        x = np.asarray(mol.positions)
        n = len(x)
        ref[start : start + n, start : start + n] = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return DimerTopology(
        pair=pair,
        molecules=(mol_a.name, mol_b.name),
        numbers=np.concatenate([mol_a.numbers, mol_b.numbers]),
        charges=np.array(mol_a.charges + mol_b.charges, dtype=np.float64),
        molecule_index=index,
        radii=np.array([forcefield.radius(s) for s in symbols]),
        reference_distances=ref,
    )


def contact_distances(
    topo: DimerTopology, forcefield: ForceField = FORCE_FIELD, d_min: float | None = None
) -> np.ndarray:
    """(nA, nB) closest allowed distance of each intermolecular pair:
    ``max(d_min, R_i + R_j - contact_depth)`` (``d_min`` defaults to ``D_MIN``)."""
    d_min = D_MIN if d_min is None else d_min
    a = topo.molecule_index == 0
    radii = topo.radii[a][:, None] + topo.radii[~a][None, :]
    return np.maximum(d_min, radii - forcefield.contact_depth)


def in_contact(positions: np.ndarray, topo: DimerTopology, contact: np.ndarray) -> bool:
    """Whether any intermolecular pair is closer than its ``contact`` distance."""
    a = topo.molecule_index == 0
    r = np.linalg.norm(positions[a][:, None] - positions[~a][None], axis=-1)
    return bool(np.any(r < contact))


# --------------------------------------------------------------------------- pure energy terms


def _pair_vectors(positions: jnp.ndarray, cell: jnp.ndarray | None) -> jnp.ndarray:
    """(N, N, 3) ``r_j - r_i``, the minimum image when ``cell`` (rows = lattice vectors) is given.

    The minimum image by rounding fractional coordinates is exact for orthorhombic cells and for
    any pair closer than half the shortest perpendicular width.
    """
    d = positions[None, :, :] - positions[:, None, :]
    if cell is None:
        return d
    frac = d @ jnp.linalg.inv(cell)
    return (frac - jnp.round(frac)) @ cell


def _distances(d: jnp.ndarray) -> jnp.ndarray:
    """(N, N) distances with 1 on the diagonal (double-where safe for gradients)."""
    n = d.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    r2 = jnp.sum(d**2, axis=-1)
    return jnp.sqrt(jnp.where(off, r2, 1.0))


def coulomb_pairs(r: jnp.ndarray, charges: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """``k_e sum_{i<j, mask} q_i q_j / r_ij`` (eV); r, mask (N, N) symmetric, charges (N,)."""
    qq = charges[:, None] * charges[None, :]
    safe_r = jnp.where(mask, r, 1.0)
    return 0.5 * COULOMB_CONSTANT * jnp.sum(jnp.where(mask, qq / safe_r, 0.0))


def repulsion(
    r: jnp.ndarray, radii: jnp.ndarray, mask: jnp.ndarray, energy: float, length: float
) -> jnp.ndarray:
    """Born-Mayer ``sum_{i<j, mask} eps exp((R_i + R_j - r_ij) / rho)`` (eV); r, mask (N, N)."""
    arg = (radii[:, None] + radii[None, :] - r) / length
    return 0.5 * energy * jnp.sum(jnp.where(mask, jnp.exp(jnp.where(mask, arg, 0.0)), 0.0))


def intramolecular(
    r: jnp.ndarray, reference: jnp.ndarray, stiffness: jnp.ndarray, mask: jnp.ndarray
) -> jnp.ndarray:
    """``sum_{i<j, mask} k_ij / 2 (r_ij - r0_ij)^2`` (eV); all arguments (N, N)."""
    return 0.25 * jnp.sum(jnp.where(mask, stiffness * (r - reference) ** 2, 0.0))


def ewald_energy(
    positions: jnp.ndarray,
    charges: jnp.ndarray,
    cell: jnp.ndarray,
    n_vectors: jnp.ndarray,
    shifts: jnp.ndarray,
    alpha: float,
    r_cut: float,
    k_cut: float,
) -> jnp.ndarray:
    """Ewald energy of all charges in a periodic cell, with self energy and background (eV).

    Args:
        positions: (N, 3) Cartesian positions; charges: (N,).
        cell: (3, 3) rows are lattice vectors (ASE).
        n_vectors: (M, 3) integer reciprocal vectors (``ewald.reciprocal_integer_vectors``).
        shifts: (S, 3) integer lattice shifts added to minimum-image vectors; they must cover
            every image within ``r_cut`` (:func:`ewald_setup`).
    """
    d = _pair_vectors(positions, cell)  # (N, N, 3)
    images = shifts.astype(positions.dtype) @ cell  # (S, 3)
    vec = d[:, :, None, :] + images[None, None, :, :]  # (N, N, S, 3)
    n = positions.shape[0]
    origin = jnp.all(shifts == 0, axis=-1)
    self_pair = jnp.eye(n, dtype=bool)[:, :, None] & origin[None, None, :]
    r2 = jnp.sum(vec**2, axis=-1)
    r = jnp.sqrt(jnp.where(self_pair, 1.0, r2))
    keep = (~self_pair) & (r < r_cut)
    qq = (charges[:, None] * charges[None, :])[:, :, None]
    real = 0.5 * jnp.sum(jnp.where(keep, ewald.real_space_pair(r, qq, alpha), 0.0))
    box = cell.T  # ewald.py: columns are lattice vectors
    recip = ewald.reciprocal_energy(positions, charges, box, n_vectors, alpha, k_cut)
    return real + recip + ewald.self_and_background_energy(charges, box, alpha)


@dataclasses.dataclass(frozen=True)
class EwaldSetup:
    """Host-side Ewald choices for one cell: parameters, k-vectors (M, 3), real shifts (S, 3)."""

    alpha: float
    r_cut: float
    k_cut: float
    n_vectors: np.ndarray
    shifts: np.ndarray


@functools.lru_cache(maxsize=32)
def _ewald_setup(cell_key: tuple[float, ...], accuracy: float) -> EwaldSetup:
    cell = np.array(cell_key).reshape(3, 3)
    widths = perpendicular_widths(cell)  # rows are lattice vectors
    r_cut = 0.45 * float(widths.min())  # real space within one shell of images
    params = ewald.ewald_parameters(r_cut, accuracy)
    n_vectors = ewald.reciprocal_integer_vectors(cell.T, params.k_cut)
    n_max = np.ceil(r_cut / widths + 0.5).astype(int)
    ranges = [np.arange(-m, m + 1) for m in n_max]
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    return EwaldSetup(params.alpha, r_cut, params.k_cut, n_vectors, shifts)


def ewald_setup(cell: np.ndarray, accuracy: float = FORCE_FIELD.ewald_accuracy) -> EwaldSetup:
    """Ewald parameters for a cell (rows = lattice vectors): ``r_cut`` = 0.45 x the narrowest
    width, ``alpha`` and ``k_cut`` balanced for ``accuracy``; cached per cell."""
    cell = np.asarray(cell, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError("periodic cell has zero volume")
    return _ewald_setup(tuple(float(v) for v in cell.ravel()), float(accuracy))


def _stiffness(topo: DimerTopology, forcefield: ForceField) -> np.ndarray:
    bonded = topo.reference_distances < forcefield.bond_cut
    return np.where(bonded, forcefield.bond_stiffness, forcefield.angle_stiffness)


@functools.partial(jax.jit, static_argnames=("periodic",))
def _terms(
    positions,
    charges,
    molecule_index,
    radii,
    reference,
    stiffness,
    cell,
    n_vectors,
    shifts,
    alpha,
    r_cut,
    k_cut,
    rep_energy,
    rep_length,
    periodic: bool,
):
    n = positions.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    same = molecule_index[:, None] == molecule_index[None, :]
    inter, intra = ~same, same & off
    d = _pair_vectors(positions, cell if periodic else None)
    r = _distances(d)
    if periodic:
        total = ewald_energy(positions, charges, cell, n_vectors, shifts, alpha, r_cut, k_cut)
        coul = total - coulomb_pairs(r, charges, intra)
    else:
        coul = coulomb_pairs(r, charges, inter)
    return {
        "coulomb": coul,
        "repulsion": repulsion(r, radii, inter, rep_energy, rep_length),
        "intramolecular": intramolecular(r, reference, stiffness, intra),
    }


def _energy(*args, periodic):
    return sum(_terms(*args, periodic=periodic).values())


_energy_and_grad = jax.jit(jax.value_and_grad(_energy), static_argnames=("periodic",))


def _as_cell(box) -> np.ndarray | None:
    if box is None:
        return None
    box = np.asarray(box, dtype=np.float64)
    return np.eye(3) * float(box) if box.ndim == 0 else box.reshape(3, 3)


def _arguments(positions, topo: DimerTopology, cell, forcefield: ForceField) -> tuple:
    if cell is None:
        setup = EwaldSetup(0.0, 0.0, 0.0, np.zeros((1, 3), np.int64), np.zeros((1, 3), np.int64))
        cell_arg = np.eye(3)
    else:
        setup = ewald_setup(cell, forcefield.ewald_accuracy)
        cell_arg = cell
    return (
        jnp.asarray(positions, dtype=jnp.float64),
        jnp.asarray(topo.charges, dtype=jnp.float64),
        jnp.asarray(topo.molecule_index),
        jnp.asarray(topo.radii, dtype=jnp.float64),
        jnp.asarray(topo.reference_distances, dtype=jnp.float64),
        jnp.asarray(_stiffness(topo, forcefield), dtype=jnp.float64),
        jnp.asarray(cell_arg, dtype=jnp.float64),
        jnp.asarray(setup.n_vectors),
        jnp.asarray(setup.shifts),
        setup.alpha,
        setup.r_cut,
        setup.k_cut,
        forcefield.repulsion_energy,
        forcefield.repulsion_length,
    )


def energy_terms(
    positions: np.ndarray,
    topo: DimerTopology,
    box=None,
    forcefield: ForceField = FORCE_FIELD,
) -> dict[str, float]:
    """``{"coulomb", "repulsion", "intramolecular"}`` energies (eV) of one configuration.

    Args:
        positions: (N, 3) Cartesian positions (A), in the topology's atom order.
        box: None (open boundaries), a cube side (A) or a (3, 3) cell (rows = lattice vectors).
    """
    cell = _as_cell(box)
    with jax.enable_x64(True):
        terms = _terms(*_arguments(positions, topo, cell, forcefield), periodic=cell is not None)
        return {k: float(v) for k, v in terms.items()}


def dimer_energy_forces(
    positions: np.ndarray,
    topo: DimerTopology,
    box=None,
    forcefield: ForceField = FORCE_FIELD,
) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (N, 3) in eV/A of one configuration (float64, ``jax.grad``).

    Args:
        positions: (N, 3) Cartesian positions (A), in the topology's atom order.
        topo: charges, molecule index, radii and template distances (:func:`topology`, or a
            :class:`DimerTopology` built by hand, e.g. two bare point ions).
        box: None (open boundaries: the plain sum), a cube side (A) or a (3, 3) cell (rows are
            lattice vectors): Ewald with a neutralising background, minus intramolecular pairs.
    """
    cell = _as_cell(box)
    with jax.enable_x64(True):
        args = _arguments(positions, topo, cell, forcefield)
        energy, grad = _energy_and_grad(*args, periodic=cell is not None)
        return float(energy), -np.asarray(grad)


def monomer_topology(topo: DimerTopology, which: int) -> DimerTopology:
    """The topology of molecule ``which`` (0 or 1) alone."""
    keep = topo.molecule_index == which
    return DimerTopology(
        pair=topo.molecules[which],
        molecules=(topo.molecules[which], topo.molecules[which]),
        numbers=topo.numbers[keep],
        charges=topo.charges[keep],
        molecule_index=np.zeros(int(keep.sum()), dtype=topo.molecule_index.dtype),
        radii=topo.radii[keep],
        reference_distances=topo.reference_distances[np.ix_(keep, keep)],
    )


def interaction_energy(
    positions: np.ndarray, topo: DimerTopology, box=None, forcefield: ForceField = FORCE_FIELD
) -> float:
    """``E(A+B) - E(A) - E(B)`` (eV), each monomer alone in the same boundary conditions.

    Open boundaries: exactly ``E_coul + E_rep``. Periodic: the monomers' own image and background
    energies are subtracted as well (what a model evaluated on the monomers in the box gives).
    """
    positions = np.asarray(positions)
    total, _ = dimer_energy_forces(positions, topo, box, forcefield)
    for which in (0, 1):
        keep = topo.molecule_index == which
        e, _ = dimer_energy_forces(positions[keep], monomer_topology(topo, which), box, forcefield)
        total -= e
    return total


# --------------------------------------------------------------------------- geometry


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) rotation matrix, uniform on SO(3) (normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def random_direction(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


@dataclasses.dataclass(frozen=True)
class Orientation:
    """One dimer orientation: each molecule's local (distorted, rotated, COM-centred) positions
    and the unit vector from A's centre of mass to B's."""

    local_a: np.ndarray
    local_b: np.ndarray
    direction: np.ndarray

    def positions(self, separation: float) -> np.ndarray:
        """(N, 3) positions, A then B, with the dimer's centre at the origin."""
        shift = 0.5 * separation * self.direction
        return np.vstack([self.local_a - shift, self.local_b + shift])

    def contact_separation(self, d_min) -> float:
        """Smallest centre-of-mass distance with every intermolecular pair ``ij`` at least
        ``d_min`` (a number or an (nA, nB) array) apart, for it and every larger separation
        (the largest root of ``|c_ij + d u| = d_min_ij``)."""
        c = self.local_b[None, :, :] - self.local_a[:, None, :]  # (nA, nB, 3)
        cu = c @ self.direction
        disc = cu**2 - np.sum(c**2, axis=-1) + np.asarray(d_min) ** 2
        roots = np.where(disc > 0, -cu + np.sqrt(np.maximum(disc, 0.0)), 0.0)
        return float(max(roots.max(), 0.0))


def _local(mol: Molecule, rng: np.random.Generator, distortion: float) -> np.ndarray:
    x = mol.centred_positions() + distortion * rng.normal(size=(len(mol.symbols), 3))
    x = x - mol.masses @ x / mol.masses.sum()  # separation stays the centre-of-mass distance
    return x @ random_rotation(rng).T


def random_orientation(pair: str, rng: np.random.Generator, distortion: float) -> Orientation:
    """Uniform random rotations of both molecules and of the separation axis, with independent
    Gaussian distortions (standard deviation ``distortion`` A per coordinate) of each atom."""
    mol_a, mol_b = molecules_of(pair)
    return Orientation(
        _local(mol_a, rng, distortion), _local(mol_b, rng, distortion), random_direction(rng)
    )


def min_intermolecular_distance(positions: np.ndarray, molecule_index: np.ndarray) -> float:
    """Closest pair of atoms in different molecules (A), open boundaries."""
    a = positions[molecule_index == 0]
    b = positions[molecule_index != 0]
    return float(np.linalg.norm(a[:, None] - b[None], axis=-1).min())


def nearest_image_distance(positions: np.ndarray, cell: np.ndarray) -> float:
    """Closest distance between an atom and any periodic copy (not itself in the cell) of any
    atom, including its own images (A)."""
    ranges = np.arange(-2, 3)
    shifts = np.stack(np.meshgrid(ranges, ranges, ranges, indexing="ij"), -1).reshape(-1, 3)
    shifts = shifts[np.any(shifts != 0, axis=1)]
    d = positions[None, :, None, :] - positions[:, None, None, :] + (shifts @ cell)[None, None]
    return float(np.linalg.norm(d, axis=-1).min())


# --------------------------------------------------------------------------- generators


def make_atoms(
    positions: np.ndarray,
    topo: DimerTopology,
    box=None,
    forcefield: ForceField = FORCE_FIELD,
    r_image_min: float = R_IMAGE_MIN,
    **info,
) -> Atoms:
    """Labelled ``ase.Atoms`` of one configuration (energy and forces on a SinglePointCalculator).

    ``info``: ``pair``, ``molecules``, ``net_charges``, ``charge`` (their sum, ASE's key for a
    structure's net charge), ``separation`` when given by the caller,
    ``min_intermolecular_distance``, ``interaction_energy`` (eV) and the energy terms
    ``e_coulomb``, ``e_repulsion``, ``e_intramolecular``; ``arrays``: ``molecule_index`` and
    ``point_charge``. Periodic: the dimer is centred in the cell and it is an error if a periodic
    copy of any atom comes within ``r_image_min`` of an atom.
    """
    cell = _as_cell(box)
    positions = np.asarray(positions, dtype=np.float64)
    if cell is not None:
        positions = positions - positions.mean(axis=0) + 0.5 * cell.sum(axis=0)
        nearest = nearest_image_distance(positions, cell)
        if nearest < r_image_min:
            raise ValueError(
                f"{topo.pair}: a periodic image comes within {nearest:.2f} A of an atom "
                f"(< r_image_min = {r_image_min} A); use a larger box or smaller separations"
            )
    return _labelled_atoms(
        positions,
        topo,
        cell,
        forcefield,
        ",".join(topo.molecules),
        np.array(topo.net_charges),
        {
            "min_intermolecular_distance": min_intermolecular_distance(
                positions, topo.molecule_index
            ),
            "interaction_energy": interaction_energy(positions, topo, cell, forcefield),
        },
        **info,
    )


def _labelled_atoms(
    positions: np.ndarray,
    topo: DimerTopology,
    cell,
    forcefield: ForceField,
    molecules: str,
    net_charges: np.ndarray,
    geometry: dict,
    **info,
) -> Atoms:
    """``ase.Atoms`` of ``positions`` (N, 3) in ``cell`` (None: open) with the reference's energy
    and forces, ``arrays`` ``molecule_index`` and ``point_charge``, and ``info`` in this order
    (extxyz writes it so): ``pair``, ``molecules``, ``net_charges``, ``charge``, ``geometry``'s
    entries, the energy terms, then ``info``."""
    atoms = Atoms(numbers=topo.numbers, positions=positions)
    if cell is not None:
        atoms.cell = cell
        atoms.pbc = True
    energy, forces = dimer_energy_forces(positions, topo, cell, forcefield)
    terms = energy_terms(positions, topo, cell, forcefield)
    atoms.arrays["molecule_index"] = np.asarray(topo.molecule_index, dtype=np.int64)
    atoms.arrays["point_charge"] = np.asarray(topo.charges, dtype=np.float64)
    atoms.info.update(
        pair=topo.pair,
        molecules=molecules,
        net_charges=net_charges,
        charge=round(float(np.sum(topo.charges)), 9),  # ASE's key for the structure's net charge
        **geometry,
        e_coulomb=terms["coulomb"],
        e_repulsion=terms["repulsion"],
        e_intramolecular=terms["intramolecular"],
        **info,
    )
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def dimer_curves(
    pair: str,
    separations: Sequence[float],
    num_orientations: int,
    seed: int,
    distortion: float = 0.05,
    periodic_box: float | None = None,
    d_min: float = D_MIN,
    forcefield: ForceField = FORCE_FIELD,
) -> list[Atoms]:
    """Binding curves: ``num_orientations`` random orientations, each scanned over ``separations``.

    Each orientation draws uniform random rotations of both molecules and of the axis, and one
    Gaussian distortion (``distortion`` A per coordinate) that stays fixed along its curve, so a
    curve is the interaction energy at fixed monomer geometries plus a constant. A point with an
    intermolecular pair nearer than its contact distance (:func:`contact_distances`: at least
    ``d_min``, and ``R_i + R_j - contact_depth``) is skipped.

    Periodic (``periodic_box``, a cube side in A): the dimer is centred in the cell, labels are
    Ewald sums (tin-foil boundary, neutralising background). With a 30 A box and separations up
    to 16 A no periodic image of an atom comes within 8 A of any atom (checked: :func:`make_atoms`
    raises if one comes within ``R_IMAGE_MIN`` = 8 A), so every image is far beyond a 5 A cutoff.

    Returns:
        ase.Atoms with energy and forces (SinglePointCalculator; extxyz keeps them) and ``info``:
        ``pair``, ``separation`` (centre-of-mass distance, A), ``min_intermolecular_distance``,
        ``orientation`` (index), ``interaction_energy`` and the energy terms (see
        :func:`make_atoms`).
    """
    rng = np.random.default_rng(seed)
    topo = topology(pair, forcefield)
    contact = contact_distances(topo, forcefield, d_min)
    out = []
    for k in range(num_orientations):
        orient = random_orientation(pair, rng, distortion)
        for d in separations:
            x = orient.positions(float(d))
            if in_contact(x, topo, contact):
                continue
            out.append(
                make_atoms(x, topo, periodic_box, forcefield, separation=float(d), orientation=k)
            )
    return out


def dimer_samples(
    pair: str,
    num: int,
    seed: int,
    max_separation: float = 16.0,
    distortion: float = 0.05,
    periodic_box: float | None = None,
    d_min: float = D_MIN,
    forcefield: ForceField = FORCE_FIELD,
) -> list[Atoms]:
    """``num`` independent configurations: a fresh random orientation and distortion each, at a
    separation uniform in ``[contact, max_separation]``, where ``contact`` is the smallest
    centre-of-mass distance of that orientation with every intermolecular pair at least its
    contact distance apart (:func:`contact_distances`, :meth:`Orientation.contact_separation`),
    so no configuration is rejected. ``info`` as in :func:`dimer_curves` (``orientation`` is the
    sample index)."""
    rng = np.random.default_rng(seed)
    topo = topology(pair, forcefield)
    allowed = contact_distances(topo, forcefield, d_min)
    out = []
    for k in range(num):
        orient = random_orientation(pair, rng, distortion)
        contact = orient.contact_separation(allowed) + 1e-6
        if contact >= max_separation:
            raise ValueError(f"{pair}: contact at {contact:.2f} A is beyond {max_separation} A")
        d = float(rng.uniform(contact, max_separation))
        out.append(
            make_atoms(
                orient.positions(d), topo, periodic_box, forcefield, separation=d, orientation=k
            )
        )
    return out


def monomer_samples(
    molecule: str,
    num: int,
    seed: int,
    distortion: float = 0.05,
    periodic_box: float | None = None,
    forcefield: ForceField = FORCE_FIELD,
) -> list[Atoms]:
    """``num`` lone molecules (a random rotation and distortion each), labelled like the dimers.

    They are the reference point of every binding curve: a curve is ``E(AB) - E(A) - E(B)``
    with each monomer alone in the same boundary conditions. In a periodic cell a lone ion's
    energy includes its interaction with its own images and the neutralising background
    (``-k_e xi q^2 / 2L``, -0.68 eV for a unit charge in a 30 A cube), which no dimer fixes.

    Returns:
        ase.Atoms with energy and forces and ``info``: ``pair`` (the molecule's name),
        ``molecules``, ``net_charges`` (one entry), ``charge``, ``interaction_energy`` (0) and
        the energy terms; ``arrays``: ``molecule_index`` (all 0) and ``point_charge``. No
        ``min_intermolecular_distance``: a lone molecule has no intermolecular pair.
    """
    if molecule not in MOLECULES:
        raise ValueError(f"unknown molecule {molecule!r}: give one of {sorted(MOLECULES)}")
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    rng = np.random.default_rng(seed)
    topo = monomer_topology(topology(f"{molecule}_{molecule}", forcefield), 0)
    cell = _as_cell(periodic_box)
    centre = 0.0 if cell is None else 0.5 * cell.sum(axis=0)
    net_charges = np.array([float(np.sum(topo.charges))])
    return [
        _labelled_atoms(
            _local(MOLECULES[molecule], rng, distortion) + centre,
            topo,
            cell,
            forcefield,
            molecule,
            net_charges,
            {"interaction_energy": 0.0},
            orientation=k,
        )
        for k in range(num)
    ]


def topology_from_atoms(atoms: Atoms, forcefield: ForceField = FORCE_FIELD) -> DimerTopology:
    """The topology of an Atoms written by this module (``info["pair"]``)."""
    return topology(str(atoms.info["pair"]), forcefield)


__all__ = [
    "COULOMB_CONSTANT",
    "D_MIN",
    "FORCE_FIELD",
    "MOLECULES",
    "PAIRS",
    "R_IMAGE_MIN",
    "DimerTopology",
    "ForceField",
    "Molecule",
    "Orientation",
    "contact_distances",
    "coulomb_pairs",
    "dimer_curves",
    "dimer_energy_forces",
    "dimer_samples",
    "monomer_samples",
    "energy_terms",
    "in_contact",
    "ewald_energy",
    "ewald_setup",
    "interaction_energy",
    "intramolecular",
    "make_atoms",
    "min_intermolecular_distance",
    "molecules_of",
    "monomer_topology",
    "nearest_image_distance",
    "random_orientation",
    "random_rotation",
    "repulsion",
    "topology",
    "topology_from_atoms",
]
