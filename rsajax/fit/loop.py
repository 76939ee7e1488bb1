"""The outer loop of a structure fit: reweighted S(Q) loss plus a teacher energy/force loss, optax.

Each step evaluates, at the current parameters theta,

``loss(theta) = sq_weight * L_SQ(<S>_theta) + teacher_weight * L_teacher(theta)``

where ``<S>_theta`` is the reweighted S(Q) of the frames last sampled at theta0
(:mod:`rsajax.fit.reweight`) and ``L_teacher`` the energy/force loss on teacher frames
(:mod:`rsajax.fit.teacher`). When the effective sample size of the weights falls below
``min_effective_fraction`` of the frames, the frames are sampled afresh with theta (NVT, from the
last frame of the previous run) before the step: the DiffTRe scheme.

The jitted loss takes the frames as arguments, so fresh samples of the same shapes reuse the
compilation. :class:`FitCheckpoints` stores the parameters, the optimiser state and the current
frames with orbax after every step, so an interrupted fit resumes exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from rsajax.fit.objective import SQTarget, frame_sq, sq_loss
from rsajax.fit.reweight import effective_fraction, reweighted_mean, reweighting_weights
from rsajax.fit.sampling import Samples, frame_energies, sample_nvt
from rsajax.fit.teacher import teacher_loss
from rsajax.graph import Graph
from rsajax.md.adapter import MDSystem


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Sampling, reweighting and optimiser settings of a structure fit.

    Attributes:
        temperature_K, dt_fs, friction_per_fs: the NVT sampling.
        frames, every, equilibrate: frames per sample, steps between frames, steps before the
            first frame of each fresh sample.
        min_effective_fraction: resample when the Kish sample size falls below this fraction.
        learning_rate: Adam's step size; clip_norm: global gradient-norm clip.
        sq_weight, teacher_weight: weights of the two loss terms.
        energy_weight, forces_weight: the teacher term's weights (E per atom, forces).
    """

    temperature_K: float = 300.0
    dt_fs: float = 1.0
    friction_per_fs: float = 0.02
    frames: int = 40
    every: int = 20
    equilibrate: int = 200
    min_effective_fraction: float = 0.5
    learning_rate: float = 1e-3
    clip_norm: float = 1.0
    sq_weight: float = 1.0
    teacher_weight: float = 1.0
    energy_weight: float = 1.0
    forces_weight: float = 10.0


def make_optimizer(settings: FitSettings) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(settings.clip_norm), optax.adam(settings.learning_rate)
    )


class SQFit:
    """A reweighted S(Q) fit of ``model`` in ``system`` with a teacher term.

    Args:
        model: the Flax model; system: its :class:`~rsajax.md.adapter.MDSystem` (the glass box).
        constants: the model's non-trainable variables (``variables["constants"]``).
        target: the S(Q) target on the box's grid.
        teacher: labelled teacher frames (:func:`rsajax.fit.teacher.teacher_graph`).
    """

    def __init__(
        self,
        model,
        system: MDSystem,
        constants: dict,
        target: SQTarget,
        teacher: Graph,
        settings: FitSettings,
    ):
        self.system, self.target, self.teacher, self.settings = system, target, teacher, settings
        self.constants = constants
        self.optimizer = make_optimizer(settings)
        teach = teacher_loss(
            model, {"energy": settings.energy_weight, "forces": settings.forces_weight}
        )
        beta = 1.0 / (8.617333262e-5 * settings.temperature_K)

        def loss(params, nbrs, positions, idx, u_ref, frame_s):
            variables = {"params": params, "constants": constants}
            u = frame_energies(system, nbrs, variables, positions, idx)
            w = reweighting_weights(u, u_ref, beta)
            s = reweighted_mean(frame_s, w)
            l_sq = sq_loss(s, target)
            l_teach = teach(variables, teacher)
            total = settings.sq_weight * l_sq + settings.teacher_weight * l_teach
            return total, {"sq": l_sq, "teacher": l_teach, "ess": effective_fraction(w), "s": s}

        self._value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))

        def update(params, opt_state, grads):
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        self._update = jax.jit(update)
        self.samples: Samples | None = None
        self.frame_s: np.ndarray | None = None
        self.nbrs = None

    def sample(self, params, R0, seed: int) -> Samples:
        """Fresh NVT frames with ``params`` from fractional ``R0``; their S(Q) per frame."""
        st = self.settings
        self.samples, self.nbrs = sample_nvt(
            self.system,
            {"params": params, "constants": self.constants},
            R0,
            frames=st.frames,
            every=st.every,
            equilibrate=st.equilibrate,
            temperature_K=st.temperature_K,
            dt_fs=st.dt_fs,
            friction_per_fs=st.friction_per_fs,
            seed=seed,
            nbrs=self.nbrs,
        )
        self.frame_s = frame_sq(self.samples.cartesian, self.target)
        return self.samples

    def adopt(self, samples: Samples) -> None:
        """Use stored frames (a resumed fit): a list template of their capacity, their S(Q)."""
        width = samples.idx.shape[-1]
        nbrs = self.system.allocate(jnp.asarray(samples.last))
        if nbrs.idx.shape[1] < width:
            nbrs = self.system.allocate(
                jnp.asarray(samples.last), extra_capacity=width - nbrs.idx.shape[1]
            )
        pad = nbrs.idx.shape[1] - width
        n = samples.positions.shape[1]
        idx = np.pad(samples.idx, ((0, 0), (0, 0), (0, pad)), constant_values=n)
        self.samples, self.nbrs = dataclasses.replace(samples, idx=idx), nbrs
        self.frame_s = frame_sq(samples.cartesian, self.target)

    def value_and_grad(self, params):
        """``((total, parts), grads)`` at ``params`` on the current frames."""
        s = self.samples
        return self._value_and_grad(
            params, self.nbrs, s.positions, s.idx, s.energies, jnp.asarray(self.frame_s)
        )

    def step(self, params, opt_state, seed: int) -> tuple[Any, Any, dict]:
        """One optimiser step, resampling first if the sample size is too small.

        Returns ``(params, opt_state, record)``; ``record`` holds the losses and sample size at
        the parameters the gradient was taken at, and whether the frames were renewed.
        """
        (total, parts), grads = self.value_and_grad(params)
        resampled = False
        if float(parts["ess"]) < self.settings.min_effective_fraction:
            self.sample(params, self.samples.last, seed)
            (total, parts), grads = self.value_and_grad(params)
            resampled = True
        params, opt_state = self._update(params, opt_state, grads)
        record = {
            "loss": float(total),
            "sq_loss": float(parts["sq"]),
            "teacher_loss": float(parts["teacher"]),
            "effective_fraction": float(parts["ess"]),
            "resampled": resampled,
        }
        return params, opt_state, record


class FitCheckpoints:
    """Checkpoints of a fit: parameters and optimiser state with orbax (atomic), the current
    frames beside them as ``frames_<step>.npz`` (written first, so a complete orbax step always
    has its frames), and JSON metadata (step, history). Only the newest step is kept."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(
            self.directory / "orbax", options=options, item_handlers=handlers
        )

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, params, opt_state, samples: Samples, meta: dict) -> None:
        frames = self.directory / f"frames_{step}.npz"
        tmp = frames.with_suffix(".tmp.npz")
        np.savez(tmp, **_samples_arrays(samples))
        tmp.replace(frames)
        state = {"params": params, "opt_state": opt_state}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )
        self.manager.wait_until_finished()
        for old in self.directory.glob("frames_*.npz"):
            if old != frames:
                old.unlink()

    def restore(self, params, opt_state, temperature_K: float) -> tuple[Any, Any, Samples, dict]:
        """The newest checkpoint; ``params`` and ``opt_state`` are shape templates."""
        step = self.latest()
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore({"params": params, "opt_state": opt_state}),
                meta=ocp.args.JsonRestore(),
            ),
        )
        with np.load(self.directory / f"frames_{step}.npz") as data:
            samples = Samples(**{k: data[k] for k in data.files}, temperature_K=temperature_K)
        return out["state"]["params"], out["state"]["opt_state"], samples, out["meta"]


def _samples_arrays(samples: Samples) -> dict:
    return {
        "positions": samples.positions,
        "idx": samples.idx,
        "cartesian": samples.cartesian,
        "energies": samples.energies,
        "last": samples.last,
    }
