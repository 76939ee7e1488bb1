"""Reciprocal-space attention (RSA): the long-range part of RSA-MACE.

What it is. In every chosen interaction layer, the layer's input scalars give queries, keys and
values per atom, and each atom attends to every atom of its structure (and, in a periodic cell,
to all their images) through a sum over k-vectors::

    u_i = sum_k w(k) Re[ q_i e^{i k . r_i} (sum_j conj(k_j) (x) v_j e^{-i k . r_j}) ]

The per-k weight ``w(k)`` is a kernel in reciprocal space (an Ewald-like ``4 pi e^{-k^2 sigma^2
/ 2} / k^2``, learned, or both), so ``u`` carries a smooth long-range interaction that a
cutoff-based MACE cannot see. ``u`` is merged into the layer's features (``tp``, ``gate``,
``residual``) or read out as an additive long-range energy (``energy``). A periodic cell sums over
its reciprocal lattice vectors (``|k| <= k_cut``, weighted ``1/V``); an open-boundary structure
integrates over continuous k, which is a pair sum with a radial kernel; a large periodic box may
evaluate the lattice sum on a particle mesh (``evaluation="mesh"``) at a cost linear in N.

The default split (``RSAConfig.preset("default")``): the kernel is a Gaussian-smeared Coulomb
``erf(r / (sqrt 2 sigma)) / r`` with a learned positive correction per head; ``sigma`` and
``k_cut`` follow from the local model's ``r_max`` (:func:`ewald_split`) so that the real-space
remainder ``erfc(r_max / (sqrt 2 sigma))`` and the cut Gaussian are both ``1e-3``
(:data:`DEFAULT_ACCURACY`): at ``r_max = 5`` A, ``sigma = 1.52`` A and ``k_cut = 3.06`` 1/A. Two
heads of 8 channels, and an additive energy ``k_e sum_c p_ic u_ic`` (:data:`COULOMB_CONSTANT`),
started at zero so a new model is its short-range part.

Use::

    config = MACEConfig(..., long_range=RSAConfig.preset("default"))  # or "seed", a dict
    model, variables = init_model(config)
    kset_fn = make_kset_fn(model.config.long_range, structures)  # host side, once per dataset
    graph = atoms_to_graph(atoms, config.r_max, kset_fn=kset_fn)

Where each piece lives (one concept per module; each imports only modules listed before it):

- :mod:`~rsajax.nn.rsa.kset`: the :class:`KSet` and its choice on the host (lattice sets, the
  open-boundary radial rule, the seed set), the traced k geometry (``kspace_geometry``).
  Cell geometry shared with the teachers and MD is :mod:`rsajax.lattice`.
- :mod:`~rsajax.nn.rsa.config`: :class:`RSAConfig`, presets, :func:`ewald_split`, the names of
  the weightings, evaluations and combinations.
- :mod:`~rsajax.nn.rsa.combine`: the feature combinations ``tp``, ``gate``, ``residual``.
- :mod:`~rsajax.nn.rsa.grid`: the mesh's grid (shape, :class:`MeshSpec`, frequencies).
- :mod:`~rsajax.nn.rsa.weights`: envelope, Ewald kernel, fixed and learned per-k weights (one
  form for all, on the direct k-set and on the grid), and a layer's real-space kernel.
- :mod:`~rsajax.nn.rsa.kernel`: the direct and open-boundary attention kernels (pure functions).
- :mod:`~rsajax.nn.rsa.bspline`, :mod:`~rsajax.nn.rsa.mesh`: B-spline spreading and
  interpolation, and the particle-mesh kernel.
- :mod:`~rsajax.nn.rsa.kset_fn`: :func:`make_kset_fn` (the host function of a dataset) and
  :func:`init_kset`.
- :mod:`~rsajax.nn.rsa.layer`: :class:`RSABlock`, :class:`LongRangeLayer` (what
  :class:`rsajax.nn.model.MACE` calls) and :func:`with_evaluation`.
"""

from rsajax.nn.rsa.config import DEFAULT_ACCURACY, RSAConfig, as_rsa_config, ewald_split
from rsajax.nn.rsa.grid import MeshSpec
from rsajax.nn.rsa.kset import SEED_NUM_K, KSet, build_kset, kset_covers
from rsajax.nn.rsa.kset_fn import init_kset, make_kset_fn
from rsajax.nn.rsa.layer import LongRangeLayer, RSABlock, long_range_combine, with_evaluation
from rsajax.nn.rsa.weights import real_space_kernel
from rsajax.units import COULOMB_CONSTANT

__all__ = [
    "COULOMB_CONSTANT",
    "DEFAULT_ACCURACY",
    "SEED_NUM_K",
    "KSet",
    "LongRangeLayer",
    "MeshSpec",
    "RSABlock",
    "RSAConfig",
    "as_rsa_config",
    "build_kset",
    "ewald_split",
    "init_kset",
    "kset_covers",
    "long_range_combine",
    "make_kset_fn",
    "real_space_kernel",
    "with_evaluation",
]
