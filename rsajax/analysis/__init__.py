"""Glass structure analysis: S(Q) (neutron, X-ray), FSDP, g(r), angles, rings, experiment.

Array functions take positions (F, N, 3) or (N, 3) in A, cells (3, 3) with lattice vectors as
rows, and species as atomic numbers; :mod:`rsajax.analysis.frames` wraps them for lists of
ase.Atoms. jax-md's ``periodic_general`` box holds lattice vectors as columns: with fractional
coordinates pass ``positions = state.position @ box.T`` and ``cell = box.T``.
"""

from rsajax.analysis.angles import angle_distribution, bond_angles, silica_angles
from rsajax.analysis.experiment import SILICA_REFERENCE, read_nimrod_mint01
from rsajax.analysis.frames import (
    atoms_from_arrays,
    density_g_cm3,
    rdf_frames,
    read_frames,
    ring_statistics_frames,
    structure_factor_frames,
)
from rsajax.analysis.fsdp import PeakFit, fit_fsdp
from rsajax.analysis.melt import MeltCheck, mean_square_displacement, melt_check
from rsajax.analysis.rdf import RDF, partial_rdf, smooth_partial_rdf
from rsajax.analysis.realspace import lorch, reduced_pdf, total_pdf
from rsajax.analysis.rings import ring_fractions, ring_statistics
from rsajax.analysis.structure_factor import (
    StructureFactor,
    reciprocal_grid,
    shell_sums,
    structure_factor,
    weighted_structure_factor,
)
from rsajax.analysis.weights import neutron_lengths, pair_weights, xray_form_factors

__all__ = [
    "RDF",
    "SILICA_REFERENCE",
    "MeltCheck",
    "PeakFit",
    "StructureFactor",
    "angle_distribution",
    "atoms_from_arrays",
    "bond_angles",
    "density_g_cm3",
    "fit_fsdp",
    "lorch",
    "mean_square_displacement",
    "melt_check",
    "neutron_lengths",
    "pair_weights",
    "partial_rdf",
    "rdf_frames",
    "read_frames",
    "read_nimrod_mint01",
    "reciprocal_grid",
    "reduced_pdf",
    "ring_fractions",
    "ring_statistics",
    "ring_statistics_frames",
    "shell_sums",
    "silica_angles",
    "smooth_partial_rdf",
    "structure_factor",
    "structure_factor_frames",
    "total_pdf",
    "weighted_structure_factor",
    "xray_form_factors",
]
