"""RSA-MACE: the long-range (reciprocal-space attention) half of :class:`rsajax.nn.model.MACE`.

A MACE whose ``config.long_range`` is an :class:`RSAConfig` runs, in every chosen interaction
layer ``t``, ``u = RSABlock(scalars(h_t))`` on the layer's *input* scalars and merges ``u`` into
the layer's output ``h_sr`` with the chosen combination (``tp``, ``gate`` or ``residual``; see
:mod:`rsajax.nn.rsa_combine`). Everything else is the short-range MACE, line for line: the
parameters of a long-range model are those of the short-range one plus ``long_range_{t}``.

The k-vectors are chosen on the host, once per batch, by the function :func:`make_kset_fn`
returns (pass it as ``kset_fn`` to :func:`rsajax.data.collate`, ``atoms_to_graph`` or
``GraphDataset``); the model reads them from ``graph.kset`` and computes the Cartesian vectors
from the (strained) cell inside the differentiated function, so forces and stress are exact.

Evaluation (``RSAConfig.evaluation``): ``direct`` sums over the lattice vectors with
``|k| <= k_cut`` (cost ``O(N M)``, and ``M ~ V`` at fixed ``k_cut``: quadratic in N at fixed
density; exact). ``mesh`` evaluates the same sums by smooth particle-mesh Ewald
(:mod:`rsajax.nn.rsa_mesh`: linear in N up to the FFT's log; relative deviation from ``direct``
~2e-5 at the default order 6 and oversampling 2, ~1e-6 at order 8). The mesh's grid is a static
:class:`~rsajax.nn.mesh_spec.MeshSpec` chosen on the host by :func:`make_kset_fn` with the same
``margin`` as the k-set and carried in ``graph.kset.mesh``, so it is a compile-time constant. The
mesh is lattice-only: open-boundary and slab structures raise (use ``direct``). The parameters do
not depend on the evaluation: a model trained with one can be run with the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rsajax.nn.kspace import (
    SEED_K_CUT,
    SEED_NUM_K,
    KSet,
    build_kset,
    build_seed_kset,
    integer_kset,
    max_num_k,
    radial_nodes_for,
    seed_kset,
    structure_diameter,
)
from rsajax.nn.mesh_spec import MeshSpec, make_mesh_kset_fn
from rsajax.nn.rsa import EVALUATIONS, WEIGHTINGS, RSABlock
from rsajax.nn.rsa_combine import COMBINATIONS, make_combination

#: e^2 / (4 pi eps0) in eV A (CODATA 2018), the unit of the ``energy`` combination.
COULOMB_CONSTANT = 14.3996454784

Features = dict[int, jax.Array]
KSET_HINT = "build batches with kset_fn=make_kset_fn(config.long_range, structures)"


#: Relative accuracy of the default split: the real-space remainder ``erfc(r_max / (sqrt 2 sigma))``
#: at the local cutoff and the Gaussian ``exp(-k_on^2 sigma^2 / 2)`` where the envelope starts.
DEFAULT_ACCURACY = 1e-3
#: Combinations: the three feature merges of :mod:`rsajax.nn.rsa_combine`, or ``energy``.
COMBINE_CHOICES = tuple(sorted(COMBINATIONS)) + ("energy",)


def ewald_split(
    r_max: float, accuracy: float = DEFAULT_ACCURACY, envelope_width: float = 0.2
) -> tuple[float, float]:
    """The Gaussian width and k cutoff that make a local model of cutoff ``r_max`` and the
    reciprocal-space kernel together represent ``1/r`` to ``accuracy``.

    The long-range kernel ``erf(r / (sqrt 2 sigma)) / r`` leaves ``erfc(r / (sqrt 2 sigma)) / r``
    to real space; beyond ``r_max`` nobody covers it, so ``sigma`` is chosen to make
    ``erfc(r_max / (sqrt 2 sigma)) = accuracy``. Its Fourier weight ``exp(-k^2 sigma^2 / 2)`` must
    have fallen to ``accuracy`` where the envelope starts cutting, ``k_on = (1 - width) k_cut``.
    Measured (``tests/nn/test_long_range_defaults.py``): at ``r_max`` = 5 A and 1e-3 this gives
    sigma = 1.52 A and k_cut = 3.06 1/A, and the kernel is ``1/r`` to 1.0e-3 relative at 5 A and
    1e-5 beyond 7 A.

    Returns:
        (sigma in A, k_cut in 1/A).
    """
    from scipy.special import erfcinv

    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"RSAConfig.accuracy must be in (0, 1), got {accuracy}")
    if not r_max > 0:
        raise ValueError(f"r_max must be positive, got {r_max}")
    sigma = r_max / (math.sqrt(2.0) * float(erfcinv(accuracy)))
    k_on = math.sqrt(2.0 * math.log(1.0 / accuracy)) / sigma
    return sigma, k_on / (1.0 - envelope_width)


@dataclasses.dataclass(frozen=True)
class RSAConfig:
    """Hyperparameters of the long-range part (JSON-serialisable; see :meth:`preset`).

    The defaults are the ``default`` preset. ``sigma`` and ``k_cut`` left as None are derived
    from the model's ``r_max`` and ``accuracy`` by :func:`ewald_split` when the model is built
    (:class:`rsajax.nn.model.MACEConfig` calls :meth:`resolved`); a saved model stores numbers.

    Attributes:
        k_cut: envelope cutoff in 1/A (the weights reach 0 here); None: from ``accuracy``.
        margin: relative extra radius of the host-side integer k-set (NPT head room).
        weighting: per-k weights: ``ones`` (reference, lattice only), ``ewald``, ``learned`` (a
            positive radial function per head), ``ewald_learned`` (Ewald times a learned
            positive correction per head, starting at 1).
        sigma: Gaussian width (A) of the ``ewald`` kernels; None: from ``r_max`` and ``accuracy``.
        accuracy: relative accuracy of the derived split (see :func:`ewald_split`).
        num_heads: attention heads; ``channels / num_heads`` must be even.
        channels: RSA width C (None: the model's ``num_channels``).
        combine: how ``u`` enters the model: ``tp``, ``gate``, ``residual`` (merged into the
            layer's features) or ``energy`` (an additive per-atom energy
            ``k_e sum_c p_ic u_ic``, ``p = Linear(scalars of the layer output)``, started at zero;
            ``k_e`` is the Coulomb constant, so a head that learns charges gives eV).
        envelope_width: the envelope falls from 1 to 0 over ``[k_cut (1 - width), k_cut]``.
        seed: use the reference's six k-vectors (orthorhombic cells >= 10 A only).
        layers: indices of the interaction layers that get RSA (None: all).
        evaluation: ``direct`` (lattice sum / open-boundary pair sum), ``mesh`` (particle mesh,
            periodic cells only; same parameters, linear cost in N).
        num_radial: radial k nodes of the open-boundary kernel (None: sized from the data's
            largest structure by :func:`make_kset_fn`).
        mesh_order: B-spline order of the mesh (accuracy ~2e-5 at 6, ~1e-6 at 8; cost ~order^3).
        mesh_oversampling: grid points per needed frequency, ``K / (2 n_max + 1)`` (>= 1).
    """

    k_cut: float | None = None
    margin: float = 0.1
    weighting: str = "ewald_learned"
    sigma: float | None = None
    accuracy: float = DEFAULT_ACCURACY
    num_heads: int = 2
    channels: int | None = 16
    combine: str = "energy"
    envelope_width: float = 0.2
    seed: bool = False
    layers: tuple[int, ...] | None = None
    evaluation: str = "direct"
    num_radial: int | None = None
    mesh_order: int = 6
    mesh_oversampling: float = 2.0

    def __post_init__(self):
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"RSAConfig.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}"
            )
        if self.combine not in COMBINE_CHOICES:
            raise ValueError(
                f"RSAConfig.combine must be one of {COMBINE_CHOICES}, got {self.combine!r}"
            )
        if self.k_cut is not None and not self.k_cut > 0:
            raise ValueError(f"RSAConfig.k_cut must be positive (1/A), got {self.k_cut}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"RSAConfig.sigma must be positive (A), got {self.sigma}")
        if not 0.0 < self.accuracy < 1.0:
            raise ValueError(f"RSAConfig.accuracy must be in (0, 1), got {self.accuracy}")
        if not 0 < self.envelope_width <= 1:
            raise ValueError(
                f"RSAConfig.envelope_width must be in (0, 1], got {self.envelope_width}"
            )
        if self.num_heads < 1:
            raise ValueError(f"RSAConfig.num_heads must be >= 1, got {self.num_heads}")
        if self.num_radial is not None and self.num_radial < 8:
            raise ValueError(f"RSAConfig.num_radial must be >= 8, got {self.num_radial}")
        if self.seed and self.weighting != "ones":
            raise ValueError(
                "RSAConfig.seed=True reproduces the reference: weighting must be "
                f"'ones', got {self.weighting!r}"
            )
        if self.evaluation not in EVALUATIONS:
            raise ValueError(
                f"RSAConfig.evaluation must be one of {EVALUATIONS}, got {self.evaluation!r}"
            )
        if self.evaluation == "mesh" and self.seed:
            raise ValueError(
                "RSAConfig.seed=True uses the reference's six k-vectors; evaluate them 'direct'"
            )
        if not 3 <= self.mesh_order <= 12:
            raise ValueError(f"RSAConfig.mesh_order must be in [3, 12], got {self.mesh_order}")
        if not self.mesh_oversampling >= 1.0:
            raise ValueError(
                f"RSAConfig.mesh_oversampling must be >= 1, got {self.mesh_oversampling}"
            )

    @property
    def is_resolved(self) -> bool:
        """True once ``k_cut`` and ``sigma`` are numbers (``sigma`` unused by ``ones``)."""
        return self.k_cut is not None and (self.sigma is not None or self.weighting == "ones")

    def resolved(self, r_max: float) -> RSAConfig:
        """This configuration with ``sigma`` and ``k_cut`` derived from ``r_max`` where None.

        ``sigma`` None: :func:`ewald_split` of ``r_max``. ``k_cut`` None: from ``sigma`` (given
        or derived) so that ``exp(-k_on^2 sigma^2 / 2) = accuracy``.
        """
        if self.is_resolved:
            return self
        sigma = self.sigma
        if sigma is None:
            sigma, _ = ewald_split(r_max, self.accuracy, self.envelope_width)
        k_cut = self.k_cut
        if k_cut is None:
            k_on = math.sqrt(2.0 * math.log(1.0 / self.accuracy)) / sigma
            k_cut = k_on / (1.0 - self.envelope_width)
        return dataclasses.replace(self, sigma=float(sigma), k_cut=float(k_cut))

    @classmethod
    def preset(cls, name: str, **overrides) -> RSAConfig:
        """``seed``: the reference model (six reference k-vectors, unit weights, ``tp``, 1 head).
        ``default``: the defaults of this class, chosen by physics (RSA.md, README): an Ewald
        split tied to the local cutoff (``sigma``, ``k_cut`` from ``r_max`` at 1e-3), two heads of
        8 channels each with a learned correction to the Ewald kernel, and an additive
        long-range energy. ``default-v0``: the earlier default (sigma 5 A, k_cut 0.8 1/A, one
        head, ``residual``), kept to reproduce older runs; it cannot represent a Coulomb tail
        beyond a 5 A local model (its kernel leaves 32% of 1/r uncovered at 5 A).
        All evaluate ``direct``; ``evaluation="mesh"`` for large periodic boxes."""
        # fmt: off
        presets = {
            "seed": dict(
                k_cut=SEED_K_CUT, margin=0.0, weighting="ones", num_heads=1, combine="tp",
                seed=True, channels=None,
            ),
            "default": {},
            "default-v0": dict(
                k_cut=0.8, weighting="ewald", sigma=5.0, num_heads=1, combine="residual",
                channels=None,
            ),
        }
        # fmt: on
        if name not in presets:
            raise ValueError(f"unknown RSA preset {name!r}; choose from {sorted(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layers"] = None if self.layers is None else list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RSAConfig:
        d = dict(d)
        # Files written before the open-boundary kernel became a radial pair sum name the old
        # sphere rule's degree; the radial kernel integrates the angles exactly and needs none.
        d.pop("lebedev_degree", None)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown RSAConfig fields: {sorted(unknown)}")
        return cls(**d)

    def check_model(self, num_interactions: int, num_channels: int) -> None:
        """Raise if the layers or the width do not fit a model of this size."""
        bad = [t for t in self.layers or () if not 0 <= t < num_interactions]
        if bad:
            raise ValueError(
                f"RSAConfig.layers {bad} out of range for {num_interactions} interaction layers"
            )
        channels = self.channels or num_channels
        if channels % (2 * self.num_heads):
            raise ValueError(
                f"RSA channels={channels} must be a multiple of 2 * num_heads="
                f"{2 * self.num_heads} (complex pairs per head)"
            )

    def applies_to(self, layer: int) -> bool:
        return self.layers is None or layer in self.layers


def as_rsa_config(value: Any, r_max: float | None = None) -> RSAConfig | None:
    """``MACEConfig.long_range`` from None, an :class:`RSAConfig`, a dict or a preset name;
    resolved for ``r_max`` when given."""
    if value is None:
        return None
    if isinstance(value, RSAConfig):
        config = value
    elif isinstance(value, dict):
        config = RSAConfig.from_dict(value)
    elif isinstance(value, str):
        config = RSAConfig.preset(value)
    else:
        raise TypeError(
            f"long_range must be None, an RSAConfig, a dict or a preset name, got "
            f"{type(value).__name__}"
        )
    return config if r_max is None else config.resolved(r_max)


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
    if (kset.mesh is not None) != (config.evaluation == "mesh"):
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
            name="rsa",
        )  # fmt: skip
        u = block(
            h_in[0][..., 0],
            positions,
            graph.cell.astype(positions.dtype),
            graph.kset,
            graph.node_graph,
            graph.node_mask,
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


def placeholder_kset(graph) -> KSet:
    """An all-masked k-set of one slot for parameter initialisation (shapes do not depend on M)."""
    num_graphs = np.asarray(graph.cell).shape[0]
    return KSet(
        n=np.zeros((num_graphs, 1, 3), np.int32),
        nodes=np.zeros((num_graphs, 1, 3)),
        node_weights=np.zeros((num_graphs, 1)),
        mask=np.zeros((num_graphs, 1), bool),
        periodic=np.zeros(num_graphs, bool),
        k_cut=SEED_K_CUT,
        smooth=False,
    )


def init_kset(config: RSAConfig, graph) -> KSet:
    """:func:`placeholder_kset` of the kind ``config`` expects (it passes :func:`check_kset`)."""
    kset = placeholder_kset(graph)
    if config.seed:
        return kset
    mesh = None
    if config.evaluation == "mesh":  # a smallest grid; all graphs non-periodic, weights 0
        mesh = MeshSpec(
            (config.mesh_order,) * 3, config.mesh_order, float(config.k_cut),
            float(config.envelope_width), float(config.mesh_oversampling),
        )  # fmt: skip
    return kset.replace(
        k_cut=float(config.k_cut),
        envelope_width=float(config.envelope_width),
        smooth=True,
        mesh=mesh,
    )


# --------------------------------------------------------------------------- host: k-set choice


def _cells_and_pbcs(structures: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(S, 3, 3) cells and (S, 3) pbcs of ASE Atoms, GraphRecords or (real graphs of) Graphs."""
    cells, pbcs = [], []
    for s in structures:
        cell = np.asarray(s.cell, np.float64)
        pbc = np.broadcast_to(np.asarray(s.pbc, bool), cell.shape[:-1])
        if cell.ndim == 3:  # a batched Graph: its real graphs only
            real = np.asarray(s.graph_mask, bool) & (np.asarray(s.n_node) > 0)
            cells += list(cell[real])
            pbcs += list(pbc[real])
        else:
            cells.append(cell)
            pbcs.append(pbc)
    if not cells:
        raise ValueError("make_kset_fn needs at least one structure to size the k-set")
    return np.stack(cells), np.stack(pbcs)


def make_kset_fn(
    config: RSAConfig, structures: Sequence[Any], m_max: int | None = None
) -> Callable[[Any], KSet]:
    """The host function ``Graph -> KSet`` for a dataset, with one static ``m_max``.

    Every structure is checked now (empty k-set, open boundaries in a lattice-only mode, seed
    mode on a non-orthorhombic or small cell), so errors name the structure before training.
    With ``evaluation="mesh"`` the static grid (:class:`~rsajax.nn.mesh_spec.MeshSpec`, exposed
    as ``kset_fn.mesh``) is sized here for every structure with ``config.margin`` of head room,
    and every structure must be fully periodic.

    Args:
        config: the model's long-range configuration.
        structures: every structure the function will see: ASE Atoms, ``GraphRecord``s or Graphs.
        m_max: a floor for the number of k slots (head room for NPT; the dataset's need wins;
            unused by the mesh, whose head room is ``config.margin``).
    Returns:
        ``kset_fn`` for :func:`rsajax.data.collate`, ``atoms_to_graph`` and ``GraphDataset``.
    """
    if not config.is_resolved:
        raise ValueError(
            "make_kset_fn needs a resolved RSAConfig (sigma and k_cut are derived from the "
            "model's r_max): pass model.config.long_range, or RSAConfig(...).resolved(r_max)"
        )
    cells, pbcs = _cells_and_pbcs(structures)
    open_ = ~pbcs.any(axis=1)
    if config.evaluation == "mesh":
        return make_mesh_kset_fn(
            cells,
            pbcs,
            config.k_cut,
            order=config.mesh_order,
            oversampling=config.mesh_oversampling,
            margin=config.margin,
            envelope_width=config.envelope_width,
        )
    lattice_only = config.seed or config.weighting == "ones"
    if lattice_only and open_.any():
        bad = np.flatnonzero(open_).tolist()
        mode = "seed" if config.seed else "weighting 'ones'"
        raise ValueError(
            f"structures {bad} have open boundaries (pbc all False) but {mode} is lattice-only; "
            "use weighting 'ewald' or 'learned', which integrate over continuous k"
        )
    if config.seed:
        for index, (cell, pbc) in enumerate(zip(cells, pbcs, strict=True)):
            if not pbc.all():
                raise ValueError(
                    f"structure {index}: seed mode needs a fully periodic cell, "
                    f"got pbc={pbc.tolist()}"
                )
            seed_kset(cell, name=f"structure {index}")
        return build_seed_kset
    for index in np.flatnonzero(~open_):  # a vector strictly inside k_cut, not just the margin
        integer_kset(cells[index], config.k_cut, margin=0.0, name=f"structure {index}")
    num_radial = config.num_radial
    if num_radial is None:  # resolve the largest open structure, with the margin as head room
        diameter = max(_open_diameters(structures), default=0.0) * (1.0 + config.margin)
        num_radial = radial_nodes_for(config.k_cut, diameter)
    need = max_num_k(cells, pbcs, config.k_cut, config.margin, num_radial)
    slots = max(need, m_max or 0)

    def kset_fn(graph) -> KSet:
        return build_kset(
            graph,
            config.k_cut,
            margin=config.margin,
            m_max=slots,
            envelope_width=config.envelope_width,
            lattice_only=lattice_only,
            num_radial=num_radial,
        )

    kset_fn.m_max = slots
    kset_fn.num_radial = num_radial
    return kset_fn


def _open_diameters(structures: Sequence[Any]) -> list[float]:
    """Bounding-box diagonals (A) of the open-boundary structures among ``structures``."""
    out = []
    for s in structures:
        pbc = np.asarray(s.pbc, bool)
        if pbc.ndim == 2:  # a batched Graph
            real = np.asarray(s.graph_mask, bool) & (np.asarray(s.n_node) > 0)
            open_graphs = np.flatnonzero(real & ~pbc.any(axis=1))
            if open_graphs.size == 0:  # positions and nodes unread: host views may lack them
                continue
            positions = np.asarray(s.positions, np.float64)
            node_graph = np.asarray(s.node_graph)
            node_mask = np.asarray(s.node_mask, bool)
            for g in open_graphs:
                out.append(structure_diameter(positions[(node_graph == g) & node_mask]))
        elif not pbc.any():
            positions = s.get_positions() if hasattr(s, "get_positions") else s.positions
            out.append(structure_diameter(positions))
    return out


__all__ = [
    "COULOMB_CONSTANT",
    "SEED_NUM_K",
    "LongRangeLayer",
    "RSAConfig",
    "as_rsa_config",
    "features_to_irreps",
    "init_kset",
    "irreps_to_features",
    "long_range_combine",
    "make_kset_fn",
    "ewald_split",
    "with_evaluation",
]
