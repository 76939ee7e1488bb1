"""Bond angles of ideal crystals against their known values."""

import numpy as np
import pytest

from rsajax.analysis.angles import angle_distribution, bond_angles, silica_angles
from tests.analysis.structures import alpha_quartz, beta_cristobalite


def test_beta_cristobalite_angles():
    """Ideal beta-cristobalite: straight Si-O-Si (180 deg), perfect tetrahedra (109.47 deg)."""
    a = beta_cristobalite()
    sisi = bond_angles(a.positions, a.cell[:], a.numbers, 8, 14, 2.0)
    osio = bond_angles(a.positions, a.cell[:], a.numbers, 14, 8, 2.0)
    assert len(sisi) == 16 and len(osio) == 8 * 6
    np.testing.assert_allclose(sisi, 180.0, atol=1e-6)
    np.testing.assert_allclose(osio, np.degrees(np.arccos(-1 / 3)), atol=1e-6)


def test_alpha_quartz_angles():
    """Levien et al. (1980): Si-O-Si 143.73 deg; O-Si-O 108.81, 108.93, 109.24, 110.52 (x2)."""
    a = alpha_quartz()
    assert a.get_chemical_formula() == "O6Si3"
    dist = silica_angles([a * (2, 2, 2)], cutoff=2.0)
    sisi, osio = dist["Si-O-Si"], dist["O-Si-O"]
    assert sisi.count == 6 * 8 and osio.count == 3 * 6 * 8
    assert sisi.mean == pytest.approx(143.73, abs=0.1)
    assert sisi.std < 1e-6
    assert osio.mean == pytest.approx(109.47, abs=0.05)
    values = np.unique(np.round(bond_angles(a.positions, a.cell[:], a.numbers, 14, 8, 2.0), 1))
    np.testing.assert_allclose(values, [108.8, 109.0, 109.2, 110.5], atol=0.15)


def test_angle_distribution_moments_and_errors():
    d = angle_distribution(np.array([140.0, 150.0, 160.0]), bin_width=5.0)
    assert d.mean == pytest.approx(150.0)
    assert d.std == pytest.approx(np.sqrt(200 / 3))
    assert np.sum(d.density) * 5.0 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cutoff"):
        angle_distribution(np.array([]))
