"""Scattering weights: neutron coherent lengths and X-ray atomic form factors."""

from __future__ import annotations

import numpy as np
import periodictable
import xraydb


def neutron_lengths(species: np.ndarray) -> np.ndarray:
    """(S,) bound coherent neutron scattering lengths b_c in fm (``periodictable``)."""
    out = []
    for z in np.asarray(species):
        b = periodictable.elements[int(z)].neutron.b_c
        if b is None:
            raise ValueError(f"periodictable has no coherent scattering length for Z={z}")
        out.append(b)
    return np.asarray(out, dtype=np.float64)


def xray_form_factors(species: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(K, S) Waasmaier-Kirfel (1995) atomic form factors f_a(q) of neutral atoms (``xraydb``).

    ``xraydb.f0`` takes ``s = sin(theta)/lambda = q / (4 pi)``.
    """
    q = np.asarray(q, dtype=np.float64)
    cols = [
        np.asarray(xraydb.f0(periodictable.elements[int(z)].symbol, q / (4.0 * np.pi)))
        for z in np.asarray(species)
    ]
    return np.stack(cols, axis=-1).reshape(q.shape + (len(cols),))


def pair_weights(concentrations: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(S, S) Faber-Ziman weights ``c_a c_b w_a w_b / (sum c w)^2`` of constant weights; sum 1.

    For silica with neutrons: Si-Si 0.069, O-O 0.543 and Si-O + O-Si 0.388.
    """
    cw = np.asarray(concentrations) * np.asarray(lengths)
    return np.outer(cw, cw) / cw.sum() ** 2
