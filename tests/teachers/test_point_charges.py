"""Point-charge dimer teacher: hand sums, forces, Ewald against pymatgen, limits, generators."""

from __future__ import annotations

import numpy as np
import pytest

from rsajax.teachers import point_charges as pc
from rsajax.teachers.ewald import COULOMB_CONSTANT as K


def ion_pair(q1: float, q2: float, ff: pc.ForceField = pc.FORCE_FIELD) -> pc.DimerTopology:
    """Two bare ions (an N and an O), each its own molecule."""
    return pc.DimerTopology(
        pair="ions",
        molecules=("cation", "anion"),
        numbers=np.array([7, 8]),
        charges=np.array([q1, q2]),
        molecule_index=np.array([0, 1]),
        radii=np.array([ff.radius("N"), ff.radius("O")]),
        reference_distances=np.zeros((2, 2)),
    )


def distorted_dimer(pair: str, separation: float, seed: int = 0) -> np.ndarray:
    orient = pc.random_orientation(pair, np.random.default_rng(seed), distortion=0.05)
    return orient.positions(separation)


def test_two_point_ions_equal_the_hand_sum():
    ff = pc.FORCE_FIELD
    topo = ion_pair(1.0, -0.5)
    for r in (2.0, 3.7, 11.0):
        x = np.array([[0.0, 0.0, 0.0], [0.3 * r, 0.0, np.sqrt(0.91) * r]])
        energy, forces = pc.dimer_energy_forces(x, topo)
        rep = ff.repulsion_energy * np.exp(
            (ff.radius("N") + ff.radius("O") - r) / ff.repulsion_length
        )
        assert energy == pytest.approx(K * -0.5 / r + rep, rel=1e-12)
        # the force on ion 1 points along r_12 with magnitude -dE/dr
        de_dr = K * 0.5 / r**2 - rep / ff.repulsion_length
        unit = (x[1] - x[0]) / r
        np.testing.assert_allclose(forces[1], -de_dr * unit, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-12)


def test_dimer_energy_equals_the_hand_sum_of_its_terms():
    ff = pc.FORCE_FIELD
    topo = pc.topology("ammonium_water")
    mol_a, mol_b = pc.molecules_of("ammonium_water")
    template = np.vstack([mol_a.positions, mol_b.positions])
    x = distorted_dimer("ammonium_water", 3.5, seed=7)
    coulomb = rep = intra = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            r = np.linalg.norm(x[i] - x[j])
            if topo.molecule_index[i] != topo.molecule_index[j]:
                coulomb += K * topo.charges[i] * topo.charges[j] / r
                rep += ff.repulsion_energy * np.exp(
                    (topo.radii[i] + topo.radii[j] - r) / ff.repulsion_length
                )
            else:  # no intramolecular Coulomb; a spring to the template distance
                r0 = np.linalg.norm(template[i] - template[j])
                k = ff.bond_stiffness if r0 < ff.bond_cut else ff.angle_stiffness
                intra += 0.5 * k * (r - r0) ** 2
    terms = pc.energy_terms(x, topo)
    assert terms["coulomb"] == pytest.approx(coulomb, rel=1e-12)
    assert terms["repulsion"] == pytest.approx(rep, rel=1e-12)
    assert terms["intramolecular"] == pytest.approx(intra, rel=1e-12)
    assert intra > 0.0
    energy, _ = pc.dimer_energy_forces(x, topo)
    assert energy == pytest.approx(coulomb + rep + intra, rel=1e-12)
    assert pc.interaction_energy(x, topo) == pytest.approx(coulomb + rep, rel=1e-10)


@pytest.mark.parametrize("box", [None, 30.0], ids=["open", "periodic"])
def test_forces_equal_finite_differences(box):
    topo = pc.topology("ammonium_formate")
    x = distorted_dimer("ammonium_formate", 4.0)
    if box is not None:
        x = x + box / 2
    _, forces = pc.dimer_energy_forces(x, topo, box)
    h = 1e-5
    rng = np.random.default_rng(1)
    for i in rng.choice(len(x), 4, replace=False):
        for a in range(3):
            plus, minus = x.copy(), x.copy()
            plus[i, a] += h
            minus[i, a] -= h
            e_plus, _ = pc.dimer_energy_forces(plus, topo, box)
            e_minus, _ = pc.dimer_energy_forces(minus, topo, box)
            assert forces[i, a] == pytest.approx(-(e_plus - e_minus) / (2 * h), abs=1e-6)


def test_open_energy_is_invariant_to_rotation_and_translation():
    topo = pc.topology("formate_water")
    x = distorted_dimer("formate_water", 5.0)
    rot = pc.random_rotation(np.random.default_rng(3))
    e, f = pc.dimer_energy_forces(x, topo)
    e2, f2 = pc.dimer_energy_forces(x @ rot.T + [1.0, -2.0, 3.0], topo)
    assert e2 == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(f2, f @ rot.T, atol=1e-10)


def intramolecular_coulomb(x: np.ndarray, topo: pc.DimerTopology) -> float:
    total = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if topo.molecule_index[i] == topo.molecule_index[j]:
                total += K * topo.charges[i] * topo.charges[j] / np.linalg.norm(x[i] - x[j])
    return total


@pytest.mark.parametrize("pair", ["ammonium_formate", "ammonium_water", "formate_formate"])
def test_periodic_coulomb_matches_pymatgen_minus_intramolecular_pairs(pair):
    pymatgen_io = pytest.importorskip("pymatgen.io.ase")
    from pymatgen.analysis.ewald import EwaldSummation

    box = 30.0
    topo = pc.topology(pair)
    x = distorted_dimer(pair, 7.0, seed=2)
    x = x - x.mean(axis=0) + box / 2
    atoms = pc.Atoms(numbers=topo.numbers, positions=x, cell=np.eye(3) * box, pbc=True)
    structure = pymatgen_io.AseAtomsAdaptor.get_structure(atoms)
    structure.add_site_property("charge", list(topo.charges))
    reference = EwaldSummation(structure, acc_factor=16.0).total_energy
    coulomb = pc.energy_terms(x, topo, box)["coulomb"]
    assert coulomb == pytest.approx(reference - intramolecular_coulomb(x, topo), abs=2e-6)


def test_large_box_approaches_open_energy_for_neutral_pairs():
    topo = pc.topology("water_water")
    x = distorted_dimer("water_water", 3.2, seed=4)
    e_open, f_open = pc.dimer_energy_forces(x, topo)
    gaps = []
    for box in (25.0, 50.0, 100.0):
        e, f = pc.dimer_energy_forces(x + box / 2, topo, box)
        gaps.append(abs(e - e_open))
    assert gaps[0] > gaps[1] > gaps[2]
    # dipolar images and the tin-foil term decay as 1/L^3
    assert gaps[1] / gaps[2] == pytest.approx(8.0, rel=0.3)
    assert gaps[2] < 1e-4


def test_far_field_is_the_monopole_term_to_dipole_order():
    topo = pc.topology("ammonium_formate")
    orient = pc.random_orientation("ammonium_formate", np.random.default_rng(5), distortion=0.0)
    (qa, qb) = topo.net_charges
    mol_a, mol_b = pc.molecules_of("ammonium_formate")
    p = np.linalg.norm(mol_a.dipole()) + np.linalg.norm(mol_b.dipole())
    for d in (16.0, 30.0, 60.0):
        e = pc.interaction_energy(orient.positions(d), topo)
        monopole = K * qa * qb / d
        assert abs(e - monopole) <= 1.05 * K * p / d**2 + 1e-12
        assert abs(e - monopole) < 0.01 * abs(monopole) or d < 30


def test_samples_honour_contact_distances_and_range():
    atoms = pc.dimer_samples("ammonium_formate", 24, seed=0, max_separation=16.0)
    topo = pc.topology("ammonium_formate")
    contact = pc.contact_distances(topo)
    seps = np.array([a.info["separation"] for a in atoms])
    assert seps.max() <= 16.0 and seps.max() > 10.0
    for a in atoms:
        assert a.info["min_intermolecular_distance"] >= pc.D_MIN
        assert not pc.in_contact(a.positions, topo, contact - 1e-9)
        com = [a[a.arrays["molecule_index"] == m].get_center_of_mass() for m in (0, 1)]
        assert np.linalg.norm(com[1] - com[0]) == pytest.approx(a.info["separation"], abs=1e-9)
        energy, forces = pc.dimer_energy_forces(a.positions, topo)
        assert a.get_potential_energy() == pytest.approx(energy)
        assert a.info["interaction_energy"] == pytest.approx(
            a.info["e_coulomb"] + a.info["e_repulsion"], abs=1e-9
        )


def test_curves_skip_contacts_and_keep_one_geometry_per_orientation():
    seps = np.linspace(0.5, 16.0, 32)
    atoms = pc.dimer_curves("formate_water", seps, num_orientations=2, seed=1)
    assert 0 < len(atoms) < 64  # the closest separations are in contact and skipped
    for k in (0, 1):
        curve = [a for a in atoms if a.info["orientation"] == k]
        assert curve[-1].info["separation"] == pytest.approx(16.0)
        intra = [a.info["e_intramolecular"] for a in curve]
        np.testing.assert_allclose(intra, intra[0], rtol=1e-9)  # same monomers along a curve


def test_periodic_generator_checks_images_and_roundtrips_through_extxyz(tmp_path):
    from ase.io import write

    from rsajax.data import read_structures

    atoms = pc.dimer_curves(
        "ammonium_water", [4.0, 16.0], num_orientations=1, seed=0, periodic_box=30.0
    )
    assert len(atoms) == 2
    for a in atoms:
        assert a.pbc.all() and np.allclose(a.cell.array, np.eye(3) * 30.0)
        assert pc.nearest_image_distance(a.positions, a.cell.array) >= pc.R_IMAGE_MIN
    path = tmp_path / "dimers.xyz"
    write(path, atoms, format="extxyz")
    back = read_structures(str(path), require=("energy", "forces"))
    assert back[1].get_potential_energy() == pytest.approx(atoms[1].get_potential_energy())
    np.testing.assert_allclose(back[1].get_forces(), atoms[1].get_forces())
    assert back[1].info["separation"] == pytest.approx(16.0)
    with pytest.raises(ValueError, match="r_image_min"):
        pc.dimer_curves("ammonium_water", [16.0], num_orientations=1, seed=0, periodic_box=20.0)


def test_a_lone_ion_in_a_box_carries_its_madelung_self_energy():
    """A unit ion alone in a cube of side L interacts with its images and the neutralising
    background: ``-k_e xi q^2 / 2L`` with the cubic lattice's xi = 2.837297. The molecule's own
    extent changes that only at higher multipole order (a few meV in a 30 A box); a neutral
    molecule's self-image energy is its dipole's, under a meV."""
    xi, box = 2.837297, 30.0
    for molecule in ("hydronium", "formate", "water"):
        atoms = pc.monomer_samples(molecule, 2, seed=3, periodic_box=box)
        assert len(atoms) == 2
        assert not np.allclose(atoms[0].positions, atoms[1].positions)  # fresh draws
        q = pc.MOLECULES[molecule].net_charge
        for a in atoms:
            assert a.info["charge"] == pytest.approx(q)
            assert a.info["interaction_energy"] == 0.0
            assert "min_intermolecular_distance" not in a.info
            assert a.pbc.all() and np.allclose(a.cell.array, np.eye(3) * box)
            np.testing.assert_allclose(a.get_forces().sum(axis=0), 0.0, atol=1e-7)
            assert a.info["e_coulomb"] == pytest.approx(-K * xi * q**2 / (2 * box), abs=3e-3)
            total = a.info["e_coulomb"] + a.info["e_intramolecular"] + a.info["e_repulsion"]
            assert a.get_potential_energy() == pytest.approx(total)
    with pytest.raises(ValueError, match="unknown molecule"):
        pc.monomer_samples("methane", 1, seed=0)
