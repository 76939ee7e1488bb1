"""Per-k weights of reciprocal-space attention: envelope, Ewald kernel, fixed and learned.

Every weighting has one form (:func:`kweights`), on the k-set's real slots and 0 on masked ones::

    w(k) = f(|k|) x ewald(|k|^2) x envelope(|k|) x measure

- ``ones`` (the reference): ``f = 1``, no Ewald factor, no measure (1 per lattice vector, no
  ``1/V``); lattice-only.
- ``ewald``: ``f = 1`` and the Ewald factor :func:`ewald_kernel` of width ``sigma``.
- ``learned``: ``f`` a positive radial function per head (:class:`LearnedKWeights`).
- ``ewald_learned``: both: the learned ``f`` corrects the Ewald kernel, starting at 1.

With ``dispersion_heads`` = ``H_d`` > 0 (``ewald`` and ``ewald_learned`` only) the last ``H_d``
heads carry the dispersion kernel :func:`dispersion_kernel` (the smooth long-range part of
``1/r^6``, finite at ``k = 0``) instead of the Coulomb kernel :func:`ewald_kernel`; their
``k = 0`` weight (:func:`zero_frequency_weights`) is not zero, and the layer adds that term.

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


def dispersion_kernel(k_sq: jnp.ndarray, sigma: float, length: float) -> jnp.ndarray:
    """``length^5`` times the Fourier transform of the smooth long-range part of ``1/r^6``,
    ``[1 - exp(-x) (1 + x + x^2 / 2)] / r^6`` with ``x = r^2 / (2 sigma^2)`` (A^2).

    The Gaussian damping is that of the Coulomb split, ``beta = 1 / (sqrt 2 sigma)``, so both
    kernels fall as ``exp(-k^2 sigma^2 / 2) / k^2`` at large ``k`` and the k-set converged for one
    is converged for the other. With ``b = k / (2 beta)`` the transform is
    ``pi^{3/2} beta^3 / 3 [(1 - 2 b^2) exp(-b^2) + 2 sqrt(pi) b^3 erfc(b)]``, finite at
    ``k = 0`` (``pi^{3/2} beta^3 / 3``, the integral of the kernel over space): a lattice sum
    must keep that term. ``length^5`` (the local cutoff) makes the real-space kernel
    ``length^5 / r^6`` beyond the cutoff, ``~1 / r`` there like the Coulomb heads, so both kinds
    of head start at the same scale. ``k_sq`` may be 0.
    """
    beta = 1.0 / (math.sqrt(2.0) * sigma)
    b_sq = k_sq / (4.0 * beta * beta)
    b = jnp.sqrt(b_sq)
    shape = (1.0 - 2.0 * b_sq) * jnp.exp(-b_sq) + 2.0 * math.sqrt(math.pi) * b * b_sq * (
        jax.scipy.special.erfc(b)
    )
    return (length**5 * math.pi**1.5 * beta**3 / 3.0) * shape


def head_kernels(
    k_sq: jnp.ndarray, sigma: float, num_heads: int, dispersion_heads: int, length: float
) -> jnp.ndarray:
    """(..., H) per-head base kernels: :func:`ewald_kernel` on the first ``H - H_d`` heads,
    :func:`dispersion_kernel` on the last ``H_d``. ``k_sq`` must be positive."""
    coulomb = ewald_kernel(k_sq, sigma)[..., None]
    parts = [jnp.repeat(coulomb, num_heads - dispersion_heads, axis=-1)]
    if dispersion_heads:
        dispersion = dispersion_kernel(k_sq, sigma, length)[..., None]
        parts.append(jnp.repeat(dispersion, dispersion_heads, axis=-1))
    return jnp.concatenate(parts, axis=-1)


def kweights(
    kset: KSet,
    kvectors: jnp.ndarray,
    measure: jnp.ndarray | None,
    *,
    radial: Callable[[jnp.ndarray], jnp.ndarray] | None = None,
    sigma: float | None = None,
    heads: tuple[int, int, float] | None = None,
) -> jnp.ndarray:
    """``f(|k|) x kernel(|k|^2) x envelope(|k|) x measure`` on the real slots, 0 on masked slots.

    Args:
        kset: the (possibly half or grid) k-set; its ``smooth`` False (seed) drops the envelope.
        kvectors: (G, M, 3) and measure: (G, M), from :func:`~rsajax.nn.rsa.kset.kspace_geometry`;
            ``measure`` None counts lattice vectors with weight 1 (the reference's ``ones``).
        radial: None (``f = 1``), or ``|k|`` (G, M) -> (G, M, H), a per-head radial function.
        sigma: None (no kernel factor), or the width (A) of :func:`ewald_kernel`.
        heads: with ``sigma``: ``(H, H_d, length)``, per-head kernels (:func:`head_kernels`:
            Coulomb, then ``H_d`` dispersion heads); None: the Coulomb kernel on every head.
    Returns:
        (G, M), or (G, M, H) with ``radial`` or ``heads``.
    """
    k_sq = k_squared(kset, kvectors)
    k_norm = jnp.sqrt(k_sq)
    envelope = smooth_envelope(k_norm, kset.k_cut, kset.envelope_width)
    scale = envelope if kset.smooth else jnp.ones_like(envelope)
    if measure is not None:
        scale = scale * measure
    if sigma is not None and heads is not None:
        scale = scale[..., None] * head_kernels(k_sq, sigma, *heads)
    elif sigma is not None:
        scale = scale * ewald_kernel(k_sq, sigma)
    if radial is None:
        mask = kset.mask if scale.ndim == 2 else kset.mask[..., None]
        return jnp.where(mask, scale, 0.0)
    scale = scale if scale.ndim == 3 else scale[..., None]
    return jnp.where(kset.mask[..., None], radial(k_norm) * scale, 0.0)


def zero_frequency_weights(
    cell: jnp.ndarray,
    periodic: jnp.ndarray | np.ndarray,
    sigma: float,
    heads: tuple[int, int, float],
    radial_at_zero: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """(G, H) weights of the ``k = 0`` term of each graph's lattice sum.

    The Coulomb heads leave ``k = 0`` out (its kernel diverges; the neutral cell and its
    background are the convention). A dispersion head's kernel is finite there, and its
    ``k = 0`` term ``W(0) / V |sum_j a_j|^2``, the mean-field part of the tail, is most of its
    energy: for a one-element crystal it is all of it. Open-boundary (and padding) graphs get 0:
    their radial integral runs through ``k = 0`` already.

    Args:
        cell: (G, 3, 3) lattice vectors as rows (the strained cell, for stress).
        periodic: (G,) bool.
        sigma, heads: as for :func:`kweights`.
        radial_at_zero: (H,) the learned correction ``f_h(0)`` (None: 1).
    """
    num_heads, dispersion_heads, length = heads
    periodic = jnp.asarray(periodic)
    safe_cell = jnp.where(periodic[:, None, None], cell, jnp.eye(3, dtype=cell.dtype))
    inverse_volume = jnp.where(periodic, 1.0 / jnp.abs(jnp.linalg.det(safe_cell)), 0.0)
    zero = dispersion_kernel(jnp.zeros((), cell.dtype), sigma, length)
    per_head = jnp.where(jnp.arange(num_heads) >= num_heads - dispersion_heads, zero, 0.0)
    if radial_at_zero is not None:
        per_head = per_head * radial_at_zero
    return inverse_volume[:, None] * per_head[None, :].astype(cell.dtype)


def fixed_kweights(
    kset: KSet,
    kvectors: jnp.ndarray,
    measure: jnp.ndarray,
    weighting: str,
    sigma: float = 5.0,
    heads: tuple[int, int, float] | None = None,
) -> jnp.ndarray:
    """Per-k weights of the fixed weightings, (G, M) (or (G, M, H) with ``heads``), 0 on masked
    slots.

    - ``ones``: 1 per lattice vector (the reference; no ``1/V``), times the envelope. Lattice-only.
    - ``ewald``: ``4 pi exp(-k^2 sigma^2 / 2) / k^2`` times the measure (``1/V`` on a lattice, the
      quadrature weight for open boundaries) times the envelope; with ``heads`` (``(H, H_d,
      length)``) the last ``H_d`` heads get :func:`dispersion_kernel` instead.

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
    return kweights(kset, kvectors, measure, sigma=sigma, heads=heads)


class LearnedKWeights(nn.Module):
    """Per-head positive radial function of |k|, times the envelope and the measure: (G, M, H).

    ``f_h(x) = softplus(sum_b c_hb exp(-((x - mu_b) / s)^2) + b_h)`` with ``x = |k| / k_cut``,
    initialised to ``f = 1``; Gaussians centred on ``[0, 1]``. With ``ewald_sigma`` set
    (weighting ``ewald_learned``) ``f_h`` multiplies the Ewald kernel of that width, so every head
    starts as a Gaussian-smeared ``1/r`` and learns a correction to its shape; without it
    (``learned``) the weights are ``f_h`` alone. With ``dispersion_heads`` the last heads start as
    the smooth ``length^5 / r^6`` of :func:`dispersion_kernel` instead, their ``f_h`` a function
    of ``|k|^2`` (the basis mirrored about 0) so that the kernel keeps its ``r^-6`` tail, and a
    ``cell`` asks for their ``k = 0`` weights too.
    """

    num_heads: int
    num_basis: int = 8
    ewald_sigma: float | None = None
    dispersion_heads: int = 0
    dispersion_length: float = 1.0
    #: Mirror the basis about ``k = 0`` on the Coulomb heads too (RSAConfig.mirrored_correction).
    mirrored: bool = False

    @nn.compact
    def __call__(
        self,
        kset: KSet,
        kvectors: jnp.ndarray,
        measure: jnp.ndarray,
        cell: jnp.ndarray | None = None,
    ) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]:
        """(G, M, H) weights; with ``cell`` (G, 3, 3) also the (G, H) ``k = 0`` weights of
        :func:`zero_frequency_weights`."""
        dtype = kvectors.dtype
        centres = jnp.linspace(0.0, 1.0, self.num_basis, dtype=dtype)
        # parameters in the model's dtype; softplus(bias) = 1 at init (a Python float)
        coeffs = self.param(
            "coeffs", nn.initializers.zeros, (self.num_basis, self.num_heads), dtype
        ).astype(dtype)
        bias = self.param(
            "bias",
            nn.initializers.constant(math.log(math.expm1(1.0))),
            (self.num_heads,),
            dtype,
        ).astype(dtype)

        def gaussians(x):
            return jnp.exp(-(((x[..., None] - centres) * (self.num_basis - 1)) ** 2))

        def radial(k_norm):
            x = k_norm / kset.k_cut
            basis = gaussians(x)
            # The basis mirrored about k = 0 makes f a smooth function of k^2. A term odd in
            # |k| (which the plain basis has) adds a power-law tail to the real-space kernel,
            # |k| <-> r^-4 on a dispersion head (slower than the r^-6 it must keep: a trained
            # head's kernel had grown to 3-5 r^-6 at 20 A on black phosphorus) and r^-2 on a
            # Coulomb head. Dispersion heads are always mirrored; Coulomb heads with `mirrored`:
            # the first `plain` heads keep the plain basis.
            plain = 0 if self.mirrored else self.num_heads - self.dispersion_heads
            if plain == self.num_heads:
                return jax.nn.softplus(basis @ coeffs + bias)
            even = basis + gaussians(-x)
            if plain == 0:
                return jax.nn.softplus(even @ coeffs + bias)
            correction = jax.nn.softplus(basis @ coeffs[:, :plain] + bias[:plain])
            dispersion = jax.nn.softplus(even @ coeffs[:, plain:] + bias[plain:])
            return jnp.concatenate([correction, dispersion], axis=-1)

        heads = None
        if self.dispersion_heads:
            heads = (self.num_heads, self.dispersion_heads, self.dispersion_length)
        weights = kweights(
            kset, kvectors, measure, radial=radial, sigma=self.ewald_sigma, heads=heads
        )
        if cell is None:
            return weights
        if heads is None or self.ewald_sigma is None:
            return weights, jnp.zeros((cell.shape[0], self.num_heads), dtype)
        zero = zero_frequency_weights(
            cell, kset.periodic, self.ewald_sigma, heads, radial(jnp.zeros((), dtype))
        )
        return weights, zero


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
    ``1/r``. For ``ewald`` weights it is ``erf(r / (sqrt 2 sigma)) / r`` up to the envelope's cut
    (a dispersion head's: the smooth ``length^5 / r^6`` of :func:`dispersion_kernel`);
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
    heads = None
    if config.dispersion_heads:
        heads = (config.num_heads, config.dispersion_heads, config.dispersion_length)
    if config.weighting in ("learned", "ewald_learned"):
        if block_params is None or "k_weights" not in block_params:
            raise ValueError(
                f"weighting {config.weighting!r} is learned: pass the RSA block's parameters "
                "(variables['params']['long_range_<t>']['rsa']), which hold 'k_weights'"
            )
        learned = block_params["k_weights"]
        num_basis, num_heads = np.shape(learned["coeffs"])
        sigma = config.sigma if config.weighting == "ewald_learned" else None
        module = LearnedKWeights(
            num_heads, num_basis, sigma, config.dispersion_heads,
            config.dispersion_length if heads else 1.0, config.mirrored_correction,
        )  # fmt: skip
        weights = module.apply({"params": learned}, kset, kvectors, measure)[0]  # (M, H)
    else:
        weights = fixed_kweights(kset, kvectors, measure, "ewald", config.sigma, heads)[0]
        if heads is None:
            weights = jnp.repeat(weights[:, None], config.num_heads, axis=1)
    design = jnp.sinc(jnp.outer(jnp.asarray(r), kvectors[0, :, 0]) / jnp.pi)  # (R, M)
    return design @ weights
