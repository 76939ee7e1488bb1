"""Sizes, budgets and protocols of the study's two presets: ``quick`` (a 2-core CPU, a smoke test
of every stage) and ``full`` (a GPU: thousands of atoms, a slower quench, more replicas)."""

from __future__ import annotations

import dataclasses
from typing import Any

from experiments.silica_study.reuse import long_range_silica
from rsajax.teachers.generate import MeltQuenchRun, SilicaConfig

#: The models of the study; the ablation adds the same two trained without supercooled frames.
MODELS = ("teacher", "sr", "rsa")
ABLATION_MODELS = ("sr_no_supercooled", "rsa_no_supercooled")
LABELS = {
    "teacher": "BKS teacher",
    "sr": "SR-MACE",
    "rsa": "RSA-MACE",
    "sr_no_supercooled": "SR-MACE, no supercooled data",
    "rsa_no_supercooled": "RSA-MACE, no supercooled data",
}
#: Most training seeds per model (``run.py --seeds``). Seed 0 is ``sr`` / ``rsa``; seed k > 0 is
#: ``sr_seed<k>`` / ``rsa_seed<k>``: the same data, backbone and budget, another initialisation
#: and batch order, so that the spread between trainings can be told from a real difference.
MAX_SEEDS = 5
LABELS.update(
    {
        f"{base}_seed{k}": f"{LABELS[base]}, training seed {k}"
        for base in ("sr", "rsa")
        for k in range(1, MAX_SEEDS)
    }
)


#: Labels of the pooled trainings (``analysis.pool_trainings``), for the comparison tables.
LABELS.update({f"{base}_pooled": f"{LABELS[base]}, trainings pooled" for base in ("sr", "rsa")})


def seed_models(seeds: int) -> tuple[str, ...]:
    """The extra trained models for ``seeds`` training seeds per model: ``sr_seed1``, ...

    >>> seed_models(3)
    ('sr_seed1', 'rsa_seed1', 'sr_seed2', 'rsa_seed2')
    """
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    return tuple(f"{base}_seed{k}" for k in range(1, seeds) for base in ("sr", "rsa"))


def training_seed(model: str) -> int:
    """The training seed offset of a trained model's name (0 unless it ends in ``_seed<k>``)."""
    head, _, k = model.rpartition("_seed")
    return int(k) if head and k.isdigit() else 0


def family(model: str) -> str:
    """``sr``, ``rsa`` or ``teacher``: the architecture of any study model (seeds, ablations)."""
    return model.split("_", 1)[0]


def base_model(model: str) -> str:
    """``sr_seed2`` -> ``sr``: the model a seed replica repeats (others unchanged)."""
    return model.rpartition("_seed")[0] if training_seed(model) else model


#: A labelled held-out teacher MD run (fields and generator in experiments/long_range/silica.py).
TestBox = long_range_silica().TestBox


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Stage 1. Training frames: ``rsajax.teachers.generate`` (crystals once; the melt-quench
    ``runs`` at every density: 6000 K melt, quench, 300 K anneal, strained copies). Test frames:
    ``test_boxes``; the last frame of box 0 (a teacher glass of the MD box size) is the start of
    every melt-quench of stage 3. Frames are sorted by temperature into liquid (>= ``liquid_K``),
    supercooled (between), glass (<= ``glass_K``) and crystal."""

    densities: tuple[float, ...]
    runs: tuple[MeltQuenchRun, ...]
    crystal_repeats: tuple[tuple[str, tuple[int, int, int]], ...]
    crystal_frames: int
    test_boxes: tuple[TestBox, ...]
    t_melt: float = 6000.0
    equilibrate_ps: float = 2.0
    melt_ps: float = 3.0
    anneal_ps: float = 2.0
    liquid_K: float = 4000.0
    glass_K: float = 1500.0

    def silica_config(self, name: str, density: float, teacher: str) -> SilicaConfig:
        """The generator's config for the melt-quench runs at ``density`` with the BKS variant
        ``teacher``."""
        return SilicaConfig(
            name=f"{name}-{density}",
            teacher=teacher,
            runs=self.runs,
            crystal_repeats=self.crystal_repeats,
            crystal_frames=self.crystal_frames,
            density=density,
            t_melt=self.t_melt,
            equilibrate_ps=self.equilibrate_ps,
            melt_ps=self.melt_ps,
            anneal_ps=self.anneal_ps,
        )


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Stage 2: the same backbone and budget for every model (``rsajax.train`` keys)."""

    epochs: int
    model: dict[str, Any] | None  # None: the tiny backbone of ``rsajax demo`` (rsajax/demo.py)
    overrides: dict[str, Any]  # nested training-config keys on top of rsajax.demo.train_config


@dataclasses.dataclass(frozen=True)
class MDSpec:
    """Stage 3, one protocol for all models (times in ps, temperatures in K, rates in K/ps).

    Melt (NVT Langevin at the start glass's density): heat from ``t_glass`` to ``t_melt`` in
    ``heat_ps``, hold ``hot_ps`` (stage ``hot``: the melt check and the hot-liquid frames).
    Quench (Nose-Hoover NPT at ``pressure_GPa``, so the density is a result): a linear ramp to
    ``t_glass`` at ``quench_rate``, then hold ``glass_ps`` (stage ``glass``: the analysed
    frames). ``frame_every`` maps stages to steps between frames.
    """

    replicas: int
    heat_ps: float
    hot_ps: float
    quench_rate: float
    glass_ps: float
    frame_every: dict[str, int]
    t_melt: float = 6000.0
    t_glass: float = 300.0
    pressure_GPa: float = 0.0
    dt_fs: float = 1.0
    friction_per_fs: float = 0.02
    tau_T_fs: float = 100.0
    tau_P_fs: float = 1000.0
    log_every: int = 10
    records_per_chunk: int = 10
    checkpoint_every: int = 5  # chunks
    liquid_fraction: float = 0.5  # the last half of the hot stage's frames is the liquid

    @property
    def quench_K_per_s(self) -> float:
        return self.quench_rate * 1e12


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """Stage 4: S(Q) grid and how many frames per replica the ring search reads."""

    ring_frames: int
    ring_engine: str = "python"  # or "matscipy" (about 10x faster, the same once L >~ 2 rings)
    q_max: float = 12.0
    shell_width: float = 0.05


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    data: DataSpec
    train: TrainSpec
    md: MDSpec
    analysis: AnalysisSpec
    seed: int = 0
    #: The BKS variant that labels the data and is melt-quenched as the teacher
    #: (``rsajax.teachers.bks.VARIANTS``): the glass studies' 5.5 A short-range cut, whose 0 GPa
    #: glass has a density near the experiment's; with the 10 A cut (``bks``) it is 2.67 g/cm3
    #: (``teacher_cut.py``; README, "The teacher").
    teacher: str = "bks-glass"


#: Loss weights of both presets: those of experiments/long_range/configs/silica_bks.yaml with the
#: stress weighted 1000 (a 1 GPa error counts like a 20 meV/A force error; there it halved both
#: models' stress errors): NPT makes the density a prediction of the stress.
STUDY_LOSS = {"energy_weight": 10.0, "forces_weight": 100.0, "stress_weight": 1000.0}
#: The last quarter of the epochs weights the energy 1000 (forces 100, stress as above, lr 1e-3;
#: ``rsajax.train`` stage two). Without it both models leave how the energy changes with density
#: unlearnt: on experiments/long_range's silica data it took the test energy error of SR-MACE
#: from 17.4 to 4.1 and of RSA-MACE from 25.5 to 4.6 meV/atom (README there). Not in ``quick``
#: (8 epochs of the demo's tiny model: a test of the machinery, not of the models).
STUDY_STAGE_TWO = {"fraction": 0.25}

#: Densities (g/cm3) of the training melt-quench runs of ``cpu`` and ``full``. Chosen when the
#: teacher was ``bks`` (10 A cut), whose melt-quench at 0 GPa went to 2.6-2.7 g/cm3 (the models
#: must have seen the densities they melt-quench at); with ``bks-glass`` the glass is near 2.3 and
#: the upper densities cover the compressed states an NPT quench passes through. ``quick`` keeps
#: 2.0-2.4.
STUDY_DENSITIES = (2.0, 2.2, 2.4, 2.6, 2.8)

#: The backbone of ``experiments/long_range/configs/silica_bks.yaml``, twice as wide.
FULL_MODEL = {
    "r_max": 5.0,
    "num_bessel": 8,
    "max_ell": 2,
    "hidden_irreps": "32x0e+32x1o",
    "correlation": 3,
    "num_interactions": 2,
    "MLP_irreps": "16x0e",
    "radial_MLP": [64, 64, 64],
}

QUICK = Preset(
    name="quick",
    data=DataSpec(
        densities=(2.0, 2.2, 2.4),
        runs=(
            MeltQuenchRun(
                32,
                melt_frames=5,
                quench_frames=14,
                anneal_frames=4,
                strained_frames=5,
                quench_ps=2.0,
            ),
        ),  # fmt: skip
        crystal_repeats=(("alpha-quartz", (2, 2, 2)), ("beta-cristobalite", (2, 1, 1))),
        crystal_frames=4,
        # 144 atoms (L = 12.9 A): 6000 K liquid, a 3.8e15 K/s quench, a 300 K glass (the start)
        test_boxes=(
            TestBox(
                48,
                2.2,
                6000.0,
                equilibrate=500,
                hot_frames=2,
                every=200,
                t_cold=300.0,
                quench_steps=1500,
                quench_frames=3,
                cold_frames=2,
            ),
        ),  # fmt: skip
        equilibrate_ps=0.5,
        melt_ps=1.0,
        anneal_ps=0.5,
    ),
    train=TrainSpec(
        epochs=8,
        model=None,
        overrides={"data": {"batch_size": 4}, "loss": STUDY_LOSS, "progress_bar": False},
    ),
    md=MDSpec(
        replicas=2,
        heat_ps=0.2,
        hot_ps=3.0,  # at 2 ps one teacher replica reached an O MSD of 6.8 A^2 (< 7)
        quench_rate=5700.0,  # 6000 -> 300 K in 1 ps: 5.7e15 K/s
        glass_ps=0.4,
        tau_P_fs=250.0,  # the barostat must act within the 1.4 ps of NPT
        frame_every={"heat": 50, "hot": 50, "quench": 200, "glass": 50},
    ),
    analysis=AnalysisSpec(ring_frames=4),
)

FULL = Preset(
    name="full",
    data=DataSpec(
        densities=STUDY_DENSITIES,
        runs=(
            MeltQuenchRun(
                216,
                melt_frames=40,
                quench_frames=160,
                anneal_frames=40,
                strained_frames=40,
                quench_ps=40.0,
            ),
            MeltQuenchRun(
                64,
                melt_frames=20,
                quench_frames=80,
                anneal_frames=20,
                strained_frames=20,
                quench_ps=20.0,
            ),
        ),  # fmt: skip
        crystal_repeats=(("alpha-quartz", (4, 4, 4)), ("beta-cristobalite", (3, 3, 3))),
        crystal_frames=30,
        test_boxes=(
            # 3000 atoms (L = 34.7 A): the start glass, quenched at 1e14 K/s
            TestBox(
                1000,
                2.2,
                6000.0,
                equilibrate=5000,
                hot_frames=2,
                every=1000,
                t_cold=300.0,
                quench_steps=57000,
                quench_frames=3,
                cold_frames=1,
            ),
            # 648 atoms at 2.4 g/cm3: a 4500 K liquid and its quench
            TestBox(
                216,
                2.4,
                4500.0,
                equilibrate=3000,
                hot_frames=4,
                every=500,
                t_cold=300.0,
                quench_steps=10000,
                quench_frames=4,
                cold_frames=2,
            ),
        ),  # fmt: skip
        equilibrate_ps=2.0,
        melt_ps=10.0,
        anneal_ps=5.0,
    ),
    train=TrainSpec(
        epochs=200,
        model=FULL_MODEL,
        overrides={
            "data": {"batch_size": 8, "valid_batch_size": 16, "num_buckets": 3},
            "loss": STUDY_LOSS,
            "stage_two": STUDY_STAGE_TWO,
            "schedule": {"kind": "cosine", "warmup_steps": 200, "final_lr_factor": 0.02},
            "checkpoint": {"every_steps": 500},
            "progress_bar": False,
        },
    ),
    md=MDSpec(
        replicas=4,
        heat_ps=1.0,
        hot_ps=10.0,
        quench_rate=57.0,  # 6000 -> 300 K in 100 ps: 5.7e13 K/s
        glass_ps=10.0,
        frame_every={"heat": 100, "hot": 100, "quench": 2000, "glass": 500},
        records_per_chunk=20,
        checkpoint_every=10,
    ),
    analysis=AnalysisSpec(ring_frames=10, ring_engine="matscipy"),
)

#: The backbone of ``experiments/long_range/configs/silica_bks.yaml`` (trained there on 264 frames
#: in 11-15 minutes on 2 cores), the model of the ``cpu`` preset.
CPU_MODEL = dict(FULL_MODEL, hidden_irreps="16x0e+16x1o", radial_MLP=[32, 32])

#: Between the two: boxes and replicas that resolve the FSDP when merged (4 x 384 = 1536 atoms,
#: SILICA.md's "about 1500 atoms or more ... or merge several replicas"), a quench 10 times
#: slower than quick's and 10 times faster than full's, and models trained until their curves
#: flatten, sized so that a 2-core CPU runs it in the background over several sessions
#: (checkpointed, ``--resume``) when no GPU is lent.
CPU = Preset(
    name="cpu",
    data=DataSpec(
        densities=STUDY_DENSITIES,
        runs=(
            MeltQuenchRun(
                64,
                melt_frames=12,
                quench_frames=40,
                anneal_frames=10,
                strained_frames=12,
                quench_ps=10.0,
            ),
            MeltQuenchRun(
                32,
                melt_frames=8,
                quench_frames=24,
                anneal_frames=6,
                strained_frames=8,
                quench_ps=5.0,
            ),
        ),  # fmt: skip
        crystal_repeats=(("alpha-quartz", (2, 2, 2)), ("beta-cristobalite", (2, 2, 1))),
        crystal_frames=10,
        test_boxes=(
            # 384 atoms (L = 18.0 A): 6000 K liquid, a 5.7e14 K/s quench, a 300 K glass (the start)
            TestBox(
                128,
                2.2,
                6000.0,
                equilibrate=2000,
                hot_frames=2,
                every=500,
                t_cold=300.0,
                quench_steps=10000,
                quench_frames=3,
                cold_frames=1,
            ),
            # 192 atoms at 2.4 g/cm3: a 4500 K liquid and its quench
            TestBox(
                64,
                2.4,
                4500.0,
                equilibrate=2000,
                hot_frames=2,
                every=500,
                t_cold=300.0,
                quench_steps=5000,
                quench_frames=2,
                cold_frames=1,
            ),
        ),  # fmt: skip
        equilibrate_ps=2.0,
        melt_ps=3.0,
        anneal_ps=2.0,
    ),
    train=TrainSpec(
        epochs=60,
        model=CPU_MODEL,
        overrides={
            "data": {"batch_size": 4, "valid_batch_size": 8, "num_buckets": 2},
            "loss": STUDY_LOSS,
            "stage_two": STUDY_STAGE_TWO,
            "schedule": {"kind": "cosine", "warmup_steps": 50, "final_lr_factor": 0.05},
            "checkpoint": {"every_steps": 200},
            "progress_bar": False,
        },
    ),
    md=MDSpec(
        replicas=4,
        heat_ps=0.5,
        hot_ps=4.0,
        quench_rate=570.0,  # 6000 -> 300 K in 10 ps: 5.7e14 K/s
        glass_ps=3.0,
        frame_every={"heat": 100, "hot": 100, "quench": 1000, "glass": 200},
        records_per_chunk=20,
        checkpoint_every=5,
    ),
    analysis=AnalysisSpec(ring_frames=8, ring_engine="matscipy"),
)

PRESETS = {p.name: p for p in (QUICK, CPU, FULL)}


def train_config(
    preset: Preset, train_file: str, out: str, long_range: bool, seed_offset: int = 0
) -> dict:
    """The training config of one model: ``rsajax.demo.train_config`` with the preset's backbone
    and budget; SR and RSA differ only in ``model.long_range`` (``default`` for RSA); the seed is
    the preset's plus ``seed_offset`` (another training of the same model)."""
    from rsajax.demo import train_config as demo_config

    config = demo_config(train_file, out, preset.train.epochs, long_range)
    if preset.train.model is not None:
        config["model"] = dict(preset.train.model, long_range="default" if long_range else None)
    config["seed"] = preset.seed + seed_offset
    return merge(config, preset.train.overrides)


def merge(base: dict, changes: dict) -> dict:
    """``base`` updated by ``changes`` recursively (nested dicts merge, other values replace)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
