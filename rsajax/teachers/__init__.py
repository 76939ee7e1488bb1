"""Reference potentials that label data: BKS silica with a full Ewald sum (jax-md), fixed
point-charge molecular dimers (``point_charges``), a layered crystal bound by damped C6 dispersion
(``layered``), flexible fixed-charge water with Ewald (``water``), and external long-range
references: ASE's S22x5 CCSD(T) set (``s22``) and GFN2-xTB dimers through tblite (``xtb``,
optional)."""

from rsajax.teachers.bks import (
    BKS,
    BKSParameters,
    BKSSystem,
    bks_energy_forces_stress,
    bks_silica,
    make_label_fn,
)
from rsajax.teachers.point_charges import dimer_curves, dimer_energy_forces, dimer_samples

__all__ = [
    "BKS",
    "BKSParameters",
    "BKSSystem",
    "bks_energy_forces_stress",
    "bks_silica",
    "dimer_curves",
    "dimer_energy_forces",
    "dimer_samples",
    "make_label_fn",
]
