"""Molecular dynamics with rsajax models (and the BKS teacher) inside jax-md.

- :mod:`~rsajax.md.adapter`: a model as a jax-md energy function on jax-md's neighbour lists.
- :mod:`~rsajax.md.integrators`: NVE, Langevin / Nose-Hoover NVT, Nose-Hoover NPT.
- :mod:`~rsajax.md.protocols`: heat, hold, quench, anneal stages -> per-step targets.
- :mod:`~rsajax.md.simulation`: chunked ``lax.scan`` runs with reallocation and blow-up checks.
- :mod:`~rsajax.md.output`: thermo log, extxyz / ASE trajectory, checkpoints.
- :mod:`~rsajax.md.replicas`: independent replicas advanced together with ``vmap``.
- :mod:`~rsajax.md.differentiable`: gradients of trajectory observables w.r.t. parameters.
"""

from rsajax.md.adapter import MDSystem, model_system, strain_margin_check
from rsajax.md.integrators import Ensemble, make_integrator
from rsajax.md.protocols import Schedule, Stage, build_schedule
from rsajax.md.simulation import BlowUpError, BlowUpLimits, Simulation, relax
from rsajax.md.teacher import bks_system, lennard_jones_system

__all__ = [
    "BlowUpError",
    "BlowUpLimits",
    "Ensemble",
    "MDSystem",
    "Schedule",
    "Simulation",
    "Stage",
    "bks_system",
    "build_schedule",
    "lennard_jones_system",
    "make_integrator",
    "model_system",
    "relax",
    "strain_margin_check",
]
