"""Real-space functions from a total S(Q), with the Lorch window applied identically to all data.

``G(r) = (2 / pi) int_0^Qmax Q (S(Q) - 1) M(Q) sin(Q r) dQ`` (the reduced pair distribution
function, 1/A^2), with the Lorch (1969) modification function ``M(Q) = sin(pi Q/Qmax)/(pi Q/Qmax)``
damping the truncation ripples. ``g(r) = 1 + G(r) / (4 pi rho r)`` then is the total pair
distribution weighted as S(Q) was (neutron or X-ray).

Simulation S(Q) comes on irregular shell-mean |q|; the integral is a trapezoid over the given
points with ``Q (S - 1) -> 0`` added at Q = 0, so both curves are treated the same way.
"""

from __future__ import annotations

import numpy as np


def lorch(q: np.ndarray, q_max: float) -> np.ndarray:
    """Lorch window M(Q) = sinc(Q / Qmax) (numpy's normalised sinc), zero beyond Qmax."""
    q = np.asarray(q, dtype=np.float64)
    return np.where(q <= q_max, np.sinc(q / q_max), 0.0)


def reduced_pdf(
    q: np.ndarray, s: np.ndarray, r: np.ndarray, q_max: float, window: bool = True
) -> np.ndarray:
    """(R,) G(r) in 1/A^2 from S(Q) at points ``q`` (K,), using points with Q <= q_max."""
    q = np.asarray(q, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    keep = (q > 0) & (q <= q_max)
    order = np.argsort(q[keep])
    qk = np.concatenate([[0.0], q[keep][order]])
    f = np.concatenate([[0.0], (qk[1:] * (s[keep][order] - 1.0))])
    if window:
        f = f * lorch(qk, q_max)
    integrand = f[None, :] * np.sin(np.outer(np.asarray(r, dtype=np.float64), qk))
    return 2.0 / np.pi * np.trapezoid(integrand, qk, axis=1)


def total_pdf(
    q: np.ndarray, s: np.ndarray, r: np.ndarray, density: float, q_max: float, window: bool = True
) -> np.ndarray:
    """(R,) g(r) = 1 + G(r) / (4 pi rho r); ``density`` in atoms/A^3, r > 0."""
    r = np.asarray(r, dtype=np.float64)
    return 1.0 + reduced_pdf(q, s, r, q_max, window) / (4.0 * np.pi * density * r)
