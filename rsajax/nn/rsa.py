"""Reciprocal-space attention (RSA): a pure, batched kernel and a thin Flax block.

The kernel implements steps 3-5 of ``shared/RSA.md``; :class:`RSABlock` adds steps 1-2
(``W_lin``, ``W_qkv``, SiLU, ``1/sqrt(C)``) and the per-k weights. For head ``h`` (channels
``[h D, (h+1) D)``, ``D = C / H``, complex pairs ``(2p, 2p+1)``)::

    u_i = sum_m w_mh Re[ q~_im^T S_m ],   S_m = sum_{j in graph(i)} conj(k~_jm) (x) v_j,
    q~_im = q_i exp(i k_m . r_i)

The contraction is ordered so that no (atoms x k x C x C) array ever exists: the structure factor
``S`` is one matmul over atoms of the phase matrix with ``conj(k_j) (x) v_j``, and the read-out is
one matmul over k followed by a per-atom contraction over ``p``. Memory: ``O(G M C^2 / H)`` for
``S``, ``O(N G M)`` phases, ``O(N C^2 / H)`` per-atom pairs. Batches of several graphs pay a factor
``G`` in the phase matmuls (the phase matrix is block-diagonal in graphs); for many small systems,
``jax.vmap`` over a leading axis of independent systems (one graph each) avoids it.
"""

from __future__ import annotations

import math
from typing import Literal

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from rsajax.nn.kspace import KSet, half_kset, kspace_geometry, smooth_envelope

Weighting = Literal["ones", "ewald", "learned", "ewald_learned"]
WEIGHTINGS = ("ones", "ewald", "learned", "ewald_learned")
EVALUATIONS = ("direct", "mesh")


def reciprocal_space_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    positions: jnp.ndarray,
    kvectors: jnp.ndarray,
    kweights: jnp.ndarray,
    kmask: jnp.ndarray,
    node_graph: jnp.ndarray,
    num_graphs: int,
    node_mask: jnp.ndarray | None = None,
    num_heads: int = 1,
    paired: bool = False,
) -> jnp.ndarray:
    """RSA steps 3-5 on already activated queries and keys.

    Args:
        q: (N, C) queries, after ``phi`` and ``1/sqrt(C)``; channels ``0::2`` are real parts,
            ``1::2`` imaginary parts.
        k: (N, C) keys, after ``phi``.
        v: (N, C) values.
        positions: (N, 3) Cartesian positions (not wrapped; phases are periodic anyway).
        kvectors: (G, M, 3) Cartesian k-vectors per graph.
        kweights: (G, M) or (G, M, H) weights (measure, envelope, weighting all included).
        kmask: (G, M) bool; masked slots contribute nothing.
        node_graph: (N,) int graph of each node.
        num_graphs: G (static).
        node_mask: (N,) bool; padded nodes neither contribute nor receive (default: all real).
        num_heads: H; ``C / H`` must be even.
        paired: each slot stands for ``k`` and ``-k`` with the same weight (a half set from
            :attr:`KSet.pair_index`); the result equals the full set's, at half the cost.
    Returns:
        u: (N, C), zero on padded nodes.
    """
    num_nodes, channels = q.shape
    if channels % (2 * num_heads):
        raise ValueError(f"channels={channels} must be a multiple of 2 * num_heads={num_heads}")
    width = channels // num_heads
    if node_mask is None:
        node_mask = jnp.ones(num_nodes, dtype=bool)
    weights = kweights if kweights.ndim == 3 else kweights[..., None]
    weights = jnp.where(kmask[..., None], weights, 0.0)
    weights = jnp.broadcast_to(weights, kmask.shape + (num_heads,))

    theta = jnp.einsum("nmi,ni->nm", kvectors[node_graph], positions)  # (N, M)
    in_graph = (node_graph[:, None] == jnp.arange(num_graphs)[None, :]) & node_mask[:, None]

    def heads(x):  # (N, C) -> (N, H, D)
        return x.reshape(num_nodes, num_heads, width)

    def complex_pairs(x):  # (N, H, D) -> (N, H, D/2)
        return x[..., 0::2] + 1j * x[..., 1::2]

    qc, kc = complex_pairs(heads(q)), complex_pairs(heads(k))
    values = heads(jnp.where(node_mask[:, None], v, 0.0))
    pairs = jnp.conj(kc)[..., :, None] * values[..., None, :]  # (N, H, D/2, D)
    if paired:
        # Each slot stands for k and -k: the sine parts cancel and the pair sums to
        # 2 Re[q_i^T (cos_i C + sin_i S)], C/S = sum_j pairs_j cos/sin(k . r_j); real matmuls
        # over half the vectors do the work of complex ones over all of them. cos and sin sit
        # side by side on the k axis, so that sum is one contraction over (cos, sin).
        trig = jnp.concatenate([jnp.cos(theta), jnp.sin(theta)], axis=-1)  # (N, 2M)
        trig = jnp.where(in_graph[:, :, None], trig[:, None, :], 0.0)  # (N, G, 2M)
        a = jnp.stack([jnp.real(pairs), jnp.imag(pairs)], axis=-1)  # (N, H, D/2, D, 2)
        w = 2.0 * jnp.concatenate([weights, weights], axis=1)  # (G, 2M, H)
        structure = jnp.einsum("ngm,nhpdr->gmhpdr", trig, a) * w[..., None, None, None]
        read = jnp.einsum("ngm,gmhpdr->nhpdr", trig, structure)
        readout = read[..., 0] + 1j * read[..., 1]
    else:
        phases = jnp.where(in_graph[:, :, None], jnp.exp(1j * theta)[:, None, :], 0.0)
        structure = jnp.einsum("ngm,nhpd->gmhpd", jnp.conj(phases), pairs)  # (G, M, H, D/2, D)
        structure = structure * weights[..., None, None]
        readout = jnp.einsum("ngm,gmhpd->nhpd", phases, structure)  # (N, H, D/2, D)
    u = jnp.real(jnp.einsum("nhp,nhpd->nhd", qc, readout)).reshape(num_nodes, channels)
    return jnp.where(node_mask[:, None], u, 0.0)


def open_boundary_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    positions: jnp.ndarray,
    knorm: jnp.ndarray,
    kweights: jnp.ndarray,
    node_graph: jnp.ndarray,
    open_graph: jnp.ndarray,
    node_mask: jnp.ndarray | None = None,
    num_heads: int = 1,
) -> jnp.ndarray:
    """RSA steps 3-5 for open-boundary graphs, with the angular integral done exactly.

    For a k-set that is a continuous, isotropic integral the phase sum becomes a radial kernel,
    ``sum_m w_m e^{i k_m . r} -> phi(r) = sum_m w_m sinc(|k_m| r)``, and the sine (``omega``)
    part of the closed form in RSA.md vanishes, so for head ``h``::

        u_ih = sum_{j in graph(i)} phi_h(|r_i - r_j|) (q_ih . k_jh) v_jh     (self term included)

    where ``q . k`` is the real dot product of the head's ``D`` channels (``Re sum_p q_p
    conj(k_p)``). Cost ``O(N^2 M)`` over the batch's nodes: meant for molecules and clusters.

    Args:
        q, k, v: (N, C) activated queries, keys, values (as for
            :func:`reciprocal_space_attention`).
        positions: (N, 3) Cartesian positions.
        knorm: (G, M) radial nodes ``|k_m|`` of each graph, 1/A.
        kweights: (G, M) or (G, M, H) weights (radial measure, envelope, weighting included),
            0 on masked slots.
        node_graph: (N,) graph of each node.
        open_graph: (G,) bool, the graphs this kernel serves (others get u = 0).
        node_mask: (N,) bool, real nodes.
        num_heads: H.
    Returns:
        u: (N, C), zero on padded nodes and on nodes of other graphs.
    """
    num_nodes, channels = q.shape
    width = channels // num_heads
    if node_mask is None:
        node_mask = jnp.ones(num_nodes, dtype=bool)
    weights = kweights if kweights.ndim == 3 else kweights[..., None]
    weights = jnp.broadcast_to(weights, knorm.shape + (num_heads,))
    active = node_mask & open_graph[node_graph]
    pair = (node_graph[:, None] == node_graph[None, :]) & active[:, None] & active[None, :]
    diff = positions[:, None, :] - positions[None, :, :]
    r_sq = jnp.sum(diff * diff, axis=-1)
    positive = r_sq > 0
    r = jnp.sqrt(jnp.where(positive, r_sq, 1.0))  # double where: no NaN gradient at r = 0
    r = jnp.where(positive, r, 0.0)
    kr = knorm[node_graph][:, None, :] * r[:, :, None]  # (N, N, M), i's graph
    phi = jnp.einsum("ijm,imh->ijh", jnp.sinc(kr / jnp.pi), weights[node_graph])
    phi = jnp.where(pair[..., None], phi, 0.0)
    qh, kh = q.reshape(num_nodes, num_heads, width), k.reshape(num_nodes, num_heads, width)
    vh = jnp.where(active[:, None], v, 0.0).reshape(num_nodes, num_heads, width)
    attention = jnp.einsum("ihd,jhd->ijh", qh, kh) * phi
    u = jnp.einsum("ijh,jhd->ihd", attention, vh).reshape(num_nodes, channels)
    return jnp.where(active[:, None], u, 0.0)


def ewald_kernel(k_sq: jnp.ndarray, sigma: float) -> jnp.ndarray:
    """``4 pi exp(-k^2 sigma^2 / 2) / k^2`` (A^2): the Fourier transform of the Gaussian-smeared
    Coulomb kernel ``erf(r / (sqrt(2) sigma)) / r``. Times the measure (1/A^3) it gives a kernel
    in 1/A. ``k_sq`` must be positive."""
    return 4.0 * jnp.pi * jnp.exp(-0.5 * sigma**2 * k_sq) / k_sq


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
    k_sq = jnp.sum(kvectors * kvectors, axis=-1)
    k_sq = jnp.where(kset.mask, k_sq, 1.0)  # masked slots sit at k = 0: keep 1/k^2 finite
    envelope = smooth_envelope(jnp.sqrt(k_sq), kset.k_cut, kset.envelope_width)
    envelope = envelope if kset.smooth else jnp.ones_like(envelope)
    if weighting == "ones":
        weights = envelope
    else:
        weights = ewald_kernel(k_sq, sigma) * measure * envelope
    return jnp.where(kset.mask, weights, 0.0)


def check_evaluation(evaluation: str, kset: KSet):
    """The mesh of ``kset`` (None for the direct kernel); raise if it does not match
    ``evaluation`` (a k-set built for the other kernel)."""
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    if evaluation == "mesh" and kset.mesh is None:
        raise ValueError(
            "evaluation 'mesh' needs a k-set that carries a MeshSpec (kset.mesh), got a direct "
            "k-set; build it with make_kset_fn for a config with evaluation='mesh'"
        )
    if evaluation == "direct" and kset.mesh is not None:
        raise ValueError(
            "evaluation 'direct' got a mesh k-set (kset.mesh is set); build it with make_kset_fn "
            "for a config with evaluation='direct'"
        )
    if kset.mesh is not None and kset.has_open:
        raise ValueError("the mesh evaluation is lattice-only; open-boundary graphs need 'direct'")
    return kset.mesh


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
        k_sq = jnp.where(kset.mask, jnp.sum(kvectors**2, axis=-1), 1.0)
        k_norm = jnp.sqrt(k_sq)
        x = k_norm / kset.k_cut
        centres = jnp.linspace(0.0, 1.0, self.num_basis, dtype=x.dtype)
        basis = jnp.exp(-(((x[..., None] - centres) * (self.num_basis - 1)) ** 2))
        # parameters in the model's dtype; softplus(bias) = 1 at init (a Python float constant)
        coeffs = self.param(
            "coeffs", nn.initializers.zeros, (self.num_basis, self.num_heads), x.dtype
        )
        bias = self.param(
            "bias", nn.initializers.constant(math.log(math.expm1(1.0))), (self.num_heads,), x.dtype
        )
        radial = jax.nn.softplus(basis @ coeffs.astype(x.dtype) + bias.astype(x.dtype))
        envelope = smooth_envelope(k_norm, kset.k_cut, kset.envelope_width)
        envelope = envelope if kset.smooth else jnp.ones_like(envelope)
        scale = envelope * measure
        if self.ewald_sigma is not None:
            scale = scale * ewald_kernel(k_sq, self.ewald_sigma)
        weights = radial * scale[..., None]
        return jnp.where(kset.mask[..., None], weights, 0.0)


class RSABlock(nn.Module):
    """RSA of one interaction layer: input scalars (N, C_in) -> u (N, C) (RSA.md steps 1-5).

    ``s = W_lin x`` (e3nn Linear to ``C x 0e``), ``q, k, v = split(W_qkv s)`` (no bias),
    ``q <- SiLU(q) / sqrt(C)``, ``k <- SiLU(k)``, then steps 3-5 with the chosen per-k weights by
    one of two kernels with the same parameters and the same result (to the mesh accuracy):

    - ``evaluation="direct"``: :func:`reciprocal_space_attention`, the lattice sum over the
      k-set's vectors (or the open-boundary quadrature); ``O(N M)``, ``M ~ V`` at fixed ``k_cut``.
    - ``evaluation="mesh"``: :func:`rsajax.nn.rsa_mesh.mesh_attention`, smooth-PME on the grid
      ``kset.mesh`` (fully periodic cells only); ``O(N)`` up to the FFT's log.

    ``cell`` must be the cell the caller strains with the positions.
    """

    channels: int
    num_heads: int = 1
    weighting: Weighting = "ewald"
    sigma: float = 5.0  # A, Gaussian width of the 'ewald' weighting
    num_basis: int = 8  # radial basis of the 'learned' weighting
    evaluation: Literal["direct", "mesh"] = "direct"

    @nn.compact
    def __call__(
        self,
        scalars: e3nn.IrrepsArray | jnp.ndarray,
        positions: jnp.ndarray,
        cell: jnp.ndarray,
        kset: KSet,
        node_graph: jnp.ndarray,
        node_mask: jnp.ndarray,
    ) -> jnp.ndarray:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if not isinstance(scalars, e3nn.IrrepsArray):
            scalars = e3nn.IrrepsArray(f"{scalars.shape[-1]}x0e", scalars)
        s = e3nn.flax.Linear(f"{self.channels}x0e", name="W_lin")(scalars.filter(keep="0e")).array
        qkv = nn.Dense(3 * self.channels, use_bias=False, name="W_qkv", param_dtype=s.dtype)(s)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        q = jax.nn.silu(q) / self.channels**0.5  # a Python float keeps float32 in float32
        k = jax.nn.silu(k)
        mesh = check_evaluation(self.evaluation, kset)
        if mesh is not None:
            # rsa_mesh imports this module (fixed_kweights), hence the local import.
            from rsajax.nn.rsa_mesh import mesh_kset

            kset = mesh_kset(mesh, kset.periodic, cell.dtype)  # the grid's frequencies
        paired = mesh is None and kset.pair_index is not None
        if paired:
            kset = half_kset(kset)
        kvectors, measure = kspace_geometry(kset, cell)
        if self.weighting in ("learned", "ewald_learned"):
            sigma = self.sigma if self.weighting == "ewald_learned" else None
            weights = LearnedKWeights(self.num_heads, self.num_basis, sigma, name="k_weights")(
                kset, kvectors, measure
            )
        else:
            weights = fixed_kweights(kset, kvectors, measure, self.weighting, self.sigma)
        if mesh is not None:
            from rsajax.nn.rsa_mesh import mesh_attention

            return mesh_attention(
                q, k, v, positions, cell, weights, node_graph, cell.shape[0], mesh,
                node_mask=node_mask, num_heads=self.num_heads,
            )  # fmt: skip
        if not kset.has_open:
            return reciprocal_space_attention(
                q, k, v, positions, kvectors, weights, kset.mask, node_graph, cell.shape[0],
                node_mask=node_mask, num_heads=self.num_heads, paired=paired,
            )  # fmt: skip
        # Open graphs: exact angular integral, a pair sum (open_boundary_attention); periodic
        # graphs of the same batch: the lattice sum, with the open graphs' slots masked out.
        periodic = jnp.asarray(kset.periodic)
        weights = weights if weights.ndim == 3 else weights[..., None]
        lattice_mask = kset.mask & periodic[:, None]
        u = reciprocal_space_attention(
            q, k, v, positions, kvectors, jnp.where(periodic[:, None, None], weights, 0.0),
            lattice_mask, node_graph, cell.shape[0], node_mask=node_mask,
            num_heads=self.num_heads,
        )  # fmt: skip
        k_sq = jnp.sum(kvectors * kvectors, axis=-1)
        knorm = jnp.where(kset.mask, jnp.sqrt(jnp.where(kset.mask, k_sq, 1.0)), 0.0)
        return u + open_boundary_attention(
            q, k, v, positions, knorm, jnp.where(periodic[:, None, None], 0.0, weights),
            node_graph, ~periodic, node_mask=node_mask, num_heads=self.num_heads,
        )  # fmt: skip
