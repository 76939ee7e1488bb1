"""First sharp diffraction peak (FSDP): position, height and width by one documented fit.

Procedure (the same for simulation and experiment):

1. Find the highest point of S(Q) in the search range ``[q_lo, q_hi]`` (default 1.0-2.2 1/A for
   silica; the principal peak near 2.9 1/A lies outside).
2. Take every point within ``half_window`` (default 0.3 1/A) of it.
3. Least-squares fit ``S(Q) = h exp(-(Q - Q0)^2 / (2 s^2)) + a + b (Q - Q0)``, unweighted, so the
   result does not depend on how errors are estimated.
4. Report the position ``Q0``, the height ``S(Q0)`` of the fitted curve (peak plus background: the
   number read off a plot) and the full width at half maximum of the Gaussian, ``2.3548 s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


@dataclass(frozen=True)
class PeakFit:
    """Fitted FSDP.

    Attributes:
        position: Q0, 1/A.
        height: S(Q0) of the fitted curve.
        fwhm: full width at half maximum of the Gaussian, 1/A.
        amplitude: Gaussian amplitude above the linear background.
        n_points: number of points used in the fit.
    """

    position: float
    height: float
    fwhm: float
    amplitude: float
    n_points: int


def _model(q, h, q0, s, a, b):
    return h * np.exp(-0.5 * ((q - q0) / s) ** 2) + a + b * (q - q0)


def fit_fsdp(
    q: np.ndarray,
    s: np.ndarray,
    q_lo: float = 1.0,
    q_hi: float = 2.2,
    half_window: float = 0.3,
) -> PeakFit:
    """Fit the FSDP of S(Q) given at points ``q`` (any spacing, sorted or not); see module doc."""
    q = np.asarray(q, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    order = np.argsort(q)
    q, s = q[order], s[order]
    search = (q >= q_lo) & (q <= q_hi)
    if not search.any():
        raise ValueError(f"no S(Q) points between {q_lo} and {q_hi} 1/A to search for the FSDP")
    top = np.flatnonzero(search)[np.argmax(s[search])]
    window = np.abs(q - q[top]) <= half_window
    if window.sum() < 6:
        raise ValueError(
            f"only {window.sum()} S(Q) points within {half_window} 1/A of the FSDP; "
            "need at least 6 (larger box, narrower q shells, or wider window)"
        )
    qw, sw = q[window], s[window]
    base = min(sw[0], sw[-1])
    p0 = [s[top] - base, q[top], half_window / 2.0, base, 0.0]
    bounds = (
        [0.0, qw[0], 0.02, -np.inf, -np.inf],
        [np.inf, qw[-1], 2.0 * half_window, np.inf, np.inf],
    )
    popt, _ = curve_fit(_model, qw, sw, p0=p0, bounds=bounds, maxfev=20000)
    h, q0, sig, a, _ = popt
    return PeakFit(
        position=float(q0),
        height=float(h + a),
        fwhm=float(2.0 * np.sqrt(2.0 * np.log(2.0)) * sig),
        amplitude=float(h),
        n_points=int(window.sum()),
    )
