"""The FSDP fit recovers a known peak and refuses too few points."""

import numpy as np
import pytest

from rsajax.analysis.fsdp import fit_fsdp
from rsajax.analysis.realspace import lorch, reduced_pdf


def test_fit_recovers_gaussian_on_sloped_background():
    q = np.sort(np.random.default_rng(0).uniform(0.5, 3.0, 200))  # irregular, like shells
    sigma = 0.18
    s = 0.9 * np.exp(-0.5 * ((q - 1.52) / sigma) ** 2) + 0.55 + 0.1 * (q - 1.52)
    peak = fit_fsdp(q, s)
    assert peak.position == pytest.approx(1.52, abs=1e-6)
    assert peak.height == pytest.approx(1.45, abs=1e-6)
    assert peak.fwhm == pytest.approx(2.3548200450309493 * sigma, rel=1e-6)


def test_fit_needs_points():
    with pytest.raises(ValueError, match="at least 6"):
        fit_fsdp(np.array([1.2, 1.5, 1.8]), np.array([1.0, 1.4, 1.0]))
    with pytest.raises(ValueError, match="no S"):
        fit_fsdp(np.array([3.0, 4.0]), np.array([1.0, 1.0]))


def test_lorch_window_and_transform_of_single_shell():
    """M(0) = 1, M(Qmax) = 0; S - 1 from one shell of atoms at distance d (Debye formula)
    transforms back to a G(r) peaked at d."""
    assert lorch(np.array([0.0]), 20.0)[0] == pytest.approx(1.0)
    assert lorch(np.array([20.0]), 20.0)[0] == pytest.approx(0.0, abs=1e-12)
    q = np.linspace(0.01, 25.0, 2500)
    d = 1.6
    s = 1.0 + 0.5 * np.sin(q * d) / (q * d)
    r = np.linspace(0.5, 3.0, 251)
    g = reduced_pdf(q, s, r, q_max=25.0)
    assert r[np.argmax(g)] == pytest.approx(d, abs=0.02)
