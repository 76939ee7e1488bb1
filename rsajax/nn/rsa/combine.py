"""How the RSA output ``u`` (N, C scalars) enters the MACE node features ``h_sr`` of a layer.

Three combinations (RSA.md, "Combination with MACE"; their names are
:data:`rsajax.nn.rsa.config.FEATURE_COMBINATIONS`):

- :class:`TensorProductCombine` (``tp``, the reference): ``FullyConnectedTensorProduct(h_sr, u)``
  back to ``h_sr``'s irreps. It replaces ``h_sr``: ``u = 0`` zeroes the layer.
- :class:`GateCombine` (``gate``): ``g h_sr + (1 - g) Linear(u)`` on the scalar channels,
  ``g = sigmoid(alpha)`` learned; non-scalar channels pass unchanged.
- :class:`ResidualCombine` (``residual``): ``h_sr + Linear(u)`` on the scalar channels.

All map (``h_sr``: IrrepsArray (N, irreps), ``u``: (N, C)) to an IrrepsArray with ``h_sr``'s
irreps, and are equivariant because ``u`` is invariant.
"""

from __future__ import annotations

import math

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rsajax.nn.rsa.config import FEATURE_COMBINATIONS


def _as_scalars(u: jnp.ndarray | e3nn.IrrepsArray) -> e3nn.IrrepsArray:
    if isinstance(u, e3nn.IrrepsArray):
        return u
    return e3nn.IrrepsArray(f"{u.shape[-1]}x0e", u)


def _scalar_indices(irreps: e3nn.Irreps) -> np.ndarray:
    """Indices of the 0e components along the last axis of an IrrepsArray (static)."""
    flags = []
    for mul, ir in irreps:
        flags += [ir == e3nn.Irrep("0e")] * (mul * ir.dim)
    indices = np.flatnonzero(flags)
    if indices.size == 0:
        raise ValueError(f"h_sr has no scalar (0e) channels to combine u with: {irreps}")
    return indices


def _lift(u, irreps: e3nn.Irreps) -> tuple[np.ndarray, jnp.ndarray]:
    """Linear(u) onto h_sr's scalar channels: (indices, (N, num_scalars))."""
    indices = _scalar_indices(irreps)
    lifted = e3nn.flax.Linear(f"{indices.size}x0e", name="linear")(_as_scalars(u))
    return indices, lifted.array


class TensorProductCombine(nn.Module):
    """``FullyConnectedTensorProduct(h_sr, u)`` with ``u`` scalar: O(N C^3), no (N, C^2, dim).

    Because ``u`` holds only ``0e``, each output irrep ``ir`` is fed by the input chunks of the
    same ``ir``: ``out_w = sum_{a,b} W_abw x_a u_b / sqrt(fan_in)``, ``fan_in = sum mul_a * C``,
    weights ~ N(0, 1) (e3nn's "element" path normalisation, component irrep normalisation).
    """

    irreps_out: str | e3nn.Irreps | None = None  # default: h_sr's irreps

    @nn.compact
    def __call__(self, h_sr: e3nn.IrrepsArray, u) -> e3nn.IrrepsArray:
        u = _as_scalars(u).array
        irreps_out = e3nn.Irreps(self.irreps_out if self.irreps_out is not None else h_sr.irreps)
        chunks = []
        for index, (mul_out, ir_out) in enumerate(irreps_out):
            sources = [
                (i, mul, chunk)
                for i, ((mul, ir), chunk) in enumerate(zip(h_sr.irreps, h_sr.chunks, strict=True))
                if ir == ir_out and chunk is not None
            ]
            fan_in = sum(mul for _, mul, _ in sources) * u.shape[-1]
            out = jnp.zeros(u.shape[:-1] + (mul_out, ir_out.dim), u.dtype)
            for i, mul, chunk in sources:
                weight = self.param(
                    f"w_{i}_{index}", nn.initializers.normal(1.0), (mul, u.shape[-1], mul_out)
                ).astype(u.dtype)
                mixed = jnp.einsum("nb,abw->naw", u, weight)  # (N, mul_in, mul_out)
                out = out + jnp.einsum("nam,naw->nwm", chunk, mixed) / math.sqrt(fan_in)
            chunks.append(out)
        return e3nn.from_chunks(irreps_out, chunks, u.shape[:-1], u.dtype)


class GateCombine(nn.Module):
    """``g h_sr + (1 - g) Linear(u)`` on the 0e channels, ``g = sigmoid(alpha)``; others as is."""

    alpha_init: float = 0.0

    @nn.compact
    def __call__(self, h_sr: e3nn.IrrepsArray, u) -> e3nn.IrrepsArray:
        indices, lifted = _lift(u, h_sr.irreps)
        alpha = self.param("alpha", nn.initializers.constant(self.alpha_init), ())
        g = jax.nn.sigmoid(alpha).astype(h_sr.dtype)
        mixed = g * h_sr.array[..., indices] + (1.0 - g) * lifted
        return e3nn.IrrepsArray(h_sr.irreps, jnp.asarray(h_sr.array).at[..., indices].set(mixed))


class ResidualCombine(nn.Module):
    """``h_sr + Linear(u)`` on the 0e channels."""

    @nn.compact
    def __call__(self, h_sr: e3nn.IrrepsArray, u) -> e3nn.IrrepsArray:
        indices, lifted = _lift(u, h_sr.irreps)
        return e3nn.IrrepsArray(h_sr.irreps, jnp.asarray(h_sr.array).at[..., indices].add(lifted))


COMBINATIONS = {"tp": TensorProductCombine, "gate": GateCombine, "residual": ResidualCombine}
assert tuple(sorted(COMBINATIONS)) == FEATURE_COMBINATIONS, "config names every combination"


def make_combination(kind: str, **kwargs) -> nn.Module:
    """The combination module called ``kind`` (``tp``, ``gate`` or ``residual``)."""
    if kind not in COMBINATIONS:
        raise ValueError(f"combination must be one of {sorted(COMBINATIONS)}, got {kind!r}")
    return COMBINATIONS[kind](**kwargs)
