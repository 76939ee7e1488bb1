"""Exact dispersion-bound reference of a layered crystal: black phosphorus, scanned in its gap.

Why not GFN-xTB: tblite 0.8's periodic GFN2-xTB runs here, but its ASE calculator has no k-point
option (Gamma point only), so a black-phosphorus cell needs a large supercell, and the curves it
gave were not usable: measured on the 8-atom cell repeated 2x1x2 (32 atoms) and 3x1x3 (72 atoms),
the energy 3 A beyond the crystal's gap lies 6.0 and 7.1 meV/atom *above* the energy 10 A beyond it
(binding at the crystal gap -51.6 and -53.6 meV/atom relative to +10 A), and the 72-atom cell took
12-19 s per point on these shared cores: hundreds of labels of a questionable curve. ``dftd4`` is
not installed. So the teacher is analytic and exact, which also makes the part beyond a model's
cutoff known exactly:

    E = E_intra + E_inter

- ``E_intra = sum_{bonded pairs} k / 2 (r - r0)^2``: harmonic springs on every pair of atoms of the
  same layer whose distance in the ideal crystal is below ``spring_cut`` (3.9 A: bonds, 2.22 and
  2.24 A, stiff; second neighbours, softer), ``r0`` from the ideal crystal. Purely local.
- ``E_inter = 1/2 sum_{i, j, n in different layers} s(r) [A exp(-r / rho) - C6 / (r^6 + R0^6)]``:
  Born-Mayer repulsion plus Becke-Johnson-damped ``C6 / r^6`` dispersion between every pair of
  atoms in different layers (periodic images included, a periodic image of a layer along the
  stacking axis being another layer), switched smoothly to zero between ``r_on`` = 25 A and
  ``r_cut`` = 30 A (``s``, a cosine switch). ``C6`` = 80 eV A^6 is Grimme's D2 phosphorus
  coefficient (7.84 J nm^6/mol = 81 eV A^6) unscaled; ``A`` and ``rho`` put the energy minimum at
  the crystal's gap (3.10 A against 3.11) and ``R0`` = 2.8 A sets the well depth: the exfoliation
  energy is 71 meV/atom, near the diffusion Monte Carlo value of 81 +- 6 meV/atom (Shulenburger
  et al. 2015). The intralayer pairs carry no dispersion: the layer's own energy stays local and the
  long-range physics is all between layers.

Beyond a model's cutoff (closest interlayer pair >= r_max) a short-range model sees separate
layers and predicts the layers' energies alone: the interlayer tail (``-C6 / r^6`` summed over
sheets, ~ 1 / gap^4 per area) is out of its reach.

Geometry: the orthorhombic Cmca cell of black phosphorus (a = 3.3136, b = 10.478, c = 4.3763 A;
P at 8f (0, 0.10168, 0.08056)), oriented with the stacking axis along z: cell
``[a, c, b]``, two puckered layers per cell. ``gap`` is the vertical distance between the planes
of the closest atoms of adjacent layers (3.11 A in the crystal); changing it moves layer 1 and the
cell height so that both gaps of the cell change together (a bulk stack, every layer separated from
both neighbours). Units: A, eV; forces eV/A. Cells are ASE's (rows are lattice vectors).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

PHOSPHORUS = 15
#: Black phosphorus, Cmca (A) and the 8f Wyckoff parameters.
LATTICE_A, LATTICE_B, LATTICE_C = 3.3136, 10.478, 4.3763
WYCKOFF_Y, WYCKOFF_Z = 0.10168, 0.08056
#: Interlayer gap of the crystal: b / 2 minus the layer's thickness (A).
GAP0 = LATTICE_B / 2 - 2 * WYCKOFF_Y * LATTICE_B


@dataclasses.dataclass(frozen=True)
class LayeredForceField:
    """Parameters of :mod:`rsajax.teachers.layered` (eV, A)."""

    bond_stiffness: float = 8.0
    other_stiffness: float = 2.0
    bond_cut: float = 2.5
    spring_cut: float = 3.9
    repulsion_energy: float = 3500.0
    repulsion_length: float = 0.30
    c6: float = 80.0
    damping_radius: float = 2.8
    r_on: float = 25.0
    r_cut: float = 30.0


FORCE_FIELD = LayeredForceField()


# --------------------------------------------------------------------------- geometry


def black_phosphorus(repeat: tuple[int, int] = (1, 1), gap: float = GAP0) -> Atoms:
    """Ideal black phosphorus with interlayer ``gap`` (A), stacking along z, ``repeat`` in-plane.

    ``arrays["layer_index"]``: 0 or 1 (the layer in the cell). Returns 8 * prod(repeat) atoms.
    """
    base = [(0.0, WYCKOFF_Y, WYCKOFF_Z), (0.0, -WYCKOFF_Y, -WYCKOFF_Z)]
    base += [(0.0, 0.5 + WYCKOFF_Y, 0.5 - WYCKOFF_Z), (0.0, 0.5 - WYCKOFF_Y, 0.5 + WYCKOFF_Z)]
    frac = np.array([(x + t, y + t, z) for x, y, z in base for t in (0.0, 0.5)])  # C centring
    stack = (frac[:, 1] + 0.25) % 1.0 - 0.25  # stacking coordinate, layer 0 around 0
    layer = (stack > 0.25).astype(np.int64)
    shift = gap - GAP0
    positions = np.stack(
        [
            (frac[:, 0] % 1.0) * LATTICE_A,
            (frac[:, 2] % 1.0) * LATTICE_C,
            stack * LATTICE_B + shift * layer,
        ],
        axis=1,
    )
    atoms = Atoms(
        numbers=np.full(len(frac), PHOSPHORUS),
        positions=positions,
        cell=np.diag([LATTICE_A, LATTICE_C, LATTICE_B + 2.0 * shift]),
        pbc=True,
    )
    atoms.arrays["layer_index"] = layer
    return atoms.repeat((repeat[0], repeat[1], 1))


def set_gap(atoms: Atoms, new_gap: float, old_gap: float) -> Atoms:
    """A copy with every interlayer gap changed rigidly from ``old_gap`` to ``new_gap``: layer
    ``l`` moves up by ``l`` times the change, the cell's third vector grows by the number of
    layers times it. The cell's third vector must be along z."""
    cell = np.array(atoms.cell)
    if not np.allclose(cell[2, :2], 0.0) or not np.allclose(cell[:2, 2], 0.0):
        raise ValueError("set_gap: the stacking lattice vector must be along z")
    out = atoms.copy()
    delta = new_gap - old_gap
    layer = np.asarray(atoms.arrays["layer_index"])
    out.positions[:, 2] += delta * layer
    cell[2, 2] += delta * (int(np.max(layer)) + 1)
    out.set_cell(cell, scale_atoms=False)
    return out


def separated(atoms: Atoms, extra: float = 40.0) -> Atoms:
    """The same layers (unchanged geometry) with every gap ``extra`` A wider: beyond the teacher's
    ``r_cut`` for ``extra`` >= 30 A, so its energy is the layers' own energy."""
    layer = np.asarray(atoms.arrays["layer_index"])
    out = atoms.copy()
    out.positions[:, 2] += extra * layer
    cell = np.array(atoms.cell)
    if not np.allclose(cell[2, :2], 0.0):
        raise ValueError("separated: the stacking lattice vector must be along z")
    cell[2, 2] += extra * (int(np.max(layer)) + 1)
    out.set_cell(cell, scale_atoms=False)
    for key in ("interaction_energy", "split"):
        out.info.pop(key, None)
    out.calc = None
    return out


def lattice_shifts(cell: np.ndarray, r_cut: float) -> np.ndarray:
    """(S, 3) integer shifts covering every image within ``r_cut`` of any atom in the cell."""
    inv = np.linalg.inv(cell)
    widths = 1.0 / np.linalg.norm(inv, axis=0)  # distance between opposite faces
    n_max = np.ceil(r_cut / widths).astype(int) + 1
    ranges = [np.arange(-m, m + 1) for m in n_max]
    return np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)


def _pairs(atoms: Atoms, r_cut: float):
    """Ordered pairs (i, j, shift) within ``r_cut`` with vectors ``r_j + n cell - r_i``.

    Returns ``i (P,), j (P,), n (P, 3), vec (P, 3), r (P,)``; the self pair of each atom excluded.
    """
    cell = np.array(atoms.cell)
    x = atoms.positions
    shifts = lattice_shifts(cell, r_cut)
    images = shifts @ cell  # (S, 3)
    vec = x[None, :, None, :] - x[:, None, None, :] + images[None, None]  # (N, N, S, 3)
    r = np.linalg.norm(vec, axis=-1)
    keep = (r < r_cut) & (r > 1e-8)
    i, j, s = np.nonzero(keep)
    return i, j, shifts[s], vec[i, j, s], r[i, j, s]


def global_layer(layer_index: np.ndarray, shifts: np.ndarray, n_layers: int) -> np.ndarray:
    """Which layer of the infinite stack an atom's periodic copy belongs to: ``layer + L n3``."""
    return layer_index + n_layers * shifts[:, 2]


@dataclasses.dataclass(frozen=True)
class Springs:
    """Intralayer springs: atoms ``i, j`` (K,), shifts (K, 3), rest lengths and stiffnesses (K,)."""

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    r0: np.ndarray
    k: np.ndarray


def springs_of(ideal: Atoms, ff: LayeredForceField = FORCE_FIELD) -> Springs:
    """Spring topology of an ideal structure: same-layer pairs closer than ``ff.spring_cut``, each
    unordered pair once (``i < j``, or ``i == j`` with the first non-zero shift positive)."""
    layer = np.asarray(ideal.arrays["layer_index"])
    n_layers = int(layer.max()) + 1
    i, j, n, _, r = _pairs(ideal, ff.spring_cut)
    same = layer[i] == global_layer(layer[j], n, n_layers)
    first = np.array([next((v for v in row if v), 0) for row in n])
    once = (i < j) | ((i == j) & (first > 0))
    keep = same & once
    r0 = r[keep]
    k = np.where(r0 < ff.bond_cut, ff.bond_stiffness, ff.other_stiffness)
    return Springs(i[keep], j[keep], n[keep], r0, k)


# --------------------------------------------------------------------------- energy


def _switch(r: np.ndarray, r_on: float, r_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Cosine switch 1 -> 0 between ``r_on`` and ``r_cut`` and its derivative."""
    t = np.clip((r - r_on) / (r_cut - r_on), 0.0, 1.0)
    s = 0.5 * (1.0 + np.cos(math.pi * t))
    inside = (r > r_on) & (r < r_cut)
    ds = np.where(inside, -0.5 * math.pi * np.sin(math.pi * t) / (r_cut - r_on), 0.0)
    return s, ds


def interlayer_pair(r: np.ndarray, ff: LayeredForceField = FORCE_FIELD) -> tuple:
    """Pair energy between atoms of different layers and its r-derivative (eV, eV/A)."""
    rep = ff.repulsion_energy * np.exp(-r / ff.repulsion_length)
    denom = r**6 + ff.damping_radius**6
    disp = -ff.c6 / denom
    e = rep + disp
    de = -rep / ff.repulsion_length + ff.c6 * 6.0 * r**5 / denom**2
    s, ds = _switch(r, ff.r_on, ff.r_cut)
    return e * s, de * s + e * ds


def energy_forces(
    atoms: Atoms, springs: Springs, ff: LayeredForceField = FORCE_FIELD
) -> tuple[float, np.ndarray, float]:
    """Energy (eV), forces (N, 3) eV/A and the interlayer part of the energy (eV)."""
    layer = np.asarray(atoms.arrays["layer_index"])
    n_layers = int(layer.max()) + 1
    forces = np.zeros((len(atoms), 3))
    # interlayer: ordered pairs, each counted twice, so half the energy and force per entry
    i, j, n, vec, r = _pairs(atoms, ff.r_cut)
    inter = layer[i] != global_layer(layer[j], n, n_layers)
    i, j, vec, r = i[inter], j[inter], vec[inter], r[inter]
    e, de = interlayer_pair(r, ff)
    e_inter = 0.5 * float(e.sum())
    g = (0.5 * de / r)[:, None] * vec  # dE/d(vec)
    np.add.at(forces, i, g)
    np.add.at(forces, j, -g)
    # springs
    cell = np.array(atoms.cell)
    vec = atoms.positions[springs.j] + springs.shifts @ cell - atoms.positions[springs.i]
    r = np.linalg.norm(vec, axis=-1)
    stretch = r - springs.r0
    e_intra = float(np.sum(0.5 * springs.k * stretch**2))
    g = (springs.k * stretch / r)[:, None] * vec
    np.add.at(forces, springs.i, g)
    np.add.at(forces, springs.j, -g)
    return e_inter + e_intra, forces, e_inter


def min_interlayer_distance(atoms: Atoms, r_cut: float = 40.0) -> float:
    """Closest pair of atoms in different layers, periodic images included (A); ``inf`` if none
    is within ``r_cut``."""
    layer = np.asarray(atoms.arrays["layer_index"])
    for cut in (8.0, 20.0, r_cut):  # growing: a short list finds the contact of a dense stack
        i, j, n, _, r = _pairs(atoms, min(cut, r_cut))
        inter = layer[i] != global_layer(layer[j], n, int(layer.max()) + 1)
        if inter.any():
            return float(r[inter].min())
    return math.inf


def label(atoms: Atoms, springs: Springs, ff: LayeredForceField = FORCE_FIELD, **info) -> Atoms:
    """A labelled copy: energy and forces on a SinglePointCalculator; ``info``:
    ``interaction_energy`` (E minus the separated layers' energy, eV, the exfoliation curve),
    ``min_intermolecular_distance`` (closest interlayer pair, A; the harness's name),
    ``molecules`` (one ``P_layer`` per layer: what a local model tells apart), plus ``info``."""
    energy, forces, e_inter = energy_forces(atoms, springs, ff)
    out = atoms.copy()
    out.calc = None
    n_layers = int(np.max(atoms.arrays["layer_index"])) + 1
    out.info.update(
        interaction_energy=e_inter,
        min_intermolecular_distance=min_interlayer_distance(atoms),
        molecules=",".join(["P_layer"] * n_layers),
        reference="layered black phosphorus: springs + damped C6 (rsajax.teachers.layered)",
        **info,
    )
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces)
    return out


def exfoliation_scan(
    gaps, repeat: tuple[int, int] = (2, 1), ff: LayeredForceField = FORCE_FIELD
) -> list[Atoms]:
    """Ideal layers at each interlayer ``gap`` (A), labelled; ``info["gap"]``."""
    ideal = black_phosphorus(repeat)
    springs = springs_of(ideal, ff)
    return [label(set_gap(ideal, g, GAP0), springs, ff, gap=float(g)) for g in gaps]


def random_samples(
    num: int,
    seed: int,
    gap_range: tuple[float, float],
    distortion: float = 0.03,
    max_strain: float = 0.01,
    max_slide: float = 0.3,
    repeat: tuple[int, int] = (2, 1),
    ff: LayeredForceField = FORCE_FIELD,
) -> list[Atoms]:
    """Distorted configurations: gap log-uniform in ``gap_range`` (A; denser near the minimum,
    where the curve has its structure), in-plane strain uniform within
    ``+-max_strain`` on each axis (atoms follow the cell), odd layers slid in-plane by up to
    ``max_slide`` A, Gaussian displacements of ``distortion`` A on every coordinate."""
    rng = np.random.default_rng(seed)
    ideal = black_phosphorus(repeat)
    springs = springs_of(ideal, ff)
    out = []
    for _ in range(num):
        gap = float(np.exp(rng.uniform(*np.log(gap_range))))
        atoms = set_gap(ideal, gap, GAP0)
        strain = np.diag([*(1.0 + rng.uniform(-max_strain, max_strain, 2)), 1.0])
        atoms.set_cell(np.array(atoms.cell) @ strain, scale_atoms=True)
        odd = np.asarray(atoms.arrays["layer_index"]) % 2 == 1
        atoms.positions[odd, :2] += rng.uniform(-max_slide, max_slide, 2)
        atoms.positions += rng.normal(0.0, distortion, atoms.positions.shape)
        out.append(label(atoms, springs, ff, gap=gap))
    return out


__all__ = [
    "FORCE_FIELD",
    "GAP0",
    "LayeredForceField",
    "Springs",
    "black_phosphorus",
    "energy_forces",
    "exfoliation_scan",
    "interlayer_pair",
    "label",
    "lattice_shifts",
    "min_interlayer_distance",
    "random_samples",
    "separated",
    "set_gap",
    "springs_of",
]
