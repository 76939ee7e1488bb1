"""Per-k weights of reciprocal-space attention: envelope, Ewald kernel, fixed and learned.

Every weighting has one form (:func:`kweights`), on the k-set's real slots and 0 on masked ones::

    w(k) = f(|k|) x ewald(|k|^2) x envelope(|k|) x measure

- ``ones`` (the reference): ``f = 1``, no Ewald factor, no measure (1 per lattice vector, no
  ``1/V``); lattice-only.
- ``ewald``: ``f = 1`` and the Ewald factor :func:`ewald_kernel` of width ``sigma``.
- ``learned``: ``f`` a positive radial function per head (:class:`LearnedKWeights`).
- ``ewald_learned``: both: the learned ``f`` corrects the Ewald kernel, starting at 1.

The measure is ``1/V`` on a lattice and the quadrature weight for open boundaries
(:func:`rsajax.nn.rsa.kset.kspace_geometry`); the envelope is :func:`smooth_envelope`, absent for
the seed k-set. The mesh evaluation uses the same weights on the grid's frequencies
(:func:`mesh_kweights`). :func:`real_space_kernel` turns a layer's weights into its open-boundary
pair kernel ``phi_h(r)``, to read what a trained layer learned as a function of distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rsajax.nn.rsa.config import RSAConfig
from rsajax.nn.rsa.grid import MeshSpec, mesh_kset
from rsajax.nn.rsa.kset import KSet, k_squared, kspace_geometry, open_quadrature, radial_nodes_for


def smooth_envelope(k_norm: jnp.ndarray, k_cut: float, width: float = 0.2) -> jnp.ndarray:
    """C^2 envelope in |k|: 1 below ``k_cut (1 - width)``, 0 at and beyond ``k_cut``.

    Uses the quintic smoothstep ``1 - x^3 (10 - 15 x + 6 x^2)``, whose first and second
    derivatives vanish at both ends, so a k-vector crossing ``k_cut`` under strain changes the
    energy, its forces and its stress continuously.
    """
    k_on = k_cut * (1.0 - width)
    x = jnp.clip((k_norm - k_on) / (k_cut - k_on), 0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)


def ewald_kernel(k_sq: jnp.ndarray, sigma: float) -> jnp.ndarray:
    """``4 pi exp(-k^2 sigma^2 / 2) / k^2`` (A^2): the Fourier transform of the Gaussian-smeared
    Coulomb kernel ``erf(r / (sqrt(2) sigma)) / r``. Times the measure (1/A^3) it gives a kernel
    in 1/A. ``k_sq`` must be positive."""
    return 4.0 * jnp.pi * jnp.exp(-0.5 * sigma**2 * k_sq) / k_sq


def kweights(
    kset: KSet,
    kvectors: jnp.ndarray,
    measure: jnp.ndarray | None,
    *,
    radial: Callable[[jnp.ndarray], jnp.ndarray] | None = None,
    sigma: float | None = None,
) -> jnp.ndarray:
    """``f(|k|) x ewald(|k|^2) x envelope(|k|) x measure`` on the real slots, 0 on masked slots.

    Args:
        kset: the (possibly half or grid) k-set; its ``smooth`` False (seed) drops the envelope.
        kvectors: (G, M, 3) and measure: (G, M), from :func:`~rsajax.nn.rsa.kset.kspace_geometry`;
            ``measure`` None counts lattice vectors with weight 1 (the reference's ``ones``).
        radial: None (``f = 1``), or ``|k|`` (G, M) -> (G, M, H), a per-head radial function.
        sigma: None (no Ewald factor), or the width (A) of :func:`ewald_kernel`.
    Returns:
        (G, M), or (G, M, H) with ``radial``.
    """
    k_sq = k_squared(kset, kvectors)
    k_norm = jnp.sqrt(k_sq)
    envelope = smooth_envelope(k_norm, kset.k_cut, kset.envelope_width)
    scale = envelope if kset.smooth else jnp.ones_like(envelope)
    if measure is not None:
        scale = scale * measure
    if sigma is not None:
        scale = scale * ewald_kernel(k_sq, sigma)
    if radial is None:
        return jnp.where(kset.mask, scale, 0.0)
    return jnp.where(kset.mask[..., None], radial(k_norm) * scale[..., None], 0.0)


def fixed_kweights(
    kset: KSet, kvectors: jnp.ndarray, measure: jnp.ndarray, weighting: str, sigma: float = 5.0
) -> jnp.ndarray:
    """Per-k weights of the fixed weightings, (G, M), 0 on masked slots.

    - ``ones``: 1 per lattice vector (the reference; no ``1/V``), times the envelope. Lattice-only.
    - ``ewald``: ``4 pi exp(-k^2 sigma^2 / 2) / k^2`` times the measure (``1/V`` on a lattice, the
      quadrature weight for open boundaries) times the envelope.

    The seed k-set (``kset.smooth`` False) carries no envelope.
    """
    if weighting not in ("ones", "ewald"):
        raise ValueError(f"fixed weighting must be 'ones' or 'ewald', got {weighting!r}")
    if weighting == "ones" and kset.has_open:
        raise ValueError(
            "weighting 'ones' is lattice-only but the k-set holds open-boundary graphs (a "
            "quadrature needs its measure); use 'ewald' or 'learned'"
        )
    if weighting == "ones":
        return kweights(kset, kvectors, None)
    return kweights(kset, kvectors, measure, sigma=sigma)


class LearnedKWeights(nn.Module):
    """Per-head positive radial function of |k|, times the envelope and the measure: (G, M, H).

    ``f_h(x) = softplus(sum_b c_hb exp(-((x - mu_b) / s)^2) + b_h)`` with ``x = |k| / k_cut``,
    initialised to ``f = 1``; Gaussians centred on ``[0, 1]``. With ``ewald_sigma`` set
    (weighting ``ewald_learned``) ``f_h`` multiplies the Ewald kernel of that width, so every head
    starts as a Gaussian-smeared ``1/r`` and learns a correction to its shape; without it
    (``learned``) the weights are ``f_h`` alone.
    """

    num_heads: int
    num_basis: int = 8
    ewald_sigma: float | None = None

    @nn.compact
    def __call__(self, kset: KSet, kvectors: jnp.ndarray, measure: jnp.ndarray) -> jnp.ndarray:
        def radial(k_norm):
            x = k_norm / kset.k_cut
            centres = jnp.linspace(0.0, 1.0, self.num_basis, dtype=x.dtype)
            basis = jnp.exp(-(((x[..., None] - centres) * (self.num_basis - 1)) ** 2))
            # parameters in the model's dtype; softplus(bias) = 1 at init (a Python float)
            coeffs = self.param(
                "coeffs", nn.initializers.zeros, (self.num_basis, self.num_heads), x.dtype
            )
            bias = self.param(
                "bias",
                nn.initializers.constant(math.log(math.expm1(1.0))),
                (self.num_heads,),
                x.dtype,
            )
            return jax.nn.softplus(basis @ coeffs.astype(x.dtype) + bias.astype(x.dtype))

        return kweights(kset, kvectors, measure, radial=radial, sigma=self.ewald_sigma)


def mesh_kweights(
    mesh: MeshSpec,
    cell: jnp.ndarray,
    periodic: jnp.ndarray | np.ndarray,
    weighting: str | Callable[[jnp.ndarray], jnp.ndarray] = "ewald",
    sigma: float = 5.0,
) -> jnp.ndarray:
    """Weights ``w(n)`` on the grid frequencies, (G, K1 K2 K3, H), from the (strained) cell.

    Args:
        weighting: ``"ones"`` or ``"ewald"`` (exactly :func:`fixed_kweights`), or a callable
            ``radial(|k|) -> (..., H)``, e.g. a learned positive function of |k|; it is
            multiplied by the envelope and ``1/V`` as in the direct kernel.
        periodic: (G,) bool (may be traced); False graphs (padding, open) get zero weights.
    """
    kset = mesh_kset(mesh, periodic, cell.dtype)
    kvectors, measure = kspace_geometry(kset, cell)
    if isinstance(weighting, str):
        return fixed_kweights(kset, kvectors, measure, weighting, sigma)[..., None]
    return kweights(kset, kvectors, measure, radial=weighting)


def real_space_kernel(
    config: RSAConfig,
    r: np.ndarray,
    block_params: dict | None = None,
    num_radial: int | None = None,
) -> jnp.ndarray:
    """The radial pair kernel of one RSA layer with open boundaries, ``phi_h(r)``, (R, H).

    ``phi_h(r) = sum_m w_mh sinc(|k_m| r)``: what the layer weights a pair at distance ``r`` by in
    :func:`rsajax.nn.rsa.kernel.open_boundary_attention` (``u_ih = sum_j phi_h(r_ij) (q_ih . k_jh)
    v_jh``), so a model's learned k-weights can be read as a function of distance and set beside
    ``1/r``. For ``ewald`` weights it is ``erf(r / (sqrt 2 sigma)) / r`` up to the envelope's cut;
    ``ewald_learned`` multiplies that kernel's Fourier weights by the learned ``f_h(|k|)``.

    Args:
        config: the layer's resolved :class:`~rsajax.nn.rsa.config.RSAConfig`
            (``model.config.long_range``); ``ones`` weights are lattice-only and raise.
        r: (R,) distances, A.
        block_params: the :class:`~rsajax.nn.rsa.layer.RSABlock`'s parameters, e.g.
            ``variables["params"]["long_range_0"]["rsa"]``; needed for learned weightings (their
            ``k_weights``), unused otherwise.
        num_radial: radial quadrature nodes (default: enough for ``max(r)``,
            :func:`rsajax.nn.rsa.kset.radial_nodes_for`).
    Returns:
        (R, H) kernel in 1/A; ``H`` = ``config.num_heads`` (a fixed weighting repeats one head).
    """
    if not config.is_resolved:
        raise ValueError("real_space_kernel needs a resolved RSAConfig (model.config.long_range)")
    if config.weighting == "ones":
        raise ValueError("weighting 'ones' is lattice-only: it has no open-boundary kernel")
    r = np.asarray(r, np.float64)
    if num_radial is None:
        num_radial = radial_nodes_for(config.k_cut, float(np.max(r, initial=0.0)))
    nodes, node_weights = open_quadrature(config.k_cut, config.envelope_width, num_radial)
    kset = KSet(
        n=np.zeros((1, num_radial, 3), np.int32),
        nodes=nodes[None],
        node_weights=node_weights[None],
        mask=np.ones((1, num_radial), bool),
        periodic=np.zeros(1, bool),
        k_cut=float(config.k_cut),
        envelope_width=float(config.envelope_width),
        has_open=True,
    )
    kvectors, measure = jnp.asarray(nodes[None]), jnp.asarray(node_weights[None])
    if config.weighting in ("learned", "ewald_learned"):
        if block_params is None or "k_weights" not in block_params:
            raise ValueError(
                f"weighting {config.weighting!r} is learned: pass the RSA block's parameters "
                "(variables['params']['long_range_<t>']['rsa']), which hold 'k_weights'"
            )
        learned = block_params["k_weights"]
        num_basis, num_heads = np.shape(learned["coeffs"])
        sigma = config.sigma if config.weighting == "ewald_learned" else None
        module = LearnedKWeights(num_heads, num_basis, sigma)
        weights = module.apply({"params": learned}, kset, kvectors, measure)[0]  # (M, H)
    else:
        weights = fixed_kweights(kset, kvectors, measure, "ewald", config.sigma)[0][:, None]
        weights = jnp.repeat(weights, config.num_heads, axis=1)
    design = jnp.sinc(jnp.outer(jnp.asarray(r), kvectors[0, :, 0]) / jnp.pi)  # (R, M)
    return design @ weights
