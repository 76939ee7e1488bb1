"""Reference potentials that label data: BKS silica with a full Ewald sum (jax-md)."""

from rsajax.teachers.bks import (
    BKS,
    BKSParameters,
    BKSSystem,
    bks_energy_forces_stress,
    bks_silica,
    make_label_fn,
)

__all__ = [
    "BKS",
    "BKSParameters",
    "BKSSystem",
    "bks_energy_forces_stress",
    "bks_silica",
    "make_label_fn",
]
