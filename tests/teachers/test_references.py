"""External long-range references: ASE's S22x5 set and GFN2-xTB dimers through tblite."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rsajax.teachers import s22

HAS_TBLITE = importlib.util.find_spec("tblite") is not None
needs_tblite = pytest.mark.skipif(
    not HAS_TBLITE, reason="tblite is not installed (GFN2-xTB labels need the 'teachers' extra)"
)


def test_s22x5_has_110_dimers_with_monomer_index_and_energies():
    dimers = s22.s22x5()
    assert len(s22.s22x5_systems()) == 22 and len(dimers) == 110
    water = [a for a in dimers if a.info["system"] == "Water_dimer"]
    assert [a.info["factor"] for a in water] == [0.9, 1.0, 1.2, 1.5, 2.0]
    assert np.bincount(water[0].arrays["molecule_index"]).tolist() == [3, 3]
    # CCSD(T)/CBS water dimer at equilibrium: -5.0 kcal/mol
    assert water[1].get_potential_energy() == pytest.approx(-5.0 * 0.0433641, abs=0.005)
    for a in dimers:
        assert a.get_potential_energy() == a.info["interaction_energy"]
        assert set(a.get_chemical_symbols()) <= {"H", "C", "N", "O"}
    for system in s22.s22x5_systems():  # separations grow with the factor
        r = [a.info["min_intermolecular_distance"] for a in dimers if a.info["system"] == system]
        assert np.all(np.diff(r) > 0)
    beyond = [a for a in dimers if a.info["min_intermolecular_distance"] >= 5.0]
    assert len(beyond) == 13  # the module docstring's count
    assert max(abs(a.info["interaction_energy"]) for a in beyond) < 0.04


def test_s22x5_monomers_are_zero_energy_halves_of_the_dimer():
    monomers = s22.s22x5_monomers(["Formic_acid_dimer"])
    dimer = s22.s22x5_dimer("Formic_acid_dimer", "2.0")
    assert [len(m) for m in monomers] == [5, 5]
    assert all(m.get_potential_energy() == 0.0 for m in monomers)
    # rigid monomers: the same internal geometry at every factor
    d_mono = monomers[0].get_all_distances()
    d_dimer = dimer[dimer.arrays["molecule_index"] == 0].get_all_distances()
    np.testing.assert_allclose(d_mono, d_dimer, atol=1e-3)
    with pytest.raises(ValueError, match="not an S22x5 entry"):
        s22.s22x5_dimer("Water_dimer", "3.0")


@needs_tblite
def test_xtb_labels_a_charged_neutral_curve_with_consistent_forces():
    from rsajax.teachers import xtb

    atoms = xtb.xtb_dimer_curves("ammonium_water", [4.0, 16.0], 1, seed=0)
    assert len(atoms) == 2
    near, far = atoms
    assert near.info["charge"] == 1 and near.info["reference"] == "GFN2-xTB"
    assert abs(near.info["xtb_charge_a"] - 1.0) < 0.04
    assert "e_coulomb" not in near.info
    # charge-dipole attraction decays: |E_int| smaller at 16 A than at 4 A
    assert abs(far.info["interaction_energy"]) < abs(near.info["interaction_energy"])
    forces = near.get_forces()
    assert np.isfinite(forces).all() and np.abs(forces.sum(axis=0)).max() < 1e-3
    h, i = 1e-3, 0
    energies = []
    for sign in (1, -1):
        moved = near.copy()
        moved.positions[i, 2] += sign * h
        e, _, _ = xtb.xtb_energy_forces(moved, charge=1)
        energies.append(e)
    assert forces[i, 2] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=2e-3)


@needs_tblite
def test_xtb_rejects_an_ion_pair_whose_charge_moves_at_long_range():
    from rsajax.teachers import point_charges as pc
    from rsajax.teachers import xtb

    far = pc.dimer_curves("ammonium_formate", [24.0], 1, seed=0, distortion=0.0)
    with pytest.raises(ValueError, match="charge transfer"):
        xtb.xtb_label(far)


def test_missing_tblite_is_a_clear_error(monkeypatch):
    import builtins

    from rsajax.teachers import xtb

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("tblite"):
            raise ImportError("no tblite here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="teachers"):
        xtb.require_tblite()
