"""Physical constants in rsajax's units: energies in eV, lengths in A, charges in e."""

from __future__ import annotations

#: e^2 / (4 pi eps0) in eV A (CODATA 2018: 1.43996454784e-9 eV m).
COULOMB_CONSTANT = 14.3996454784
