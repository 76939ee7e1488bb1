"""The NIMROD v-SiO2 neutron data: reading, FSDP fit, real-space peaks."""

import numpy as np
import pytest

from rsajax.analysis.experiment import read_nimrod_mint01
from rsajax.analysis.fsdp import fit_fsdp
from rsajax.analysis.realspace import total_pdf
from tests.analysis.structures import NIMROD

needs_data = pytest.mark.skipif(
    not NIMROD.is_file(), reason=f"experimental file {NIMROD} (beside the repository) is absent"
)


@needs_data
def test_nimrod_fsdp_at_1p47():
    """The package's fit gives the FSDP at 1.47 +- 0.02 1/A, S_N 1.44, FWHM about 0.41 1/A."""
    exp = read_nimrod_mint01(NIMROD)
    assert len(exp.q) > 900 and exp.q.min() > 0
    # S_N -> 1 at high Q confirms the F(Q) -> S(Q) conversion with <b>^2 = 0.2758 barn
    assert np.mean(exp.s[exp.q > 30]) == pytest.approx(1.0, abs=0.02)
    peak = fit_fsdp(exp.q, exp.s)
    assert peak.position == pytest.approx(1.47, abs=0.02)
    assert peak.height == pytest.approx(1.44, abs=0.03)
    assert peak.fwhm == pytest.approx(0.41, abs=0.05)


@needs_data
def test_nimrod_real_space_bond_lengths():
    """Lorch-windowed g(r) at 2.20 g/cm3 shows Si-O at 1.60-1.62 A and O-O at 2.62 A."""
    exp = read_nimrod_mint01(NIMROD)
    r = np.linspace(1.0, 3.0, 201)
    g = total_pdf(exp.q, exp.s, r, density=0.0662, q_max=25.0)
    si_o = r[np.argmax(np.where(r < 2.0, g, -np.inf))]
    o_o = r[np.argmax(np.where((r > 2.3) & (r < 2.9), g, -np.inf))]
    assert 1.59 <= si_o <= 1.63
    assert o_o == pytest.approx(2.62, abs=0.03)
    assert np.all(np.abs(g[r < 1.3]) < 0.3)  # no atoms closer than the Si-O bond


def test_reader_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_nimrod_mint01(tmp_path / "missing.mint01")
    bad = tmp_path / "bad.mint01"
    bad.write_text("# header\n 0.1 0.2\n")
    with pytest.raises(ValueError, match="3 columns"):
        read_nimrod_mint01(bad)
