"""Radial features of an edge: Bessel basis, polynomial cutoff and the radial MLP.

These follow mace-torch exactly (``BesselBasis``, ``PolynomialCutoff`` and e3nn's
``FullyConnectedNet``), so that weights copied from a torch checkpoint give identical numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

#: e3nn (torch) ``normalize2mom(silu)`` constant: E[silu(x)^2] = 1 for x ~ N(0, 1) by quadrature.
SILU_NORM_TORCH = 1.6791767923989418
#: e3nn-jax ``normalize_function(silu)`` constant (Monte-Carlo estimate, 0.16% smaller).
SILU_NORM_E3NN_JAX = 1.6765620560798837


def silu_constant(normalization: str) -> float:
    """The factor multiplying SiLU in normalised MLPs: "torch" or "e3nn-jax"."""
    constants = {"torch": SILU_NORM_TORCH, "e3nn-jax": SILU_NORM_E3NN_JAX}
    if normalization not in constants:
        raise ValueError(
            f"silu_normalization must be one of {sorted(constants)}, got {normalization!r}"
        )
    return constants[normalization]


def bessel_basis(lengths: jax.Array, r_max: float, num_basis: int) -> jax.Array:
    """``sqrt(2/r_max) sin(n pi r / r_max) / r`` for n = 1..num_basis.

    Args:
        lengths: (E,) edge lengths, strictly positive (padded edges must not be zero).
    Returns:
        (E, num_basis).
    """
    n = jnp.arange(1, num_basis + 1, dtype=lengths.dtype)
    weights = jnp.pi / r_max * n
    prefactor = jnp.sqrt(2.0 / r_max)
    r = lengths[:, None]
    return prefactor * jnp.sin(weights * r) / r


def polynomial_cutoff(lengths: jax.Array, r_max: float, p: int) -> jax.Array:
    """Smooth cutoff ``1 - (p+1)(p+2)/2 u^p + p(p+2) u^(p+1) - p(p+1)/2 u^(p+2)``, zero for u >= 1.

    Args:
        lengths: (E,) edge lengths.
    Returns:
        (E,) envelope values in [0, 1].
    """
    u = lengths / r_max
    envelope = (
        1.0
        - (p + 1.0) * (p + 2.0) / 2.0 * u**p
        + p * (p + 2.0) * u ** (p + 1)
        - p * (p + 1.0) / 2.0 * u ** (p + 2)
    )
    return jnp.where(u < 1.0, envelope, 0.0)


def normalized_silu(x: jax.Array, constant: float) -> jax.Array:
    """SiLU rescaled to unit second moment under a standard normal input."""
    return jax.nn.silu(x) * constant


class RadialMLP(nn.Module):
    """e3nn ``FullyConnectedNet``: bias-free layers ``x @ W / sqrt(fan_in)``, normalised SiLU
    between them, none after the last.

    Attributes:
        features: output width of every layer, the last one included.
        silu_norm: the SiLU normalisation constant (see :func:`silu_constant`).
    """

    features: Sequence[int]
    silu_norm: float
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(E, F_in) -> (E, features[-1])."""
        for i, width in enumerate(self.features):
            w = self.param(
                f"layer{i}", nn.initializers.normal(1.0), (x.shape[-1], width), self.param_dtype
            )
            x = x @ (w.astype(x.dtype) / jnp.sqrt(x.shape[-1]).astype(x.dtype))
            if i < len(self.features) - 1:
                x = normalized_silu(x, self.silu_norm)
        return x
