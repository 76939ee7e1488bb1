"""Neighbour lists against ASE's, including cells smaller than the cutoff and mixed boundaries."""

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from rsajax.data import neighbor_list


def random_triclinic(rng, n_atoms, lengths=(4.0, 7.0), pbc=True):
    cell = np.diag(rng.uniform(*lengths, size=3)) + rng.uniform(-1.5, 1.5, size=(3, 3)) * (
        1 - np.eye(3)
    )
    frac = rng.uniform(size=(n_atoms, 3))
    return Atoms(numbers=rng.integers(1, 20, n_atoms), scaled_positions=frac, cell=cell, pbc=pbc)


def edge_set(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, shifts.tolist()), strict=True))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cutoff", [3.0, 5.0, 9.0])
def test_matches_ase_on_random_triclinic(seed, cutoff):
    """cutoff 9 A exceeds half of every cell length: several images of one neighbour appear."""
    rng = np.random.default_rng(seed)
    atoms = random_triclinic(rng, int(rng.integers(1, 12)))
    ours = neighbor_list(atoms, cutoff)
    theirs = ase_neighbor_list("ijS", atoms, cutoff)
    assert edge_set(*ours) == edge_set(*theirs)


@pytest.mark.parametrize("pbc", [(True, True, False), (True, False, False), (False,) * 3])
def test_matches_ase_mixed_and_open(pbc):
    rng = np.random.default_rng(42)
    atoms = random_triclinic(rng, 10, pbc=pbc)
    ours = neighbor_list(atoms, 4.5)
    theirs = ase_neighbor_list("ijS", atoms, 4.5)
    assert edge_set(*ours) == edge_set(*theirs)
    blocked = ~np.asarray(pbc)
    assert not ours[2][:, blocked].any()


def test_single_atom_sees_its_own_images():
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 2.5, pbc=True)
    senders, receivers, offsets = neighbor_list(atoms, 2.6)
    assert len(senders) == 6
    assert (senders == 0).all() and (receivers == 0).all()
    assert sorted(map(tuple, offsets.tolist())) == sorted(
        [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    )


def test_supercell_has_same_per_atom_neighbour_sets():
    """A 1-image cell and its 2x2x2 supercell give every atom the same neighbour distances."""
    rng = np.random.default_rng(3)
    atoms = random_triclinic(rng, 5, lengths=(3.0, 4.0))
    big = atoms.repeat((2, 2, 2))
    cutoff = 4.2

    def per_atom(at):
        i, j, s = neighbor_list(at, cutoff)
        d = np.linalg.norm(at.positions[j] - at.positions[i] + s @ at.cell.array, axis=1)
        return [np.sort(np.round(d[i == a], 8)) for a in range(len(at))]

    small_sets = per_atom(atoms)
    big_sets = per_atom(big)
    for a, distances in enumerate(big_sets):
        np.testing.assert_array_equal(distances, small_sets[a % len(atoms)])


def test_rejects_bad_cutoff():
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list(Atoms("H"), 0.0)
