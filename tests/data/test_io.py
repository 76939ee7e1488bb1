"""Reading structures: label conventions (stress sign, Voigt order, virial) and bad input."""

import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from rsajax.data import StructureError, atoms_to_graph, read_structures
from tests.structures import stress_by_strain


def strained_copper():
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    atoms.set_cell(
        atoms.cell.array @ (np.eye(3) + [[0.01, 0.02, -0.01], [0, -0.02, 0.03], [0, 0, 0.015]]),
        scale_atoms=True,
    )
    atoms.rattle(0.05, seed=0)
    return atoms


def strain_derivative(atoms, calc, h=1e-5):
    """(1/V) dE/d(eps) by central differences with a symmetric strain of positions and cell."""

    def energy_of(strained):
        strained.calc = calc
        return strained.get_potential_energy()

    return np.array(
        [[stress_by_strain(energy_of, atoms, a, b, h) for b in range(3)] for a in range(3)]
    )


def test_stress_sign_and_voigt_order_survive_extxyz(tmp_path):
    atoms = strained_copper()
    atoms.calc = EMT()
    expected = strain_derivative(atoms, EMT())
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    path = tmp_path / "cu.extxyz"
    write(path, atoms)
    (read,) = read_structures(path)
    graph = atoms_to_graph(read, 4.0)
    np.testing.assert_allclose(graph.stress[0], expected, atol=1e-7)
    assert abs(expected[1, 2]) > 1e-4 and abs(expected[0, 1] - expected[1, 2]) > 1e-4


def test_custom_keys_and_virial(tmp_path):
    atoms = strained_copper()
    atoms.calc = EMT()
    energy, forces, stress = (
        atoms.get_potential_energy(),
        atoms.get_forces(),
        atoms.get_stress(voigt=False),
    )
    plain = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    plain.info["REF_energy"] = energy
    plain.arrays["REF_forces"] = forces
    plain.info["REF_virial"] = (-stress * atoms.get_volume()).reshape(-1)
    path = tmp_path / "ref.extxyz"
    write(path, plain)
    (read,) = read_structures(
        path, energy_key="REF_energy", forces_key="REF_forces", virial_key="REF_virial"
    )
    graph = atoms_to_graph(read, 4.0)
    np.testing.assert_allclose(graph.energy[0], energy)
    np.testing.assert_allclose(graph.forces[: len(atoms)], forces, atol=1e-8)
    np.testing.assert_allclose(graph.stress[0], stress, atol=1e-10)
    assert graph.has_stress[0] and not graph.has_dipole[0]


def write_frames(path, frames):
    write(path, frames, format="extxyz")
    return path


def good():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.info["energy"] = -10.0
    return atoms


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda a: a.positions.__setitem__((1, 0), np.nan) or a, "non-finite positions"),
        (lambda a: a.positions.__setitem__(1, a.positions[0] + 0.1) or a, "closer than"),
        (lambda a: (a.set_cell(np.zeros((3, 3))), a)[1], "zero volume"),
        (lambda a: (a.info.__setitem__("energy", np.inf), a)[1], "non-finite energy"),
        (lambda a: Atoms(cell=a.cell, pbc=True), "empty structure"),
        (lambda a: (a.numbers.__setitem__(0, 0), a)[1], "unknown element"),
    ],
)
def test_bad_input_names_file_index_and_problem(tmp_path, make_bad, message):
    frames = [good(), make_bad(good()), good()]
    path = write_frames(tmp_path / "bad.extxyz", frames)
    with pytest.raises(StructureError, match=message) as error:
        read_structures(path)
    assert f"{path}[1]" in str(error.value)


def test_missing_required_label(tmp_path):
    atoms = good()
    path = write_frames(tmp_path / "nolabels.extxyz", [atoms])
    with pytest.raises(StructureError, match=r"\[0\]: missing forces"):
        read_structures(path, require=("energy", "forces"))


def test_element_outside_table(tmp_path):
    path = write_frames(tmp_path / "si.extxyz", [good()])
    with pytest.raises(StructureError, match=r"element\(s\) Si not in the element table \[O\]"):
        read_structures(path, allowed_numbers=[8])


def test_skip_invalid_counts_and_reports(tmp_path):
    bad = good()
    bad.positions[1] = bad.positions[0]
    path = write_frames(tmp_path / "mixed.extxyz", [good(), bad, good(), bad])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept, report = read_structures(path, skip_invalid=True, return_report=True)
    assert len(kept) == 2 and report.read == 4 and report.kept == 2
    assert [e.where for e in report.skipped] == [f"{path}[1]", f"{path}[3]"]
    assert any("skipped 2" in str(w.message) for w in caught)
    assert [a.info["rsajax_source"] for a in kept] == [f"{path}[0]", f"{path}[2]"]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such structure file"):
        read_structures(tmp_path / "nope.xyz")
    junk = tmp_path / "junk.extxyz"
    junk.write_text("3\nnot a header\nXx 0 0\n")
    with pytest.raises(StructureError, match="junk.extxyz"):
        read_structures(junk)
