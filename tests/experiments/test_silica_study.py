"""experiments/silica_study: presets, the data filter, and the analysis -> summary.json path on
small synthetic glasses (the stages themselves run in the quick preset, tens of minutes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments.silica_study import analysis, presets, report  # noqa: E402
from experiments.silica_study.data import (  # noqa: E402
    TeacherMismatch,
    check_teacher,
    phase_of,
    split_extxyz,
    write_filtered,
)
from experiments.silica_study.melt_quench import phases  # noqa: E402


def test_every_preset_uses_the_glass_teacher_and_folders_never_mix_teachers(tmp_path):
    from rsajax.teachers.bks import VARIANTS

    assert {p.teacher for p in presets.PRESETS.values()} == {"bks-glass"}
    assert presets.CPU.data.silica_config("cpu", 2.2, "bks-glass").teacher == "bks-glass"
    preset = presets.CPU
    assert preset.teacher in VARIANTS
    fresh = tmp_path / "fresh" / "data"
    check_teacher(preset, fresh)  # a new folder is marked with the preset's teacher
    assert (fresh / "parts" / "teacher.txt").read_text().strip() == "bks-glass"
    check_teacher(preset, fresh)  # and accepted again
    # a finished data stage of the 10 A teacher, and one from before teachers were recorded
    for made_by in ("bks", None):
        old = tmp_path / f"old_{made_by}" / "data"
        old.mkdir(parents=True)
        summary = {"preset": "cpu"} | ({"teacher": made_by} if made_by else {})
        (old / "data.json").write_text(json.dumps(summary))
        with pytest.raises(TeacherMismatch, match="made with the teacher 'bks'.*uses 'bks-glass'"):
            check_teacher(preset, old, mark_new=False)
    # pieces of an unfinished data stage without a mark are from before the record: bks
    pieces = tmp_path / "pieces" / "data" / "parts"
    pieces.mkdir(parents=True)
    (pieces / "crystals.xyz").write_text("")
    with pytest.raises(TeacherMismatch):
        check_teacher(preset, pieces.parent)


def test_models_option_limits_training_and_melt_quench():
    from experiments.silica_study import run

    args = run.parse_args(["--preset", "cpu", "--models", "teacher", "rsa"])
    assert run.md_models(args.ablation, args.models) == ("teacher", "rsa")
    assert run.trained_models(args.ablation, args.models) == ("rsa",)
    every = run.parse_args(["--ablation"])
    assert run.md_models(every.ablation, every.models) == presets.MODELS + presets.ABLATION_MODELS
    assert run.trained_models(True, ["teacher"]) == ()  # the teacher needs no training


def test_seeds_option_adds_other_trainings_of_sr_and_rsa(tmp_path):
    from experiments.silica_study import run
    from experiments.silica_study.training import run_spec

    args = run.parse_args(["--preset", "cpu", "--seeds", "3"])
    assert run.trained_models(args.ablation, args.models, args.seeds) == (
        "sr", "rsa", "sr_seed1", "rsa_seed1", "sr_seed2", "rsa_seed2",
    )  # fmt: skip
    only = run.parse_args(["--seeds", "2", "--models", "rsa_seed1"])
    assert run.md_models(only.ablation, only.models, only.seeds) == ("rsa_seed1",)
    with pytest.raises(SystemExit):
        run.parse_args(["--seeds", "0"])
    # a seed model repeats its base model's data and long range with another seed only
    assert run_spec("rsa_seed2") == ("train.xyz", True, 2)
    assert run_spec("sr_no_supercooled") == ("train_no_supercooled.xyz", False, 0)
    assert presets.base_model("sr_seed1") == "sr" and presets.training_seed("sr") == 0
    preset = presets.CPU
    base = presets.train_config(preset, "t.xyz", str(tmp_path), True)
    other = presets.train_config(preset, "t.xyz", str(tmp_path), True, seed_offset=2)
    assert other.pop("seed") == base.pop("seed") + 2 and other == base


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_sr_and_rsa_configs_differ_only_in_long_range(name, tmp_path):
    from rsajax.train.config import load_config

    preset = presets.PRESETS[name]
    sr = load_config(presets.train_config(preset, "t.xyz", str(tmp_path), False)).to_dict()
    rsa = load_config(presets.train_config(preset, "t.xyz", str(tmp_path), True)).to_dict()
    # the model section resolves the preset when read (rsajax.nn.model.MACEArchitecture)
    default = load_config({"model": {"r_max": rsa["model"]["r_max"], "long_range": "default"}})
    resolved = default.to_dict()["model"]["long_range"]
    assert sr["model"].pop("long_range") is None and rsa["model"].pop("long_range") == resolved
    assert sr == rsa and sr["epochs"] == preset.train.epochs


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_protocol_melts_then_quenches_at_zero_pressure(name):
    md = presets.PRESETS[name].md
    (melt_name, melt, s1), (quench_name, npt, s2) = phases(md)
    assert (melt_name, melt.kind, quench_name, npt.kind) == (
        "melt",
        "nvt_langevin",
        "quench",
        "npt",
    )
    chunk = md.log_every * md.records_per_chunk
    assert s1.steps % chunk == 0 and s2.steps % chunk == 0
    assert s1.labels == ("heat", "hot") and s2.labels == ("quench", "glass")
    hot = s1.T_K[s1.stage == 1]
    assert hot.min() == md.t_melt >= 4000.0 and len(hot) >= 2000  # >= 2 ps at >= 4000 K
    ramp = s2.T_K[s2.stage == 0]
    assert ramp[0] < md.t_melt and ramp[-1] == md.t_glass
    assert np.allclose(np.diff(ramp), -md.quench_rate * md.dt_fs / 1000.0)
    assert np.all(s2.pressure_GPa == 0.0) and s2.T_K[-1] == md.t_glass
    for label in s1.labels + s2.labels:
        assert md.frame_every[label] % md.log_every == 0
    assert md.replicas >= 2


def test_full_is_larger_and_slower_than_quick_and_cpu_lies_between():
    from rsajax.teachers.structures import cubic_box_length

    quick, cpu, full = presets.QUICK, presets.CPU, presets.FULL
    n = {p.name: 3 * p.data.test_boxes[0].n_units for p in (quick, cpu, full)}
    assert n["full"] >= 1500 > n["quick"]  # SILICA.md: about 1500 atoms resolve the FSDP
    # cpu resolves it with merged replicas ("or merge several replicas")
    assert cpu.md.replicas * n["cpu"] >= 1500 > n["cpu"] > n["quick"]
    assert full.md.quench_rate < quick.md.quench_rate / 10
    assert full.md.quench_rate < cpu.md.quench_rate < quick.md.quench_rate
    assert full.md.replicas > quick.md.replicas and cpu.md.replicas > quick.md.replicas
    assert cpu.train.epochs > quick.train.epochs
    # the MD start box (test box 0) is wide enough for r_max 5 + skins at 10% compression
    for p in (quick, cpu):
        box0 = p.data.test_boxes[0]
        assert 0.9 * cubic_box_length(box0.n_units, box0.density) > 2 * (5.0 + 0.7)
    for p in (quick, cpu, full):
        assert p.data.t_melt >= p.data.liquid_K == 4000.0 and len(p.data.densities) >= 3


def test_phases_of_frames_and_the_no_supercooled_file(tmp_path):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read

    from rsajax.teachers.generate import write_extxyz

    infos = [
        {"stage": "crystal", "temperature_K": 0.0},
        {"stage": "melt", "temperature_K": 6000.0},
        {"stage": "quench", "temperature_K": 2500.0},
        {"stage": "strained", "temperature_K": 3999.0},
        {"stage": "anneal", "temperature_K": 300.0},
        {"stage": "quench", "temperature_K": 1500.0},
    ]
    frames = []
    for k, info in enumerate(infos):
        atoms = Atoms("SiO2", positions=np.eye(3) * (1.0 + k), cell=np.eye(3) * 8, pbc=True)
        atoms.info.update(info)
        atoms.calc = SinglePointCalculator(
            atoms, energy=-k, forces=np.full((3, 3), 0.1 * k), stress=np.zeros((3, 3))
        )
        frames.append(atoms)
    phases_ = [phase_of(a.info, 4000.0, 1500.0) for a in frames]
    assert phases_ == ["crystal", "liquid", "supercooled", "supercooled", "glass", "glass"]
    with pytest.raises(ValueError, match="temperature_K"):
        phase_of({"stage": "melt"}, 4000.0, 1500.0)
    source, target = tmp_path / "train.xyz", tmp_path / "kept.xyz"
    write_extxyz(str(source), frames)
    assert len(split_extxyz(source.read_text())) == 6
    assert write_filtered(source, target, [p != "supercooled" for p in phases_]) == 4
    kept = read(target, ":")
    assert [a.get_potential_energy() for a in kept] == [0.0, -1.0, -4.0, -5.0]
    np.testing.assert_allclose(kept[2].get_forces(), 0.4)


def test_split_frames_takes_glass_and_the_end_of_the_hot_stage():
    from ase import Atoms

    stages = ["heat"] * 2 + ["hot"] * 6 + ["quench"] * 2 + ["glass"] * 3
    frames = [Atoms("Si", info={"stage": s, "step": k}) for k, s in enumerate(stages)]
    glass, liquid = analysis.split_frames(frames, 0.5)
    assert [a.info["step"] for a in glass] == [10, 11, 12]
    assert [a.info["step"] for a in liquid] == [5, 6, 7]


def fake_run(name: str, rng: np.random.Generator, peak: float, n_vectors: int):
    """A RunAnalysis with a noisy FSDP of ``n_vectors`` per shell (the real fit and verdict),
    angle distributions and rings drawn at random: the summary logic without a trajectory."""
    from rsajax.analysis.angles import angle_distribution
    from rsajax.analysis.fsdp import fit_fsdp
    from rsajax.analysis.report import RunAnalysis

    q = np.arange(0.5, 3.5, 0.05)
    s = 1.0 + 0.5 * np.exp(-0.5 * ((q - peak) / 0.17) ** 2)
    counts = np.full(len(q), n_vectors)
    s_noisy = s * (1.0 + rng.normal(size=len(q)) / np.sqrt(counts))
    fit = fit_fsdp(q, s_noisy, n_vectors=counts)
    shells = SimpleNamespace(q=q, n_vectors=counts)  # the part of a StructureFactor used here
    return RunAnalysis(
        name=name, n_frames=2, n_atoms=144, density=2.3 + 0.01 * rng.normal(), sq=shells,
        s_neutron=s_noisy, s_xray=s_noisy, fsdp_neutron=fit, fsdp_xray=fit,
        r_sio_mean=1.61, sio_cutoff=2.1, coordination_si=4.0, coordination_o=2.0,
        angles={
            "Si-O-Si": angle_distribution(rng.normal(148.0, 12.0, 500)),
            "O-Si-O": angle_distribution(rng.normal(109.4, 5.0, 500)),
        },
        rings=rng.integers(0, 20, 11),
    )  # fmt: skip


@pytest.fixture(scope="module")
def synthetic_entries():
    """Entries of three 'models', 2 replicas each, whose FSDP shells hold few vectors."""
    rng = np.random.default_rng(0)
    entries = {}
    for m, peak in {"teacher": 1.5, "sr": 1.55, "rsa": 1.52}.items():
        runs = [fake_run(f"{m}{k}", rng, peak, 20) for k in range(2)]
        merged = fake_run(m, rng, peak, 40)
        merged.rings = np.sum([r.rings for r in runs], axis=0)
        built = {"glass": (merged, runs), "liquid": (merged, runs)}
        melt = [{"melted": True, "msd_A2": {"O": 9.0}, "ring_distance": 0.2}] * 2
        md = {
            "seconds": 1.0,
            "phases": {"melt": {"atom_steps_per_s": 5.0, "steps": 9, "steps_timed": 9}},
        }
        entries[m] = analysis.model_entry(built, melt, md)
    entries["experiment"] = analysis.experiment_entry(None)
    return entries


def test_summary_json_has_the_issue_format(synthetic_entries, tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"full": {"teacher": {"fsdp_position": 1.5}}}))
    data = report.merge_summary(path, "quick", report.summary_section(synthetic_entries))
    assert data["full"] == {"teacher": {"fsdp_position": 1.5}}  # other presets are kept
    quick = json.loads(path.read_text())["quick"]
    assert set(quick) == {"teacher", "sr", "rsa", "experiment"}
    for m in ("teacher", "sr", "rsa", "experiment"):
        for key in ("fsdp_position", "fsdp_height", "fsdp_position_err", "ring_fractions",
                    "density", "si_o_si_mean"):  # fmt: skip
            assert key in quick[m], (m, key)
    sr = quick["sr"]
    # sizes 2-10 of the 11-entry histogram (0 and 1 are no rings)
    assert set(sr["ring_fractions"]) == {str(n) for n in range(2, 11)}
    assert sr["melted"] == [True, True]
    assert 1.0 < sr["density"] < 3.0 and 60.0 < sr["si_o_si_mean"] < 180.0
    # 20-40 vectors per shell resolve no FSDP: the verdict says so, with the reasons
    assert not sr["fsdp_resolved"] and synthetic_entries["sr"]["fsdp_problems"]
    # band mean of 1 + 0.5 exp(-(q - 1.55)^2 / (2 0.17^2)) over 1.0-2.2: 1 + 0.5 * 0.355
    assert sr["fsdp_band_mean"] == pytest.approx(1.178, abs=0.03)
    assert 0.0 < sr["fsdp_band_mean_err"] < 0.05
    assert quick["experiment"]["fsdp_position"] == pytest.approx(1.47)


def test_comparison_names_a_model_only_beyond_the_spread(synthetic_entries):
    rows = {r["quantity"]: r for r in analysis.compare_to_teacher(synthetic_entries)}
    assert rows["FSDP height"]["verdict"].startswith("FSDP not resolved")
    # the band mean needs no resolved peak: it is compared, with the replicas' spread
    band = rows["FSDP band mean S_N, 1.0-2.2 1/A"]
    assert not band["verdict"].startswith(("FSDP not resolved", "missing"))
    assert band["sr_minus_teacher_err"] > 0.0
    fake = {
        "teacher": {"density": 2.30, "density_err": 0.01},
        "sr": {"density": 2.20, "density_err": 0.01},
        "rsa": {"density": 2.29, "density_err": 0.01},
    }
    rows = {r["quantity"]: r for r in analysis.compare_to_teacher(fake)}
    assert rows["density (g/cm3)"]["verdict"].startswith("RSA-MACE closer")
    fake["sr"]["density"] = 2.28
    rows = {r["quantity"]: r for r in analysis.compare_to_teacher(fake)}
    assert rows["density (g/cm3)"]["verdict"].startswith("not told apart")
    assert rows["density (g/cm3)"]["sr_minus_teacher"] == pytest.approx(-0.02)


def test_markdown_table_shows_every_model_and_the_verdict(synthetic_entries):
    details = {"comparison": {"sr_vs_rsa": analysis.compare_to_teacher(synthetic_entries)}}
    text = report.markdown_table("quick", synthetic_entries, details)
    assert "| quantity | BKS teacher | SR-MACE | RSA-MACE | experiment |" in text
    assert "**The FSDP is not resolved**" in text and "(not resolved)" in text
    assert "which is closer to the teacher?" in text
    assert "| MD time, all sittings (s) | 1 | 1 | 1 |" in text
    # a melt-quench resumed from a checkpoint written before sittings were timed says so
    old = {"md_seconds": 3000.0, "md_steps": 17600, "md_steps_timed": 4600}
    assert report.md_time(old) == "3000 (4600 of 17600 steps timed)"


def test_training_table_lists_every_training_and_the_seed_scatter():
    def errors(e, f, stress=0.04):
        return {"energy_rmse": e, "energy_rmse_centered": e / 2, "energy_mean_error": -e / 3,
                "force_rmse": f, "stress_rmse_GPa": stress, "train_seconds": 100.0}  # fmt: skip

    training = {"sr": errors(1.0, 100.0), "rsa": errors(1.3, 15.0), "sr_seed1": errors(2.0, 110.0)}
    training["rsa"]["stress_rmse_GPa"] = None  # a test set without stresses
    lines = report.training_table(training)
    assert "| SR-MACE, training seed 1 | 2.00 | 1.00 | -0.67 | 110.0 | 0.040 | 100 |" in lines
    assert "| RSA-MACE | 1.30 | 0.65 | -0.43 | 15.0 | - | 100 |" in lines
    # the seed scatter of SR (two seeds: std = |a - b| / sqrt(2)); none for one RSA seed
    assert any(
        row.startswith("| SR-MACE: mean ± std over 2 seeds | 1.50 ± 0.71 |") for row in lines
    )
    assert not any("RSA-MACE: mean" in row for row in lines)
    assert report.training_table({}) == []


def test_fsdp_figure_has_the_band_mean_panel(synthetic_entries, tmp_path):
    path = report.plot_fsdp(synthetic_entries, tmp_path / "fsdp.png")
    assert path.stat().st_size > 20_000
    assert all(e["liquid"]["fsdp_band_mean"] is not None for m, e in synthetic_entries.items()
               if m != "experiment")  # fmt: skip


def test_trainings_figure_puts_every_training_against_the_teacher(synthetic_entries, tmp_path):
    entries = dict(synthetic_entries, sr_seed1=synthetic_entries["rsa"])
    pooled = {"sr_pooled": analysis.pool_trainings(entries, ["sr", "sr_seed1"])}
    path = report.plot_trainings(entries, tmp_path / "trainings.png", pooled)
    assert path.stat().st_size > 30_000
    no_teacher = {m: e for m, e in entries.items() if m != "teacher"}
    assert report.plot_trainings(no_teacher, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_verdicts_say_when_two_replicas_make_the_spread_uncertain():
    fake = {
        m: {"density": d, "density_err": 0.01, "replicas": 2}
        for m, d in (("teacher", 2.30), ("sr", 2.20), ("rsa", 2.29))
    }
    rows = {r["quantity"]: r for r in analysis.compare_to_teacher(fake)}
    assert rows["density (g/cm3)"]["verdict"].endswith("the spread itself is uncertain")


def test_long_range_split_finds_the_stage_errors_of_each_test_group(tmp_path):
    import ase
    import ase.io

    frames = []
    for stage, n, density in (("liquid", 6, 2.2), ("quench", 3, 2.4)):
        atoms = ase.Atoms("SiO2" * (n // 3), cell=np.eye(3) * 5.0, pbc=True)
        atoms.info.update(stage=stage, density_g_cm3=density, far_energy=-0.5 * n)
        frames.append(atoms)
    ase.io.write(tmp_path / "test.xyz", frames)
    errors = {"test:liquid:6@2.2": {"energy_error_mean": 1.5, "long_range_energy_per_atom": -0.4}}
    training = {"sr": {"stage_errors": errors}, "rsa": {"stage_errors": errors}}
    rows = {r["stage"]: r for r in report.long_range_split(tmp_path / "test.xyz", training)}
    assert rows["liquid"]["atoms"] == 6 and rows["liquid"]["far_energy_per_atom"] == -0.5
    assert rows["liquid"]["sr_error"] == rows["liquid"]["rsa_error"] == 1.5
    assert rows["liquid"]["rsa_long_range_per_atom"] == -0.4
    assert "sr_error" not in rows["quench"]  # no stage errors for that group


def test_teacher_cut_groups_liquid_and_glass_frames_and_adds_the_kinetic_pressure(tmp_path):
    import ase
    import ase.io
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator

    from experiments.silica_study import teacher_cut

    frames = []
    runs = [("melt", 2.2, 6000.0), ("anneal", 2.2, 300.0), ("quench", 2.2, 3000.0)]
    for stage, density, temperature in [*runs, ("melt", 2.4, 6000.0)]:
        atoms = ase.Atoms("SiO2", positions=np.eye(3), cell=np.eye(3) * 5.0, pbc=True)
        atoms.info.update(stage=stage, temperature_K=temperature, run_density_g_cm3=density)
        stress = -0.01 * np.eye(3)  # ASE sign: a pressure of 0.01 eV/A^3
        atoms.calc = SinglePointCalculator(
            atoms, energy=0.0, forces=np.zeros((3, 3)), stress=stress
        )
        frames.append(atoms)
    path = tmp_path / "train.xyz"
    ase.io.write(path, frames)
    groups = teacher_cut.frame_groups(path, per_group=4)
    assert set(groups) == {("liquid 6000 K", 2.2), ("glass 300 K", 2.2), ("liquid 6000 K", 2.4)}
    liquid = ase.io.read(path, index=0)
    expected = (0.01 + 3 * units.kB * 6000.0 / 125.0) * teacher_cut.GPA
    assert teacher_cut.pressure_GPa(liquid, 6000.0) == pytest.approx(expected)
    assert teacher_cut.GPA == pytest.approx(1.0 / units.GPa)
    write_only_crystals = tmp_path / "crystals.xyz"
    ase.io.write(write_only_crystals, frames[2])
    with pytest.raises(ValueError, match="no melt or anneal frames"):
        teacher_cut.frame_groups(write_only_crystals, per_group=4)


def test_pooled_trainings_take_the_larger_of_seed_spread_and_replica_noise():
    entries = {
        "teacher": {"density": 2.30, "density_err": 0.01, "replicas": 4},
        "sr": {"density": 2.20, "density_err": 0.01, "replicas": 4},
        "sr_seed1": {"density": 2.26, "density_err": 0.01, "replicas": 4},
        "rsa": {"density": 2.29, "density_err": 0.01, "replicas": 4},
        "rsa_seed1": {"density": 2.291, "density_err": 0.01, "replicas": 4},
    }
    sr = analysis.pool_trainings(entries, ["sr", "sr_seed1", "sr_seed2"])
    assert sr["trainings"] == ["sr", "sr_seed1"] and sr["density"] == pytest.approx(2.23)
    # seeds 0.06 apart: std/sqrt(2) = 0.03 beats the replica part sqrt(2) 0.01 / 2
    assert sr["density_err"] == pytest.approx(0.03)
    rsa = analysis.pool_trainings(entries, ["rsa", "rsa_seed1"])
    assert rsa["density_err"] == pytest.approx(0.01 / np.sqrt(2), abs=1e-4)  # replica noise
    assert analysis.pool_trainings(entries, ["sr_no_supercooled", "sr"]) is None  # one training

    from experiments.silica_study import run

    comparison, pooled = run.study_comparisons(entries)
    assert set(pooled) == {"sr_pooled", "rsa_pooled"}
    assert list(comparison) == [
        "sr_pooled_vs_rsa_pooled", "sr_vs_rsa", "sr_vs_sr_seed1", "rsa_vs_rsa_seed1",
    ]  # fmt: skip
    rows = {r["quantity"]: r for r in comparison["sr_pooled_vs_rsa_pooled"]}
    # 0.06 between SR's two trainings: pooled, RSA is closer by 0.059 / 0.031 = 1.9 x: not told
    assert rows["density (g/cm3)"]["verdict"].startswith("not told apart")
    rows = {r["quantity"]: r for r in comparison["sr_vs_rsa"]}
    assert rows["density (g/cm3)"]["verdict"].startswith("RSA-MACE closer")  # seed 0 alone
    text = report.markdown_table(
        "cpu", {"experiment": {}}, {"comparison": comparison, "pooled": pooled}
    )
    assert "## SR-MACE, trainings pooled vs RSA-MACE, trainings pooled" in text
    assert "the mean over its trainings (SR-MACE, SR-MACE, training seed 1," in text
    assert "Two trainings of the same model" in text


def test_nvt_phases_take_the_fixed_box_system_with_the_same_energy():
    """An RSA-MACE's melt (NVT) runs on the library's fixed-box system: no strain skin, a k-set of
    exactly the vectors within k_cut (a strained box is refused), and the NPT system's energy."""
    import ase.io

    from experiments.silica_study import melt_quench
    from rsajax.nn.model import MACEConfig, init_model
    from rsajax.nn.rsa import RSAConfig
    from tests.nn.rsa.test_rsa_mace_mesh import RSA, TINY

    atoms = ase.io.read(REPO / "rsajax" / "data" / "default" / "silica_small.xyz", index=0)
    model, variables = init_model(MACEConfig(**TINY, long_range=RSAConfig(**RSA)), seed=0)
    npt = melt_quench.trained_system(model, variables, atoms)
    nvt = melt_quench.trained_system(model, variables, atoms, box_may_strain=False)
    assert nvt.strain_skin == 0.0 < npt.strain_skin
    R = np.asarray(atoms.get_scaled_positions())
    energies = [float(s.energy_fn(R, s.neighbor_fn.allocate(R))) for s in (npt, nvt)]
    assert abs(energies[1] - energies[0]) <= 1e-9 * abs(energies[0]), energies
    strained = (1.1 * atoms.cell.array.T)[None]  # a box NPT could reach; NVT never does
    assert all(check(strained) is None for check in npt.box_checks)
    assert any(check(strained) is not None for check in nvt.box_checks)


def test_an_interrupted_melt_quench_resumes_and_times_all_its_sittings(tmp_path, monkeypatch):
    """The teacher's melt-quench of a 192-atom glass on a protocol of tens of steps, stopped
    after the melt phase's second checkpoint and resumed: no step twice in the thermo log, and
    done.json's seconds cover every step (the checkpoint carries the first sitting's time)."""
    import ase.io
    import jax

    from experiments.silica_study import melt_quench
    from experiments.silica_study.training import ResumeNeeded

    start = ase.io.read(REPO / "rsajax" / "data" / "default" / "silica_small.xyz", index=0)
    md = presets.MDSpec(
        replicas=2, heat_ps=0.02, hot_ps=0.02, quench_rate=114_000.0, glass_ps=0.02,
        frame_every={"heat": 10, "hot": 10, "quench": 10, "glass": 10},
        log_every=5, records_per_chunk=2, checkpoint_every=1,
    )  # fmt: skip
    original = melt_quench._Writer.__call__

    def stop_after_second_chunk(self, step, *args):
        original(self, step, *args)
        if self.offset == 0 and step == 20:
            raise KeyboardInterrupt  # as a killed job, right after its checkpoint

    monkeypatch.setattr(melt_quench._Writer, "__call__", stop_after_second_chunk)
    out = tmp_path / "teacher"
    with pytest.raises(KeyboardInterrupt):
        melt_quench.run_model("teacher", None, start, md, out, 0, False, "bks-glass")
    assert jax.config.jax_enable_x64
    with np.load(out / "melt" / "checkpoint.npz") as f:
        first = json.loads(str(f["meta"]))
    assert first["steps_timed"] == 20 and first["seconds"] > 0.0
    with pytest.raises(ResumeNeeded):
        melt_quench.run_model("teacher", None, start, md, out, 0, False, "bks-glass")
    monkeypatch.setattr(melt_quench._Writer, "__call__", original)
    done = melt_quench.run_model("teacher", None, start, md, out, 0, True, "bks-glass")
    melt = done["phases"]["melt"]
    assert melt["steps"] == 40 and melt["steps_run_here"] == 20 and melt["steps_timed"] == 40
    assert melt["seconds"] > first["seconds"]
    assert done["phases"]["quench"]["steps_timed"] == done["phases"]["quench"]["steps"]
    thermo = (out / "rep0" / "thermo.jsonl").read_text().splitlines()
    steps = [json.loads(x)["step"] for x in thermo]
    assert steps == sorted(set(steps)) and steps[-1] == 40 + done["phases"]["quench"]["steps"]
    # the MD ran in float32 (its checkpoints hold float32 positions) and, interrupted or not,
    # left the suite's float64 setting alone
    with np.load(out / "quench" / "final.npz") as f:
        assert f["positions"].dtype == np.float32
    assert jax.config.jax_enable_x64


def test_validation_frames_finds_the_frame_that_carries_the_error():
    import ase

    from experiments.silica_study import validation_frames
    from rsajax.train.setup import validation_split

    reference = [np.zeros((2, 3)), np.zeros((3, 3))]
    predicted = [np.full((2, 3), 0.1), np.full((3, 3), 2.0)]
    errors = validation_frames.frame_errors(predicted, reference)
    np.testing.assert_allclose(errors, [6 * 0.01, 9 * 4.0])
    # the closest pair across the periodic boundary (0.2 A through the cell face, not 9.8)
    pair = ase.Atoms("SiO", positions=[[0.1, 0, 0], [9.9, 0, 0]], cell=[10, 10, 10], pbc=True)
    assert validation_frames.closest_pair(pair) == pytest.approx(0.2)
    # the split of rsajax.train, by seed: disjoint, complete, a tenth held out, reproducible
    valid, train = validation_split(620, 0.1, seed=0)
    assert len(valid) == 62 and sorted([*valid, *train]) == list(range(620))
    assert list(validation_split(620, 0.1, seed=0)[0]) == list(valid)
    assert list(validation_split(620, 0.1, seed=1)[0]) != list(valid)
