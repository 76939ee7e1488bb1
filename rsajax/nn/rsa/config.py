"""The long-range configuration: :class:`RSAConfig`, its presets, and the Ewald split.

The names every other module checks against live here: the weightings (:data:`WEIGHTINGS`),
the evaluations (:data:`EVALUATIONS`) and the combinations (:data:`FEATURE_COMBINATIONS`, the
feature merges of :mod:`rsajax.nn.rsa.combine`, and :data:`COMBINE_CHOICES`, those plus
``energy``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from rsajax.nn.rsa.kset import SEED_K_CUT

Weighting = Literal["ones", "ewald", "learned", "ewald_learned"]
#: Per-k weightings (:mod:`rsajax.nn.rsa.weights`).
WEIGHTINGS = ("ones", "ewald", "learned", "ewald_learned")
#: Kernels: ``auto`` (chosen per dataset or MD box by :func:`rsajax.nn.rsa.kset_fn.make_kset_fn`),
#: the direct lattice sum / open-boundary pair sum, or the particle mesh.
EVALUATIONS = ("auto", "direct", "mesh")
#: The feature merges of :mod:`rsajax.nn.rsa.combine` (sorted).
FEATURE_COMBINATIONS = ("gate", "residual", "tp")
#: Combinations: the feature merges, or ``energy`` (an additive long-range energy).
COMBINE_CHOICES = FEATURE_COMBINATIONS + ("energy",)

#: Relative accuracy of the default split: the real-space remainder ``erfc(r_max / (sqrt 2 sigma))``
#: at the local cutoff and the Gaussian ``exp(-k_on^2 sigma^2 / 2)`` where the envelope starts.
DEFAULT_ACCURACY = 1e-3


def ewald_split(
    r_max: float, accuracy: float = DEFAULT_ACCURACY, envelope_width: float = 0.2
) -> tuple[float, float]:
    """The Gaussian width and k cutoff that make a local model of cutoff ``r_max`` and the
    reciprocal-space kernel together represent ``1/r`` to ``accuracy``.

    The long-range kernel ``erf(r / (sqrt 2 sigma)) / r`` leaves ``erfc(r / (sqrt 2 sigma)) / r``
    to real space; beyond ``r_max`` nobody covers it, so ``sigma`` is chosen to make
    ``erfc(r_max / (sqrt 2 sigma)) = accuracy``. Its Fourier weight ``exp(-k^2 sigma^2 / 2)`` must
    have fallen to ``accuracy`` where the envelope starts cutting, ``k_on = (1 - width) k_cut``.
    Measured (``tests/nn/rsa/test_defaults.py``): at ``r_max`` = 5 A and 1e-3 this gives
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
    return sigma, k_cut_for(sigma, accuracy, envelope_width)


def k_cut_for(sigma: float, accuracy: float, envelope_width: float) -> float:
    """The k cutoff (1/A) whose envelope starts cutting, at ``k_on = (1 - width) k_cut``, where
    the Ewald weight ``exp(-k^2 sigma^2 / 2)`` has fallen to ``accuracy``."""
    k_on = math.sqrt(2.0 * math.log(1.0 / accuracy)) / sigma
    return k_on / (1.0 - envelope_width)


@dataclasses.dataclass(frozen=True)
class RSAConfig:
    """Hyperparameters of the long-range part (JSON-serialisable; see :meth:`preset`).

    The defaults are the ``default`` preset. ``sigma`` and ``k_cut`` left as None are derived
    from the model's ``r_max`` and ``accuracy`` by :func:`ewald_split` when the model is built
    (:class:`rsajax.nn.model.MACEConfig` calls :meth:`resolved`); a saved model stores numbers.

    Attributes:
        k_cut: envelope cutoff in 1/A (the weights reach 0 here); None: from ``accuracy``.
        margin: relative extra radius of the host-side integer k-set where the cell may strain
            after it is built (MD's k-set, for NPT) and of every mesh grid. A dataset's direct
            k-sets leave it out (:func:`~rsajax.nn.rsa.kset_fn.make_kset_fn`): its cells are
            fixed and vectors beyond ``k_cut`` have zero weight.
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
        evaluation: ``auto`` (the default: the cheaper of the two kernels for the structures a
            k-set is built for, chosen on the host by :func:`~rsajax.nn.rsa.kset_fn.make_kset_fn`
            from the measured cost model :func:`~rsajax.nn.rsa.kset_fn.choose_evaluation`:
            ``direct`` for open boundaries and small cells, ``mesh`` for large periodic boxes),
            ``direct`` (lattice sum / open-boundary pair sum), ``mesh`` (particle mesh, periodic
            cells only; same parameters, linear cost in N).
        num_radial: radial k nodes of the open-boundary kernel (None: sized from the data's
            largest structure by :func:`rsajax.nn.rsa.kset_fn.make_kset_fn`).
        mesh_order: B-spline order of the mesh (accuracy ~2e-5 at 6, ~1e-6 at 8; cost ~order^3).
        mesh_oversampling: grid points per needed frequency, ``K / (2 n_max + 1)`` (>= 1).
        neutral: in periodic cells, remove each structure's mean source amplitude so that the
            lattice sum (which leaves out ``k = 0``) is that of a neutral cell; without it a net
            learned "charge" adds a background energy that depends on cell size and density.
            Open boundaries are never neutralised (charged molecules are physical there).
        net_charge: with ``neutral``, a charged structure (``Graph.total_charge``, from
            ``atoms.info["charge"]``) keeps its net charge: its amplitudes sum to the charge
            times a learned per-head amplitude (zero at initialisation), spread evenly over its
            atoms, so a molecular ion in a periodic box has its Ewald energy with a
            neutralising background. No effect on neutral structures.
        dispersion_heads: how many of the ``num_heads`` heads (the last ones) carry a
            dispersion kernel, the smooth long-range part of ``r_max^5 / r^6``
            (:func:`~rsajax.nn.rsa.weights.dispersion_kernel`, damped like the Coulomb split)
            instead of the Coulomb kernel. They are never neutralised and keep their ``k = 0``
            term, which is finite for ``1/r^6``: a Coulomb head in a periodic cell sums over
            neutralised amplitudes and leaves ``k = 0`` out, so it cannot hold the interaction
            of like atoms (two sheets of one element). ``ewald`` and ``ewald_learned`` only.
            Their learned correction is always a function of ``|k|^2`` (see below).
        mirrored_correction: make the learned correction of every head a smooth function of
            ``|k|^2`` (its Gaussian basis mirrored about ``k = 0``). The plain basis has terms odd
            in ``|k|``, which give a Coulomb head's real-space kernel an ``r^-2`` tail (a
            dispersion head's an ``r^-4`` one); mirrored, the far field keeps its ``1/r`` law.
            Off by default: the default's benchmarks were measured without it.
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
    evaluation: str = "auto"
    num_radial: int | None = None
    mesh_order: int = 6
    mesh_oversampling: float = 2.0
    neutral: bool = True
    net_charge: bool = True
    dispersion_heads: int = 0
    mirrored_correction: bool = False

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
        if not 0 <= self.dispersion_heads <= self.num_heads:
            raise ValueError(
                f"RSAConfig.dispersion_heads must be in [0, num_heads={self.num_heads}], got "
                f"{self.dispersion_heads}"
            )
        if self.dispersion_heads and self.weighting not in ("ewald", "ewald_learned"):
            raise ValueError(
                "RSAConfig.dispersion_heads needs the 'ewald' or 'ewald_learned' weighting, got "
                f"{self.weighting!r}"
            )
        if self.mirrored_correction and self.weighting not in ("learned", "ewald_learned"):
            raise ValueError(
                "RSAConfig.mirrored_correction needs a learned weighting ('learned' or "
                f"'ewald_learned'), got {self.weighting!r}"
            )
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

    @property
    def dispersion_length(self) -> float:
        """The length (A) that scales the dispersion kernel, ``length^5 / r^6`` beyond it: the
        distance where the Coulomb split's real-space remainder falls to ``accuracy``, which is
        the local cutoff ``r_max`` when ``sigma`` was derived from it."""
        from scipy.special import erfcinv

        if self.sigma is None:
            raise ValueError("dispersion_length needs a resolved RSAConfig (sigma is None)")
        return math.sqrt(2.0) * self.sigma * float(erfcinv(self.accuracy))

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
            k_cut = k_cut_for(sigma, self.accuracy, self.envelope_width)
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
        ``dispersion``: the default with its second head a dispersion head
        (``dispersion_heads=1``: one Coulomb and one ``1/r^6`` head), for dispersion-bound and
        layered materials, where like atoms attract across a gap that the default's neutral
        Coulomb heads cannot see (measured in ``experiments/long_range/README.md``).
        ``seed`` evaluates ``direct``; the others ``auto`` (the mesh for large periodic boxes).
        """
        # fmt: off
        presets = {
            "seed": dict(
                k_cut=SEED_K_CUT, margin=0.0, weighting="ones", num_heads=1, combine="tp",
                seed=True, channels=None, neutral=False, evaluation="direct",
            ),
            "default": {},
            "dispersion": dict(dispersion_heads=1),
            "default-v0": dict(
                k_cut=0.8, weighting="ewald", sigma=5.0, num_heads=1, combine="residual",
                channels=None, neutral=False,
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
