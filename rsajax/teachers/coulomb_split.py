"""The Coulomb energy of BKS silica split into what a 5 A pairwise model can and cannot represent.

For point charges ``q_i`` in a periodic cell (BKS: Si +2.4 e, O -1.2 e),

    E_coul = E_near + E_far,

    E_near = k_e sum_{i<j, all images, r_ij < r_c} q_i q_j [1/r - 1/r_c + (r - r_c)/r_c^2],

the shifted-force Coulomb sum within ``r_c`` (default 5 A): its pair term and the pair force both
vanish at ``r_c``, so a pairwise model with cutoff ``r_c`` represents ``E_near`` exactly. ``E_coul``
is the full Ewald energy including the self energy (:mod:`rsajax.teachers.ewald` through
:func:`rsajax.teachers.bks.bks_silica` with the short-range part switched off), and
``E_far = E_coul - E_near`` is the rest: the Coulomb interaction beyond ``r_c`` plus the
shift terms of the pairs inside it (which do *not* vanish at ``r_c``: ``q_i q_j / r_c`` at contact).
``E_far`` is smooth (the sum of two smooth functions), but no model that only sees pairs within
``r_c`` can represent it; it is a long-range target with an exact answer.

Conventions: ASE's. ``cell`` (3, 3) has lattice vectors as *rows*; positions are Cartesian (A);
energies eV, forces eV/A, stress eV/A^3 with ASE's sign (``(1/V) dE/d strain``). Everything here is
computed in float64 (``jax.enable_x64`` inside), whatever the global JAX setting.

Pure functions: :func:`shifted_force_coulomb`, :func:`near_energy`,
:func:`near_energy_forces_stress`.
Host helpers: :class:`CoulombSplitLabeller` (many frames, compiled once per shape) and
:func:`coulomb_split` (one structure).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms

from rsajax.data.neighbors import neighbor_list
from rsajax.teachers.bks import BKS, BKSParameters, bks_silica, check_numbers, make_label_fn
from rsajax.teachers.ewald import COULOMB_CONSTANT

#: Cutoff of the shifted-force near part (A): the ``r_max`` of the local models it is meant for.
NEAR_CUTOFF = 5.0
#: Pair lists are padded to a multiple of this, so frames of one size share a compilation.
EDGE_PAD = 4096
#: Extra radius (A) of the host pair list (pairs beyond ``r_c`` are masked inside the function).
LIST_SKIN = 0.25

_ZERO = ((0.0, 0.0), (0.0, 0.0))


def coulomb_only(params: BKSParameters = BKS) -> BKSParameters:
    """``params`` with Buckingham, dispersion and wall switched off: the Ewald Coulomb sum alone
    (same charges, real-space cutoff and Ewald accuracy)."""
    return dataclasses.replace(params, a=_ZERO, c=_ZERO, wall_epsilon=_ZERO)


def shifted_force_coulomb(r: jax.Array, qq: jax.Array, r_cut: float) -> jax.Array:
    """Shifted-force Coulomb pair energy (eV); shapes broadcast, e.g. (E,) and (E,) -> (E,).

    ``k_e qq [1/r - 1/r_c + (r - r_c)/r_c^2]``: value and first derivative are zero at ``r_c``.
    The caller masks ``r >= r_c`` (the expression is not zero there).
    """
    return COULOMB_CONSTANT * qq * (1.0 / r - 1.0 / r_cut + (r - r_cut) / r_cut**2)


def near_energy(
    positions: jax.Array,
    cell: jax.Array,
    charges: jax.Array,
    senders: jax.Array,
    receivers: jax.Array,
    shifts: jax.Array,
    r_cut: float = NEAR_CUTOFF,
) -> jax.Array:
    """``E_near`` (eV, a scalar) of a periodic cell from a full pair list.

    Args:
        positions: (N, 3) Cartesian positions, A.
        cell: (3, 3) lattice vectors as rows, A.
        charges: (N,) charges, e.
        senders, receivers: (E,) int atom indices of a *full* list (each pair in both
            directions, every image), which must hold every pair with ``r < r_cut``; listed pairs
            at ``r >= r_cut`` and padding (``senders == receivers`` with zero shift) count zero.
        shifts: (E, 3) integer cell offsets: the pair vector is
            ``positions[receivers] - positions[senders] + shifts @ cell``.
        r_cut: cutoff of the shifted-force sum, A.
    """
    d = positions[receivers] - positions[senders] + shifts.astype(positions.dtype) @ cell
    r2 = jnp.sum(d**2, axis=-1)
    inside = (r2 < r_cut**2) & (r2 > 1e-12)
    r = jnp.sqrt(jnp.where(inside, r2, 1.0))  # double where: no NaN gradient from padding
    qq = charges[senders] * charges[receivers]
    return 0.5 * jnp.sum(jnp.where(inside, shifted_force_coulomb(r, qq, r_cut), 0.0))


def near_energy_forces_stress(
    positions: jax.Array,
    cell: jax.Array,
    charges: jax.Array,
    senders: jax.Array,
    receivers: jax.Array,
    shifts: jax.Array,
    r_cut: float = NEAR_CUTOFF,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(E_near (), forces (N, 3), stress (3, 3))``; arguments as in :func:`near_energy`.

    Forces are ``-dE/d positions``; stress is ``(1/V) dE/d eps`` for the symmetric deformation
    ``x -> x (I + eps)`` of positions and cell together (ASE sign).
    """

    def energy(positions, eps):
        deform = jnp.eye(3, dtype=positions.dtype) + eps
        return near_energy(
            positions @ deform, cell @ deform, charges, senders, receivers, shifts, r_cut
        )

    zero = jnp.zeros((3, 3), positions.dtype)
    e, (g_r, g_eps) = jax.value_and_grad(energy, argnums=(0, 1))(positions, zero)
    volume = jnp.abs(jnp.linalg.det(cell))
    return e, -g_r, 0.5 * (g_eps + g_eps.T) / volume


_near_jit = jax.jit(near_energy_forces_stress, static_argnames=("r_cut",))


def padded_pair_list(
    atoms: Atoms, cutoff: float, pad: int = EDGE_PAD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full pair list within ``cutoff`` (every image), padded to a multiple of ``pad``.

    Returns senders (E,), receivers (E,), shifts (E, 3) as int32; padding is the self pair
    ``0 -> 0`` with zero shift, which :func:`near_energy` ignores.
    """
    senders, receivers, shifts = neighbor_list(atoms, cutoff)
    size = max(pad, -(-len(senders) // pad) * pad)
    extra = size - len(senders)
    return (
        np.concatenate([senders, np.zeros(extra, np.int32)]),
        np.concatenate([receivers, np.zeros(extra, np.int32)]),
        np.concatenate([shifts, np.zeros((extra, 3), np.int32)]),
    )


def atom_charges(numbers: np.ndarray, params: BKSParameters = BKS) -> np.ndarray:
    """(N,) BKS charges (e) of atomic numbers 14 (Si) and 8 (O)."""
    return np.asarray(params.charges, dtype=np.float64)[check_numbers(numbers)]


@dataclasses.dataclass(frozen=True)
class CoulombSplit:
    """The split of one structure (eV, eV/A, eV/A^3; stress with ASE's sign, (3, 3)).

    ``coulomb = near + far`` for the energy, the forces (N, 3) and the stress.
    """

    coulomb_energy: float
    near_energy: float
    far_energy: float
    coulomb_forces: np.ndarray
    near_forces: np.ndarray
    far_forces: np.ndarray
    coulomb_stress: np.ndarray
    near_stress: np.ndarray
    far_stress: np.ndarray


class CoulombSplitLabeller:
    """:class:`CoulombSplit` of many structures, compiled once per atom count and cell family.

    The Ewald part runs :func:`rsajax.teachers.bks.bks_silica` with :func:`coulomb_only`
    parameters (float64, its own image neighbour list); a system is built per sequence of atomic
    numbers and reused while a new cell stays within ``strain_margin`` of the cell it was built
    for (the k-vector set and supercell are sized for that margin).

    Args:
        r_near: cutoff of the shifted-force near part (A).
        params: charges and Ewald settings (the short-range terms are ignored).
        strain_margin: cells up to this relative strain from a system's cell reuse it.
    """

    def __init__(
        self,
        r_near: float = NEAR_CUTOFF,
        params: BKSParameters = BKS,
        strain_margin: float = 0.15,
    ):
        self.r_near = float(r_near)
        self.params = coulomb_only(params)
        self.strain_margin = strain_margin
        self._systems: dict[bytes, list] = {}

    def _ewald(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        key = np.asarray(atoms.numbers, np.int32).tobytes()
        entry = None
        for candidate in self._systems.setdefault(key, []):
            strain = np.linalg.solve(candidate["cell"], cell) - np.eye(3)
            if np.linalg.norm(strain, 2) < 0.5 * self.strain_margin:  # |k| grows < 1 + margin
                entry = candidate
                break
        if entry is None:
            system = bks_silica(
                atoms.numbers, cell.T, params=self.params, skin=0.0,
                strain_margin=self.strain_margin,
            )  # fmt: skip
            entry = dict(cell=cell, system=system, label=make_label_fn(system), neighbors=None)
            self._systems[key].append(entry)
        box = jnp.asarray(cell.T)
        R = jnp.asarray(atoms.get_scaled_positions(wrap=True))
        fns = entry["system"].neighbor_fn
        neighbors = entry["neighbors"]
        if neighbors is not None:  # force a rebuild for the new positions and cell
            neighbors = fns.update(R, neighbors.replace(reference_position=R + 0.5), box=box)
        if neighbors is None or bool(neighbors.did_buffer_overflow):
            neighbors = fns.allocate(R, box=box, extra_capacity=16)
        entry["neighbors"] = neighbors
        e, f, s = entry["label"](R, neighbors, box)
        return float(e), np.asarray(f), np.asarray(s)

    def __call__(self, atoms: Atoms) -> CoulombSplit:
        """The split of one fully periodic Si/O structure."""
        if not np.all(atoms.pbc):
            raise ValueError(f"{atoms.get_chemical_formula()}: the Ewald split needs pbc in 3D")
        with jax.enable_x64(True):
            e_coul, f_coul, s_coul = self._ewald(atoms)
            senders, receivers, shifts = padded_pair_list(atoms, self.r_near + LIST_SKIN)
            e_near, f_near, s_near = _near_jit(
                jnp.asarray(atoms.positions, dtype=jnp.float64),
                jnp.asarray(atoms.cell.array, dtype=jnp.float64),
                jnp.asarray(atom_charges(atoms.numbers, self.params)),
                jnp.asarray(senders),
                jnp.asarray(receivers),
                jnp.asarray(shifts),
                r_cut=self.r_near,
            )
            e_near, f_near, s_near = float(e_near), np.asarray(f_near), np.asarray(s_near)
        return CoulombSplit(
            coulomb_energy=e_coul,
            near_energy=e_near,
            far_energy=e_coul - e_near,
            coulomb_forces=f_coul,
            near_forces=f_near,
            far_forces=f_coul - f_near,
            coulomb_stress=s_coul,
            near_stress=s_near,
            far_stress=s_coul - s_near,
        )


def coulomb_split(
    atoms: Atoms, r_near: float = NEAR_CUTOFF, params: BKSParameters = BKS
) -> CoulombSplit:
    """:class:`CoulombSplit` of one structure (compiles for it; use
    :class:`CoulombSplitLabeller` for many)."""
    return CoulombSplitLabeller(r_near, params)(atoms)
