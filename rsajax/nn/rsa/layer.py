"""The RSA layer of RSA-MACE: :class:`RSABlock` (RSA of one layer) and :class:`LongRangeLayer`
(RSA merged into a MACE layer), called by :class:`rsajax.nn.model.MACE`.

A MACE whose ``config.long_range`` is an :class:`~rsajax.nn.rsa.config.RSAConfig` runs, in every
chosen interaction layer ``t``, ``u = RSABlock(scalars(h_t))`` on the layer's *input* scalars and
merges ``u`` into the layer's output ``h_sr`` with the chosen combination (``tp``, ``gate`` or
``residual``; see :mod:`rsajax.nn.rsa.combine`) or reads it out as an additive energy
(``energy``). Everything else is the short-range MACE, line for line: the parameters of a
long-range model are those of the short-range one plus ``long_range_{t}``.

The k-vectors are chosen on the host, once per batch, by the function
:func:`rsajax.nn.rsa.kset_fn.make_kset_fn` returns; the model reads them from ``graph.kset`` and
computes the Cartesian vectors from the (strained) cell inside the differentiated function, so
forces and stress are exact.

Evaluation (``RSAConfig.evaluation``): ``direct`` sums over the lattice vectors with
``|k| <= k_cut`` (cost ``O(N M)``, and ``M ~ V`` at fixed ``k_cut``: quadratic in N at fixed
density; exact). ``mesh`` evaluates the same sums by smooth particle-mesh Ewald
(:mod:`rsajax.nn.rsa.mesh`: linear in N up to the FFT's log; relative deviation from ``direct``
~2e-5 at the default order 6 and oversampling 2, ~1e-6 at order 8). The mesh's grid is a static
:class:`~rsajax.nn.rsa.grid.MeshSpec` chosen on the host by ``make_kset_fn`` with the same
``margin`` as the k-set and carried in ``graph.kset.mesh``, so it is a compile-time constant. The
mesh is lattice-only: open-boundary and slab structures raise (use ``direct``). The parameters do
not depend on the evaluation: a model trained with one can be run with the other
(:func:`with_evaluation`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rsajax.nn.rsa.combine import make_combination
from rsajax.nn.rsa.config import EVALUATIONS, WEIGHTINGS, RSAConfig, Weighting
from rsajax.nn.rsa.grid import mesh_kset
from rsajax.nn.rsa.kernel import (
    open_boundary_attention,
    reciprocal_space_attention,
    zero_frequency_attention,
)
from rsajax.nn.rsa.kset import KSet, half_kset, k_squared, kspace_geometry
from rsajax.nn.rsa.mesh import mesh_attention
from rsajax.nn.rsa.weights import LearnedKWeights, fixed_kweights, zero_frequency_weights
from rsajax.units import COULOMB_CONSTANT

Features = dict[int, jax.Array]
KSET_HINT = "build batches with kset_fn=make_kset_fn(config.long_range, structures)"


# --------------------------------------------------------------------------- RSA of one layer


def check_evaluation(evaluation: str, kset: KSet):
    """The mesh of ``kset`` (None for the direct kernel); raise if it does not match
    ``evaluation`` (a k-set built for the other kernel). ``auto`` takes either: the k-set says
    which kernel its builder chose."""
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


class RSABlock(nn.Module):
    """RSA of one interaction layer: input scalars (N, C_in) -> u (N, C) (RSA.md steps 1-5).

    ``s = W_lin x`` (e3nn Linear to ``C x 0e``), ``q, k, v = split(W_qkv s)`` (no bias),
    ``q <- SiLU(q) / sqrt(C)``, ``k <- SiLU(k)``, then steps 3-5 with the chosen per-k weights by
    one of two kernels with the same parameters and the same result (to the mesh accuracy):

    - ``evaluation="direct"``: :func:`~rsajax.nn.rsa.kernel.reciprocal_space_attention`, the
      lattice sum over the k-set's vectors (or the open-boundary pair sum); ``O(N M)``,
      ``M ~ V`` at fixed ``k_cut``.
    - ``evaluation="mesh"``: :func:`~rsajax.nn.rsa.mesh.mesh_attention`, smooth-PME on the grid
      ``kset.mesh`` (fully periodic cells only); ``O(N)`` up to the FFT's log.
    - ``evaluation="auto"``: whichever the k-set was built for (``kset.mesh`` set or not).

    ``cell`` must be the cell the caller strains with the positions.
    """

    channels: int
    num_heads: int = 1
    weighting: Weighting = "ewald"
    sigma: float = 5.0  # A, Gaussian width of the 'ewald' weighting
    num_basis: int = 8  # radial basis of the 'learned' weighting
    evaluation: Literal["auto", "direct", "mesh"] = "direct"
    neutral: bool = False  # periodic graphs: neutralise the source amplitudes (RSAConfig.neutral)
    #: With ``neutral``: a charged graph's amplitudes sum to ``total_charge x`` a learned
    #: amplitude per head (RSAConfig.net_charge), its net charge in the learned representation.
    net_charge: bool = False
    #: The caller's last graph holds only padding (true of every rsajax Graph): skip its block.
    last_graph_is_padding: bool = False
    #: The last heads carry the smooth ``length^5 / r^6`` kernel (RSAConfig.dispersion_heads):
    #: not neutralised, ``k = 0`` term included (``ewald`` and ``ewald_learned`` weightings).
    dispersion_heads: int = 0
    dispersion_length: float = 1.0  # A, the ``length`` of weights.dispersion_kernel
    mirrored_correction: bool = False  # RSAConfig.mirrored_correction

    @nn.compact
    def __call__(
        self,
        scalars: e3nn.IrrepsArray | jnp.ndarray,
        positions: jnp.ndarray,
        cell: jnp.ndarray,
        kset: KSet,
        node_graph: jnp.ndarray,
        node_mask: jnp.ndarray,
        total_charge: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """(N, F) scalars -> (N, C) ``u``; ``total_charge``: (G,) net charges (None: zeros)."""
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if not isinstance(scalars, e3nn.IrrepsArray):
            scalars = e3nn.IrrepsArray(f"{scalars.shape[-1]}x0e", scalars)
        s = e3nn.flax.Linear(f"{self.channels}x0e", name="W_lin")(scalars.filter(keep="0e")).array
        qkv = nn.Dense(3 * self.channels, use_bias=False, name="W_qkv", param_dtype=s.dtype)(s)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        q = jax.nn.silu(q) / self.channels**0.5  # a Python float keeps float32 in float32
        k = jax.nn.silu(k)
        total_amplitude = None
        if self.neutral and self.net_charge:
            width = self.channels // self.num_heads
            unit = self.param(
                "charge_amplitude", nn.initializers.zeros,
                (self.num_heads, width // 2, width, 2), s.dtype,
            )  # fmt: skip  # the amplitude of one unit of net charge; zero: starts neutral
            charge = jnp.zeros(cell.shape[0], s.dtype) if total_charge is None else total_charge
            unit = unit[..., 0] + 1j * unit[..., 1]
            total_amplitude = charge.astype(s.dtype)[:, None, None, None] * unit[None]
        mesh = check_evaluation(self.evaluation, kset)
        if mesh is not None:
            kset = mesh_kset(mesh, kset.periodic, cell.dtype)  # the grid's frequencies
        paired = mesh is None and kset.pair_index is not None
        if paired:
            kset = half_kset(kset)
        kvectors, measure = kspace_geometry(kset, cell)
        dispersion = self.dispersion_heads > 0
        if dispersion and self.weighting not in ("ewald", "ewald_learned"):
            raise ValueError(
                f"dispersion heads need the 'ewald' or 'ewald_learned' weighting (a kernel to "
                f"start from), got {self.weighting!r}"
            )
        heads = (self.num_heads, self.dispersion_heads, self.dispersion_length)
        zero_weights = None
        if self.weighting in ("learned", "ewald_learned"):
            sigma = self.sigma if self.weighting == "ewald_learned" else None
            k_weights = LearnedKWeights(
                self.num_heads, self.num_basis, sigma, self.dispersion_heads,
                self.dispersion_length, self.mirrored_correction, name="k_weights",
            )  # fmt: skip
            weights = k_weights(kset, kvectors, measure, cell if dispersion else None)
            if dispersion:
                weights, zero_weights = weights
        else:
            weights = fixed_kweights(
                kset, kvectors, measure, self.weighting, self.sigma, heads if dispersion else None
            )
            if dispersion:
                zero_weights = zero_frequency_weights(cell, kset.periodic, self.sigma, heads)
        u_zero = 0.0
        if zero_weights is not None:
            u_zero = zero_frequency_attention(
                q, k, v, zero_weights, node_graph, cell.shape[0], node_mask, self.num_heads,
                self.neutral, total_amplitude, self.dispersion_heads,
            )  # fmt: skip
        common = dict(
            node_mask=node_mask, num_heads=self.num_heads, neutral=self.neutral,
            total_amplitude=total_amplitude, dispersion_heads=self.dispersion_heads,
        )  # fmt: skip
        if mesh is not None:
            return u_zero + mesh_attention(
                q, k, v, positions, cell, weights, node_graph, cell.shape[0], mesh, **common
            )
        if not kset.has_open:
            return u_zero + reciprocal_space_attention(
                q, k, v, positions, kvectors, weights, kset.mask, node_graph, cell.shape[0],
                paired=paired, last_graph_is_padding=self.last_graph_is_padding,
                node_slots=kset.node_slots, **common,
            )  # fmt: skip
        # Open graphs: exact angular integral, a pair sum (open_boundary_attention); periodic
        # graphs of the same batch: the lattice sum, with the open graphs' slots masked out.
        periodic = jnp.asarray(kset.periodic)
        weights = weights if weights.ndim == 3 else weights[..., None]
        lattice_mask = kset.mask & periodic[:, None]
        u = u_zero + reciprocal_space_attention(
            q, k, v, positions, kvectors, jnp.where(periodic[:, None, None], weights, 0.0),
            lattice_mask, node_graph, cell.shape[0],
            last_graph_is_padding=self.last_graph_is_padding, node_slots=kset.node_slots,
            **common,
        )  # fmt: skip
        knorm = jnp.where(kset.mask, jnp.sqrt(k_squared(kset, kvectors)), 0.0)
        return u + open_boundary_attention(
            q, k, v, positions, knorm, jnp.where(periodic[:, None, None], 0.0, weights),
            node_graph, ~periodic, node_mask=node_mask, num_heads=self.num_heads,
            node_slots=kset.node_slots,
        )  # fmt: skip


# --------------------------------------------------------------------------- features <-> e3nn


def features_to_irreps(h: Features) -> e3nn.IrrepsArray:
    """{l: (N, C, 2l+1)} (natural parity) -> IrrepsArray ``Cx0e+Cx1o+...`` of shape (N, dim)."""
    ls = sorted(h)
    irreps = e3nn.Irreps("+".join(f"{h[l].shape[1]}x{l}{'eo'[l % 2]}" for l in ls))
    array = jnp.concatenate([h[l].reshape(h[l].shape[0], -1) for l in ls], axis=-1)
    return e3nn.IrrepsArray(irreps, array)


def irreps_to_features(x: e3nn.IrrepsArray) -> Features:
    """Inverse of :func:`features_to_irreps` (one block per irrep, in order)."""
    out, offset = {}, 0
    for mul, ir in x.irreps:
        size = mul * ir.dim
        out[ir.l] = x.array[:, offset : offset + size].reshape(-1, mul, ir.dim)
        offset += size
    return out


# --------------------------------------------------------------------------- the model part


def check_kset(config: RSAConfig, kset: KSet | None) -> None:
    """Trace-time checks that ``graph.kset`` exists and was built for this configuration."""
    if kset is None:
        raise ValueError(f"this model is long-range (RSA) but graph.kset is None; {KSET_HINT}")
    if config.seed != (not kset.smooth):
        want = "the seed k-set" if config.seed else "a smooth k-set"
        raise ValueError(f"the model needs {want} but graph.kset is the other kind; {KSET_HINT}")
    if not config.seed and (
        not np.isclose(kset.k_cut, config.k_cut, rtol=1e-12)
        or not np.isclose(kset.envelope_width, config.envelope_width, rtol=1e-12)
    ):
        raise ValueError(
            f"graph.kset was built for k_cut={kset.k_cut}, envelope_width={kset.envelope_width} "
            f"but the model has k_cut={config.k_cut}, envelope_width={config.envelope_width}; "
            + KSET_HINT
        )
    if config.evaluation != "auto" and (kset.mesh is not None) != (config.evaluation == "mesh"):
        have = "a mesh k-set" if kset.mesh is not None else "a direct k-set"
        raise ValueError(
            f"the model evaluates RSA {config.evaluation!r} but graph.kset is {have}; {KSET_HINT}"
        )
    if kset.mesh is not None and kset.mesh.order != config.mesh_order:
        raise ValueError(
            f"graph.kset's mesh has B-spline order {kset.mesh.order} but the model has "
            f"mesh_order={config.mesh_order}; {KSET_HINT}"
        )


class LongRangeLayer(nn.Module):
    """RSA on the layer input's scalars, merged into the layer output or read out as an energy.

    ``(h_in, h_out, graph, positions) -> (h_next (Features), node_energy (N,))``: for the feature
    combinations (``tp``, ``gate``, ``residual``) ``node_energy`` is 0 and ``h_next`` carries
    ``u``; for ``energy`` ``h_next = h_out`` and ``node_energy = k_e sum_c p_ic u_ic`` (eV) with
    ``p = Linear(scalars of h_out)``, zero at initialisation so the model starts as its
    short-range part and the branch gets a gradient from the first step.
    """

    config: RSAConfig
    channels: int

    @nn.compact
    def __call__(
        self, h_in: Features, h_out: Features, graph, positions: jax.Array
    ) -> tuple[Features, jax.Array]:
        cfg = self.config
        check_kset(cfg, graph.kset)
        block = RSABlock(
            self.channels, cfg.num_heads, cfg.weighting, cfg.sigma, evaluation=cfg.evaluation,
            neutral=cfg.neutral, net_charge=cfg.net_charge, last_graph_is_padding=True,
            dispersion_heads=cfg.dispersion_heads,
            dispersion_length=cfg.dispersion_length if cfg.dispersion_heads else 1.0,
            mirrored_correction=cfg.mirrored_correction, name="rsa",
        )  # fmt: skip
        u = block(
            h_in[0][..., 0],
            positions,
            graph.cell.astype(positions.dtype),
            graph.kset,
            graph.node_graph,
            graph.node_mask,
            graph.total_charge,
        )
        if cfg.combine == "energy":
            scalars = h_out[0][..., 0]
            readout = nn.Dense(
                self.channels, use_bias=False, kernel_init=nn.initializers.zeros,
                param_dtype=scalars.dtype, name="energy_readout",
            )  # fmt: skip
            energy = COULOMB_CONSTANT * jnp.sum(readout(scalars) * u, axis=-1)
            return h_out, jnp.where(graph.node_mask, energy, 0.0)
        merged = make_combination(cfg.combine, name="combine")(features_to_irreps(h_out), u)
        return irreps_to_features(merged), jnp.zeros(u.shape[0], u.dtype)


def long_range_combine(
    config: RSAConfig,
    num_channels: int,
    layer: int,
    h_in: Features,
    h_out: Features,
    graph,
    positions: jax.Array,
) -> tuple[Features, jax.Array | None]:
    """What ``MACE.combine`` returns for a long-range model: the next features and the layer's
    long-range node energies (None where the layer has no RSA). Call it inside MACE's compact
    scope (the submodule ``long_range_{layer}`` is created in the calling module)."""
    if not config.applies_to(layer):
        return h_out, None
    layer_module = LongRangeLayer(
        config, config.channels or num_channels, name=f"long_range_{layer}"
    )
    return layer_module(h_in, h_out, graph, positions)


def with_evaluation(model, evaluation: str, **mesh_options):
    """The same RSA-MACE module evaluated ``direct`` or on the ``mesh`` (same parameters).

    E.g. a model trained on small cells with ``direct`` runs large MD boxes with
    ``with_evaluation(model, "mesh", mesh_order=6)``; the batches' ``kset_fn`` (or the MD
    allocation) must then come from the new ``model.config.long_range``.
    """
    config = model.config
    if config.long_range is None:
        raise ValueError("with_evaluation needs a long-range (RSA) model; this one is short-range")
    long_range = dataclasses.replace(config.long_range, evaluation=evaluation, **mesh_options)
    return type(model)(dataclasses.replace(config, long_range=long_range))
