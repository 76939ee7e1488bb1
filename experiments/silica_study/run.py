"""The silica melt-quench study in one command: teacher data, SR and RSA training, melt-quench of
the teacher and both models (replicas via vmap), analysis against each other and experiment.

    python experiments/silica_study/run.py --preset quick
    python experiments/silica_study/run.py --preset full --resume          # on a GPU
    python experiments/silica_study/run.py --preset quick --ablation       # + no-supercooled runs
    python experiments/silica_study/run.py --preset quick --seeds 2        # + a second training

Stages (``--stages``, default all, in this order): ``data``, ``train``, ``md``, ``analyze``;
``--models`` limits training and melt-quench to some models (``--models teacher`` needs no
trained model).
Each skips what is finished; an interrupted training or melt-quench continues from its
checkpoints with ``--resume`` (without it the stage stops and says so). Work goes to ``--out``
(default ``runs/silica_study/<preset>``); the small results (``summary.json`` under the preset's
key, ``<preset>_table.md``, ``<preset>_details.json``, figures) to ``--results`` (default
``experiments/silica_study/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``experiments.silica_study`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.silica_study.presets import (
    ABLATION_MODELS,
    LABELS,
    MAX_SEEDS,
    MODELS,
    PRESETS,
    Preset,
    family,
    seed_models,
)
from experiments.silica_study.reuse import REPO

STAGES = ("data", "train", "md", "analyze")
RESULTS = REPO / "experiments" / "silica_study" / "results"
#: Where the NIMROD data is looked for (relative to the repository root), as in ``rsajax demo``.
EXPERIMENT = REPO.parent / "shared" / "silica_exp" / "SiO2_NIMROD.mint01"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--out", type=Path, default=None, help="work folder")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also train, melt-quench and analyse SR and RSA without the supercooled frames",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        choices=range(1, MAX_SEEDS + 1),
        metavar="N",
        help="training seeds per trained model (default 1): seed k > 0 adds sr_seed<k> and "
        f"rsa_seed<k>, trained and melt-quenched like sr and rsa (at most {MAX_SEEDS})",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS + ABLATION_MODELS + seed_models(MAX_SEEDS),
        default=None,
        metavar="MODEL",
        help="train and melt-quench only these (default: all; teacher, sr, rsa, the ablation's "
        "sr_no_supercooled and rsa_no_supercooled, and sr_seed<k>, rsa_seed<k>); the analysis "
        "takes every model whose melt-quench has finished",
    )
    parser.add_argument("--resume", action="store_true", help="continue from checkpoints")
    parser.add_argument("--redo-analysis", action="store_true", help="analyse again")
    parser.add_argument(
        "--from-state",
        action="store_true",
        help="first copy what experiments/silica_study/state/<preset>/ holds (trained models, "
        "finished or checkpointed melt-quenches, analyses; state.py) into the work folder",
    )
    parser.add_argument("--exp-path", type=Path, default=EXPERIMENT, help="NIMROD .mint01 file")
    parser.add_argument("--results", type=Path, default=RESULTS, help="small results go here")
    args = parser.parse_args(argv)
    args.out = args.out or REPO / "runs" / "silica_study" / args.preset
    return args


def md_models(ablation: bool, only: list[str] | None = None, seeds: int = 1) -> tuple[str, ...]:
    """The models melt-quenched (``only`` keeps a subset; ``seeds`` > 1 adds the other trainings
    of SR and RSA)."""
    models = MODELS + (ABLATION_MODELS if ablation else ()) + seed_models(seeds)
    return tuple(m for m in models if only is None or m in only)


def trained_models(
    ablation: bool, only: list[str] | None = None, seeds: int = 1
) -> tuple[str, ...]:
    """The melt-quenched models that are trained: all but the teacher."""
    return tuple(m for m in md_models(ablation, only, seeds) if m != "teacher")


def stage_data(preset: Preset, out: Path) -> dict:
    from experiments.silica_study import data

    return data.generate(preset, out / "data")


def stage_train(preset: Preset, out: Path, models, resume: bool) -> dict:
    from experiments.silica_study import training

    results = {}
    for model in models:
        log(f"train: {LABELS[model]}")
        results[model] = training.train_model(
            preset, model, out / "data", out / "train" / model, resume
        )
        skip = ("per_frame", "stage_errors")
        summary = {k: v for k, v in results[model].items() if k not in skip}
        log(f"train: {model} test errors {json.dumps(summary)}")
    return results


def stage_md(preset: Preset, out: Path, models, resume: bool) -> dict:
    import ase.io

    from experiments.silica_study import melt_quench
    from experiments.silica_study.training import ResumeNeeded
    from rsajax.md.simulation import BlowUpError

    start = ase.io.read(out / "data" / "start.extxyz")
    done = {}
    for model in models:
        md_dir = out / "md" / model
        failed = md_dir / "failed.json"
        if failed.is_file():
            log(f"md: {model} failed earlier ({json.loads(failed.read_text())['error']}); "
                f"delete {md_dir} to try again")  # fmt: skip
            continue
        model_dir = None if model == "teacher" else out / "train" / model / "model"
        try:
            done[model] = melt_quench.run_model(
                model, model_dir, start, preset.md, md_dir, preset.seed, resume, preset.teacher
            )
        except ResumeNeeded:
            raise
        except (BlowUpError, RuntimeError) as error:  # a model that fails MD is a result too
            log(f"!! md: {LABELS[model]} failed: {error}")
            md_dir.mkdir(parents=True, exist_ok=True)
            failed.write_text(json.dumps({"error": str(error)}, indent=1) + "\n")
    return done


def stage_analyze(preset: Preset, args) -> dict:
    """Analyse every model whose melt-quench finished; the details of the report.

    Each model's analysis is kept in ``OUT/analysis/<model>.json`` (its summary entry) and
    ``<model>.pkl`` (the merged glass and liquid, for the figures), tagged with its ``done.json``:
    a later call analyses only new or re-run models (``--redo-analysis``: all of them), so models
    melt-quenched in different calls, or on different machines (``state.py``), meet in one report.
    """
    from experiments.silica_study import analysis, report, training

    out = args.out
    entries, failed, train = {}, {}, {}
    for model in md_models(args.ablation, seeds=MAX_SEEDS):
        md_dir = out / "md" / model
        if (md_dir / "failed.json").is_file():
            error = json.loads((md_dir / "failed.json").read_text())["error"]
            failed[model] = f"the melt-quench failed: {error}"
            continue
        if not (md_dir / "done.json").is_file():
            continue
        try:
            entries[model] = analyzed_entry(model, preset, out, args.redo_analysis)
        except ValueError as error:  # e.g. a glass without Si-O bonds: reported, not hidden
            log(f"!! analyze: {LABELS[model]}: {error}")
            failed[model] = f"the analysis failed: {error}"
    entries["experiment"] = analysis.experiment_entry(args.exp_path)
    for model in trained_models(args.ablation, seeds=MAX_SEEDS):
        eval_path = out / "train" / model / "test_eval.json"
        if eval_path.is_file():
            evaluated = json.loads(eval_path.read_text())
            evaluated.pop("per_frame", None)
            stage_path = out / "train" / model / "stage_errors.json"
            if stage_path.is_file():
                evaluated["stage_errors"] = json.loads(stage_path.read_text())
            train[model] = evaluated
    comparison, pooled = study_comparisons(entries)
    details = dict(
        preset=preset.name,
        entries=entries,
        failed=failed,
        training=train,
        comparison=comparison,
        pooled=pooled,
        long_range_split=report.long_range_split(out / "data" / "test.xyz", train),
        curves={
            m: training.learning_curve(out / "train" / m)
            for m in trained_models(args.ablation, seeds=MAX_SEEDS)
            if training.is_finished(out / "train" / m)  # not a curve that is still growing
        },
    )
    target = out / "analysis" / "details.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(details, indent=1) + "\n")
    return details


def study_comparisons(entries: dict) -> tuple[dict, dict]:
    """The model-vs-teacher comparisons of the report, and the pooled trainings they use.

    With more than one training of SR and RSA (``--seeds``), first the trainings pooled
    (``analysis.pool_trainings``), then SR vs RSA at seed 0, each extra training against seed 0
    of the same model (training scatter alone), and the ablations.
    """
    from experiments.silica_study import analysis

    extra = seed_models(MAX_SEEDS)
    seeds = {b: [b, *(m for m in extra if family(m) == b)] for b in ("sr", "rsa")}
    pooled = {
        f"{b}_pooled": p
        for b, models in seeds.items()
        if (p := analysis.pool_trainings(entries, models)) is not None
    }
    pairs = [("sr_pooled", "rsa_pooled"), ("sr", "rsa")]
    pairs += [(models[0], m) for models in seeds.values() for m in models[1:]]
    pairs += [("sr", "sr_no_supercooled"), ("rsa", "rsa_no_supercooled")]
    everything = {**entries, **pooled}
    comparison = {
        f"{a}_vs_{b}": analysis.compare_to_teacher(everything, (a, b))
        for a, b in pairs
        if a in everything and b in everything
    }
    return comparison, pooled


def analyzed_entry(model: str, preset: Preset, out: Path, redo: bool) -> dict:
    """The summary entry of one melt-quenched model: from ``OUT/analysis/<model>.json`` when it
    was made from the same ``done.json``, else analysed now (and kept)."""
    from experiments.silica_study import analysis

    md_dir, folder = out / "md" / model, out / "analysis"
    done_text = (md_dir / "done.json").read_text()
    cached = folder / f"{model}.json"
    if cached.is_file() and (folder / f"{model}.pkl").is_file() and not redo:
        kept = json.loads(cached.read_text())
        if kept.get("md_done") == json.loads(done_text):
            log(f"analyze: {LABELS[model]} analysed earlier ({cached})")
            # timing fields follow done.json as this version reads it (cheap; no re-analysis)
            return {**kept["entry"], **analysis.md_timing(kept["md_done"])}
    log(f"analyze: {LABELS[model]}")
    md_summary = json.loads(done_text)
    runs = analysis.analyze_model(model, md_dir, preset)
    entry = analysis.model_entry(runs, md_summary["melt"], md_summary)
    _save_runs(folder, model, runs)
    cached.write_text(json.dumps({"md_done": md_summary, "entry": entry}, indent=1) + "\n")
    return entry


def write_results(preset: Preset, args, details: dict, setup: dict) -> None:
    """summary.json (this preset's key), details, Markdown table and figures in ``--results``."""
    from experiments.silica_study import report

    out, results = args.out, args.results
    details = dict(details, setup=setup)
    entries = details["entries"]
    results.mkdir(parents=True, exist_ok=True)
    name = preset.name
    pooled = details.get("pooled", {})
    section = report.summary_section({**entries, **pooled})
    report.merge_summary(results / "summary.json", name, section)
    (results / f"{name}_details.json").write_text(json.dumps(details, indent=1) + "\n")
    (results / f"{name}_table.md").write_text(report.markdown_table(name, entries, details))
    report.plot_fsdp(entries, results / f"{name}_fsdp.png")
    report.plot_trainings(entries, results / f"{name}_trainings.png", pooled)
    if details["curves"]:
        report.plot_learning_curves(details["curves"], results / f"{name}_learning_curves.png")
    _plot_saved(out / "analysis", entries, args.exp_path, results, name)
    log(f"analyze: results in {results} ({name}_table.md, summary.json, figures)")


def _save_runs(folder: Path, model: str, runs: dict) -> None:
    """Keep the merged glass and liquid analyses (pickled) for the figures of a later call."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{model}.pkl", "wb") as f:
        pickle.dump({kind: merged for kind, (merged, _) in runs.items()}, f)


def _plot_saved(folder: Path, entries: dict, exp_path: Path, results: Path, name: str) -> None:
    import dataclasses
    import pickle

    from rsajax.analysis.experiment import read_nimrod_mint01
    from rsajax.analysis.report import plot_comparison

    runs = {}
    for model in entries:
        path = folder / f"{model}.pkl"
        if path.is_file():
            with open(path, "rb") as f:
                runs[model] = pickle.load(f)
    if not runs:
        return
    exp = read_nimrod_mint01(exp_path) if exp_path and Path(exp_path).is_file() else None
    for kind, experiment in (("glass", exp), ("liquid", None)):
        merged = [dataclasses.replace(r[kind], name=LABELS[m]) for m, r in runs.items()]
        plot_comparison(merged, experiment, results / f"{name}_{kind}.png")


def setup_lines(preset: Preset, timings: dict, data_summary: dict | None) -> dict:
    """What the report says about how its numbers were made."""
    md = preset.md
    import jax

    lines = {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
        f"on {jax.default_backend()}",
        "wall time per stage, summed over calls (s)": ", ".join(
            f"{k} {v:.0f}" for k, v in timings.items()
        )
        + f"; total {sum(timings.values()):.0f}",
        "melt-quench": (
            f"{md.replicas} replicas (vmap), float32, 1 fs; NVT Langevin: heat "
            f"{md.t_glass:.0f} -> {md.t_melt:.0f} K in {md.heat_ps} ps, hold {md.hot_ps} ps "
            f"(hot liquid: last {md.liquid_fraction:.0%} of its frames); NPT "
            f"{md.pressure_GPa} GPa (tau_P {md.tau_P_fs:.0f} fs): quench to {md.t_glass:.0f} K "
            f"at {md.quench_K_per_s:.2g} K/s, hold {md.glass_ps} ps (the analysed glass)"
        ),
        "models": "SR and RSA (model.long_range: default) with the same backbone "
        f"({'rsajax demo tiny' if preset.train.model is None else preset.train.model}) and "
        f"{preset.train.epochs} epochs",
    }
    if data_summary:
        lines["teacher data"] = (
            f"{data_summary['train_frames']} training frames of "
            f"{data_summary['atoms_per_frame']} atoms at {data_summary['densities_g_cm3']} "
            f"g/cm3 by phase {data_summary['frames_by_density_and_phase']}; "
            f"{data_summary['test_frames']} test frames of {data_summary['test_atoms_per_frame']} "
            f"atoms; start glass {data_summary['start']['atoms']} atoms"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings_path = out / "timings.json"
    log(f"silica study, preset {preset.name}, stages {args.stages}, work folder {out}")
    from experiments.silica_study import data

    if args.from_state:
        from experiments.silica_study import state

        data.check_teacher(preset, state.STATE / preset.name / "data", mark_new=False)
        state.restore(state.STATE / preset.name, out, log)
    data.check_teacher(preset, out / "data", mark_new=False)
    data_summary = None
    for stage in STAGES:
        if stage not in args.stages:
            continue
        began = time.time()
        if stage == "data":
            data_summary = stage_data(preset, out)
        elif stage == "train":
            models = trained_models(args.ablation, args.models, args.seeds)
            stage_train(preset, out, models, args.resume)
        elif stage == "md":
            stage_md(preset, out, md_models(args.ablation, args.models, args.seeds), args.resume)
        else:
            details = stage_analyze(preset, args)
        seconds = time.time() - began
        # read again: calls for different --models may run side by side in one work folder
        timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        timings[stage] = round(timings.get(stage, 0.0) + seconds, 1)
        timings_path.write_text(json.dumps(timings, indent=1) + "\n")
        log(f"stage {stage}: {seconds:.0f} s this call")
    if "analyze" in args.stages:
        timings = json.loads(timings_path.read_text())
        if data_summary is None and (out / "data" / "data.json").is_file():
            data_summary = json.loads((out / "data" / "data.json").read_text())
        write_results(preset, args, details, setup_lines(preset, timings, data_summary))
    return 0


def cli(argv: list[str] | None = None) -> int:
    """:func:`main`, with an interrupted stage reported in one line instead of a traceback."""
    from experiments.silica_study.data import TeacherMismatch
    from experiments.silica_study.training import ResumeNeeded

    try:
        return main(argv)
    except (ResumeNeeded, TeacherMismatch) as error:
        print(f"silica study: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
