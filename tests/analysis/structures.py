"""Crystal and disordered silica structures for the analysis tests (built, never stored)."""

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.spacegroup import crystal

from rsajax.analysis.rdf import pair_list

#: The experimental neutron file, outside the repository (see ../shared/SILICA.md).
NIMROD = (Path(__file__).resolve().parents[2] / "../shared/silica_exp/SiO2_NIMROD.mint01").resolve()


def beta_cristobalite(a: float = 7.16):
    """Ideal beta-cristobalite, Fd-3m (origin choice 1): Si 8a (0,0,0), O 16c (1/8,1/8,1/8);
    a = 7.16 A (Wyckoff 1925). Straight Si-O-Si (180 deg), Si-O = a sqrt(3)/8 = 1.550 A."""
    return crystal(
        ["Si", "O"],
        basis=[(0, 0, 0), (0.125, 0.125, 0.125)],
        spacegroup=227,
        cellpar=[a, a, a, 90, 90, 90],
    )


def alpha_quartz():
    """Alpha-quartz, P3_221, Levien, Prewitt & Weidner, Am. Mineral. 65, 920 (1980):
    a = 4.9134, c = 5.4052 A, Si (0.4697, 0, 0), O (0.4135, 0.2669, 0.1191), written here with
    the International Tables origin (z + 2/3) so that Si sits on Wyckoff 3a (x, 0, 2/3)."""
    return crystal(
        ["Si", "O"],
        basis=[(0.4697, 0, 2 / 3), (0.4135, 0.2669, 0.1191 + 2 / 3)],
        spacegroup=154,
        cellpar=[4.9134, 4.9134, 5.4052, 90, 90, 120],
    )


def defective_network(reps=(3, 3, 3), n_removed=20, rattle=0.12, seed=1):
    """A disordered Si-O network: beta-cristobalite with random O removed (each removal merges
    the rings through that Si-O-Si into larger ones) and all atoms rattled."""
    atoms = beta_cristobalite() * reps
    rng = np.random.default_rng(seed)
    oxygens = np.flatnonzero(atoms.numbers == 8)
    del atoms[rng.choice(oxygens, n_removed, replace=False)]
    atoms.rattle(rattle, seed=seed + 1)
    return atoms


def random_bridged_network(n_si=250, coord=2.5, d_min=2.2, d_sisi=3.2, cutoff=1.7, seed=0):
    """A random Si-O network with rings of every size (odd ones too): Si placed at random with a
    hard core ``d_min``, Si pairs closer than ``d_sisi`` bridged by an O at the midpoint, and only
    bridges whose O has exactly its two Si within ``cutoff`` kept (so O is 2-coordinated)."""
    rng = np.random.default_rng(seed)
    length = (n_si * 4 / 3 * np.pi * (d_sisi**3 - d_min**3) / coord) ** (1 / 3)
    cell = np.eye(3) * length
    pos = np.empty((0, 3))
    while len(pos) < n_si:  # random sequential addition; packing fraction ~0.15
        p = rng.uniform(0, length, 3)
        dv = pos - p
        dv -= length * np.round(dv / length)
        if len(pos) == 0 or np.min(np.linalg.norm(dv, axis=1)) >= d_min:
            pos = np.vstack([pos, p])
    i, j, s, _ = pair_list(pos, cell, d_sisi)
    keep = i < j
    i, j, s = i[keep], j[keep], s[keep]
    oxygen = pos[i] + 0.5 * (pos[j] + s @ cell - pos[i])
    oi, oj, _, _ = pair_list(np.vstack([pos, oxygen]), cell, cutoff)
    o_si = (oi >= n_si) & (oj < n_si)
    n_si_of_o = np.bincount(oi[o_si] - n_si, minlength=len(oxygen))
    oxygen = oxygen[n_si_of_o == 2]
    numbers = [14] * n_si + [8] * len(oxygen)
    return Atoms(numbers=numbers, positions=np.vstack([pos, oxygen]), cell=cell, pbc=True)
