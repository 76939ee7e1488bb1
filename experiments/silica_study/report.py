"""Stage 4's outputs: ``results/summary.json`` (one key per preset), ``<preset>_details.json``,
``<preset>_table.md`` and the figures ``<preset>_{glass,liquid,fsdp,learning_curves}.png``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np

from experiments.silica_study.analysis import RING_SIZES, entry_value
from experiments.silica_study.presets import LABELS, base_model, family
from experiments.silica_study.reuse import long_range_silica

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the Agg backend)

#: Keys of a model's entry that go into summary.json (the rest stays in the details).
SUMMARY_KEYS = (
    "fsdp_position",
    "fsdp_position_err",
    "fsdp_height",
    "fsdp_height_err",
    "fsdp_width",
    "fsdp_width_err",
    "fsdp_resolved",
    "fsdp_band_mean",
    "fsdp_band_mean_err",
    "ring_fractions",
    "ring_fractions_err",
    "density",
    "density_err",
    "si_o_si_mean",
    "si_o_si_mean_err",
    "si_o_si_std",
    "o_si_o_mean",
    "o_si_o_mean_err",
    "melted",
)


def summary_section(entries: dict[str, dict]) -> dict[str, dict]:
    """The ``summary.json`` section of one preset: per model the :data:`SUMMARY_KEYS` present."""
    return {m: {k: e[k] for k in SUMMARY_KEYS if k in e} for m, e in entries.items()}


def merge_summary(path: Path, preset: str, section: dict) -> dict:
    """Replace ``preset``'s key in the JSON file at ``path`` (other presets kept); returns all."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[preset] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def _pm(value, err, digits: int = 3) -> str:
    if value is None:
        return "-"
    if err is None or not np.isfinite(err):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def _list(values, fmt="{:.1f}") -> str:
    return ", ".join("-" if v is None else fmt.format(v) for v in values) if values else "-"


def markdown_table(preset: str, entries: dict, details: dict) -> str:
    """The Markdown report: the main table, model vs teacher, FSDP verdicts, the set-up."""
    models = [m for m in entries if m != "experiment"]
    exp = entries.get("experiment", {})
    head = ["quantity", *[LABELS[m] for m in models], "experiment"]
    rows: list[list[str]] = []

    def add(label: str, cell, exp_cell: str = "") -> None:
        rows.append([label, *[cell(entries[m]) for m in models], exp_cell])

    def fsdp(e, key):
        text = _pm(e.get(key), e.get(f"{key}_err"))
        return text if e.get("fsdp_resolved") else f"{text} (not resolved)"

    def band(e):
        return _pm(e.get("fsdp_band_mean"), e.get("fsdp_band_mean_err"))

    add("FSDP position, neutron (1/A)", lambda e: fsdp(e, "fsdp_position"),
        _pm(exp.get("fsdp_position"), exp.get("fsdp_position_err")))  # fmt: skip
    add("FSDP height, neutron", lambda e: fsdp(e, "fsdp_height"),
        _pm(exp.get("fsdp_height"), exp.get("fsdp_height_err")))  # fmt: skip
    add("FSDP FWHM (1/A)", lambda e: fsdp(e, "fsdp_width"),
        _pm(exp.get("fsdp_width"), exp.get("fsdp_width_err")))  # fmt: skip
    add("FSDP resolved", lambda e: "yes" if e.get("fsdp_resolved") else "**no**",
        "yes" if exp.get("fsdp_resolved") else "")  # fmt: skip
    add("FSDP band mean S_N, 1.0-2.2 1/A (needs no resolved peak)", band,
        _pm(exp.get("fsdp_band_mean"), None))  # fmt: skip
    add("fewest q-vectors x frames per shell (fit window)",
        lambda e: str(e.get("fsdp_min_vectors", "-")))  # fmt: skip
    add("FSDP position, replicas (1/A)", lambda e: _list(e["fsdp_replicas"]["position"], "{:.3f}"))
    add("FSDP height, replicas", lambda e: _list(e["fsdp_replicas"]["height"], "{:.3f}"))
    add("hot liquid: FSDP position (1/A)", lambda e: fsdp(e["liquid"], "fsdp_position"))
    add("hot liquid: FSDP height", lambda e: fsdp(e["liquid"], "fsdp_height"))
    add("hot liquid: FSDP band mean S_N", lambda e: band(e["liquid"]))
    add("density at 300 K, 0 GPa (g/cm3)", lambda e: _pm(e["density"], e.get("density_err")),
        f"{exp.get('density', '-')}")  # fmt: skip
    add("Si-O-Si mean (deg)", lambda e: _pm(e["si_o_si_mean"], e.get("si_o_si_mean_err"), 1),
        "147-151")  # fmt: skip
    add("Si-O-Si spread, std (deg)", lambda e: f"{e['si_o_si_std']:.1f}",
        f"{exp.get('si_o_si_std', '-')}")  # fmt: skip
    add("O-Si-O mean (deg)", lambda e: _pm(e["o_si_o_mean"], e.get("o_si_o_mean_err"), 1),
        "109.47")  # fmt: skip
    add("Si-O bond (A)", lambda e: f"{e['si_o_bond']:.3f}", "1.60-1.62")
    add("Si(O) coordination", lambda e: f"{e['coordination_si']:.2f}", "4")
    for n in map(str, RING_SIZES):

        def ring(e, n=n):
            return _pm(e["ring_fractions"].get(n), e["ring_fractions_err"].get(n))

        add(f"{n}-ring fraction" + (" (edge-sharing tetrahedra)" if n == "2" else ""), ring)
    add("melted (replicas)", lambda e: f"{sum(e['melted'])}/{len(e['melted'])}")
    add("O MSD over the hot hold (A^2)", lambda e: _list(e["o_msd_hot_A2"]))
    add("ring distance to the start", lambda e: _list(e["ring_distance_to_start"], "{:.2f}"))
    train = details.get("training", {})

    def tr(key, fmt="{:.1f}"):
        return lambda e, key=key: (
            fmt.format(train[e["_model"]][key]) if e["_model"] in train else ""
        )

    for m in models:
        entries[m]["_model"] = m
    add("test energy RMSE (meV/atom)", tr("energy_rmse"))
    add("test energy RMSE, mean removed (meV/atom)", tr("energy_rmse_centered"))
    add("test force RMSE (meV/A)", tr("force_rmse"))
    add("test stress RMSE (GPa)", tr("stress_rmse_GPa", "{:.2f}"))

    def valid(e):
        t = train.get(e["_model"])
        return f"{t['valid_energy_rmse']:.1f} / {t['valid_force_rmse']:.0f}" if t else ""

    add("validation energy / force RMSE, last epoch", valid)
    add("training time (s)", tr("train_seconds", "{:.0f}"))
    add("MD time, all sittings (s)", md_time)
    add("MD atom-steps/s over the timed steps (melt NVT, quench NPT)",
        lambda e: ", ".join(f"{v:.0f}" for v in e["md_atom_steps_per_s"].values()))  # fmt: skip
    for m in models:
        entries[m].pop("_model")
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    out = [f"# Silica melt-quench study, preset `{preset}`", ""]
    setup = details.get("setup", {})
    if setup:
        out += [f"- {k}: {v}" for k, v in setup.items()] + [""]
    problems = [
        f"- {LABELS[m]}: " + "; ".join(entries[m]["fsdp_problems"])
        for m in models
        if entries[m].get("fsdp_problems")
    ]
    for m, error in details.get("failed", {}).items():
        out += [f"**{LABELS[m]} has no result**: {error}", ""]
    if problems:
        out += ["**The FSDP is not resolved** in these runs; its numbers are not a result:", ""]
        out += problems + [""]
    out += lines + [""]
    out += training_table(details.get("training", {}))
    for pair, rows_ in details.get("comparison", {}).items():
        a, b = pair.split("_vs_")
        out += [f"## {LABELS[a]} vs {LABELS[b]}: which is closer to the teacher?", ""]
        out += [
            "Model minus teacher, +- the standard errors over the replicas combined. A model is"
            " named closer only when the two models differ by more than twice their combined"
            f" error; with {len(rows_)} quantities compared, about one such crossing in 20 comes"
            " by chance.",
            "",
        ]
        out += _pair_note(a, b, details.get("pooled", {}))
        out += [
            f"| quantity | teacher | {LABELS[a]} - teacher | {LABELS[b]} - teacher | verdict |",
            "|---|---|---|---|---|",
        ]
        for r in rows_:
            if "verdict" not in r or r["verdict"] == "missing values":
                continue
            out.append(
                f"| {r['quantity']} | {r['teacher']:.4g} | "
                f"{_pm(r[f'{a}_minus_teacher'], r[f'{a}_minus_teacher_err'], 4)} | "
                f"{_pm(r[f'{b}_minus_teacher'], r[f'{b}_minus_teacher_err'], 4)} | "
                f"{r['verdict']} |"
            )
        out.append("")
    split = details.get("long_range_split")
    if split:
        out += [
            "## Long-range split on the test frames",
            "",
            "Mean per test stage: the teacher's far Coulomb energy (Ewald minus the shifted-force"
            " sum within 5 A) and the RSA branch's energy, per atom; mean energy error per atom.",
            "",
            "| test stage | frames | atoms | teacher E_far/N (eV) | RSA E_lr/N (eV) | "
            "SR error (meV/atom) | RSA error (meV/atom) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in split:
            out.append(
                f"| {r['stage']} | {r['frames']} | {r['atoms']} | {r['far_energy_per_atom']:.3f} | "
                f"{_fmt(r.get('rsa_long_range_per_atom'), '{:.3f}')} | "
                f"{_fmt(r.get('sr_error'), '{:.1f}')} | {_fmt(r.get('rsa_error'), '{:.1f}')} |"
            )
        out.append("")
    return "\n".join(out)


#: (column head, key in a training's test errors, format) of :func:`training_table`.
TRAINING_COLUMNS = (
    ("test E (meV/atom)", "energy_rmse", "{:.2f}"),
    ("mean removed", "energy_rmse_centered", "{:.2f}"),
    ("mean error", "energy_mean_error", "{:+.2f}"),
    ("test F (meV/A)", "force_rmse", "{:.1f}"),
    ("test stress (GPa)", "stress_rmse_GPa", "{:.3f}"),
    ("training time (s)", "train_seconds", "{:.0f}"),
)


def training_table(training: dict[str, dict]) -> list[str]:
    """Markdown lines: the held-out test errors of every finished training, melt-quenched or not,
    and per model with several training seeds their mean and standard deviation (the training's
    own scatter, which the replica errors of the MD do not contain). Empty without trainings."""
    if not training:
        return []
    head = ["training", *(c[0] for c in TRAINING_COLUMNS)]
    out = [
        "## Every training: test errors",
        "",
        "The held-out teacher frames, for every finished training (a seed's melt-quench may still"
        " be running). Validation errors are left out: each seed draws its own validation split."
        " Training time: the training process's own seconds; for a log written before its rows"
        " carried them (2026-12-08), from the first to the last epoch, so a training resumed in"
        " another sitting counts the pause between sittings too.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def cells(values: dict, spread: dict | None = None) -> list[str]:
        return [
            "-"
            if values.get(key) is None
            else fmt.format(values[key])
            + ("" if spread is None else " ± " + fmt.replace("+", "").format(spread[key]))
            for _, key, fmt in TRAINING_COLUMNS
        ]

    for model, errors in training.items():
        out.append("| " + " | ".join([LABELS.get(model, model), *cells(errors)]) + " |")
    for base in ("sr", "rsa"):
        runs = [e for m, e in training.items() if base_model(m) == base]
        if len(runs) < 2:
            continue
        keys = [key for _, key, _ in TRAINING_COLUMNS if all(r.get(key) is not None for r in runs)]
        mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
        std = {k: float(np.std([r[k] for r in runs], ddof=1)) for k in keys}
        label = f"{LABELS[base]}: mean ± std over {len(runs)} seeds"
        out.append("| " + " | ".join([label, *cells(mean, std)]) + " |")
    return out + [""]


def md_time(entry: dict) -> str:
    """The melt-quench's wall time, and how many of its steps it covers when not all: sittings
    checkpointed before the timings were recorded are missing from it."""
    seconds, steps = entry["md_seconds"], entry.get("md_steps")
    timed = entry.get("md_steps_timed", steps)
    if steps is None or timed == steps:
        return f"{seconds:.0f}"
    return f"{seconds:.0f} ({timed} of {steps} steps timed)"


def _pair_note(a: str, b: str, pooled: dict) -> list[str]:
    """What a comparison's pair means, where it is not two different models at one seed."""
    if a in pooled and b in pooled:
        trainings = ", ".join(LABELS[m] for m in pooled[a]["trainings"] + pooled[b]["trainings"])
        return [
            f"Each model is the mean over its trainings ({trainings}); its error is the larger"
            " of the spread between trainings (std / sqrt(n)) and the replica errors combined.",
            "",
        ]
    if base_model(a) == base_model(b):
        return [
            "Two trainings of the same model (same data, backbone and budget; another seed):"
            " every difference here is training scatter, the yardstick for the other tables.",
            "",
        ]
    return []


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def long_range_split(test_path: Path, training: dict) -> list[dict]:
    """Per test stage and size: the teacher's far Coulomb energy per atom (from ``test.xyz``) next
    to the RSA branch's mean energy and each model's mean energy error (``stage_errors.json``)."""
    import ase.io

    group_key = long_range_silica().group_key
    groups: dict[str, list] = {}
    for atoms in ase.io.read(test_path, ":"):
        groups.setdefault(group_key(atoms), []).append(atoms.info["far_energy"] / len(atoms))
    rows = []
    for key, far in groups.items():
        stage, n = key.split("@")[0].split(":")
        row = {"stage": stage, "atoms": int(n), "frames": len(far),
               "far_energy_per_atom": float(np.mean(far))}  # fmt: skip
        for m in ("sr", "rsa"):
            errors = training.get(m, {}).get("stage_errors", {}).get(f"test:{key}")
            if errors:
                row[f"{m}_error"] = errors["energy_error_mean"]
                if m == "rsa":
                    row["rsa_long_range_per_atom"] = errors["long_range_energy_per_atom"]
        rows.append(row)
    return rows


def plot_fsdp(entries: dict, path: Path) -> Path:
    """FSDP position and height of every replica, the merged value with its error, experiment;
    third panel: the band mean of the glass (and hot liquid), which needs no resolved peak."""
    models = [m for m in entries if m != "experiment"]
    exp = entries.get("experiment", {})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[2]
    for k, m in enumerate(models):
        for offset, e, colour, label in (
            (0.0, entries[m], "tab:blue", "glass"),
            (0.3, entries[m].get("liquid", {}), "tab:red", "hot liquid"),
        ):
            reps = [v for v in e.get("fsdp_replicas", {}).get("band_mean", []) if v is not None]
            ax.plot([k + offset - 0.1] * len(reps), reps, "o", color="0.6", ms=4)
            if e.get("fsdp_band_mean") is not None:
                err = e.get("fsdp_band_mean_err") or 0
                ax.errorbar(k + offset, e["fsdp_band_mean"], yerr=err, fmt="s", color=colour,
                            capsize=3, label=label if k == 0 else None)  # fmt: skip
    if exp.get("fsdp_band_mean") is not None:
        ax.axhline(exp["fsdp_band_mean"], color="k", ls="--", lw=1, label="experiment (glass)")
    ax.legend(fontsize=8)
    ax.set_xticks(range(len(models)), [LABELS[m] for m in models], rotation=20, fontsize=8)
    ax.set_ylabel("mean S_N(Q) over 1.0-2.2 1/A")
    ax.set_title("FSDP band mean (grey: replicas; square: +- standard error)", fontsize=8)
    for ax, key in zip(axes[:2], ("position", "height"), strict=True):
        for k, m in enumerate(models):
            e = entries[m]
            reps = [v for v in e["fsdp_replicas"][key] if v is not None]
            ax.plot([k] * len(reps), reps, "o", color="0.6", ms=4)
            if e.get(f"fsdp_{key}") is not None:
                ax.errorbar(k + 0.15, e[f"fsdp_{key}"], yerr=e.get(f"fsdp_{key}_err") or 0,
                            fmt="s", color="tab:red" if e.get("fsdp_resolved") else "tab:orange",
                            capsize=3)  # fmt: skip
        if exp.get(f"fsdp_{key}") is not None:
            ax.axhline(exp[f"fsdp_{key}"], color="k", ls="--", lw=1, label="experiment (NIMROD)")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(models)), [LABELS[m] for m in models], rotation=20, fontsize=8)
        ax.set_ylabel(f"neutron FSDP {key}" + (" (1/A)" if key == "position" else ""))
        ax.set_title("grey: replicas; square: merged (orange = not resolved)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: (title, key, error key) of the panels of :func:`plot_trainings`: the quantities that
#: resolve at the cpu preset's size (the FSDP's position and height do not).
TRAINING_PANELS = (
    ("density (g/cm3)", "density", "density_err"),
    ("glass: FSDP band mean S_N", "fsdp_band_mean", "fsdp_band_mean_err"),
    ("hot liquid: FSDP band mean S_N", ("liquid", "fsdp_band_mean"),
     ("liquid", "fsdp_band_mean_err")),
    ("Si-O-Si mean (deg)", "si_o_si_mean", "si_o_si_mean_err"),
    *((f"{n}-ring fraction", ("ring_fractions", str(n)), ("ring_fractions_err", str(n)))
      for n in (4, 5, 6, 7, 8, 10)),
)  # fmt: skip


def plot_trainings(entries: dict, path: Path, pooled: dict | None = None) -> Path | None:
    """Every training's value minus the teacher's, per quantity, with its replica standard error;
    the teacher's own standard error as a grey band around zero; the pooled trainings (when
    there are several) as open squares. SR's trainings on the left, RSA's on the right: training
    scatter and the SR-RSA difference on one scale. ``None`` (no figure) without a teacher or a
    trained model."""
    trained = [m for m in entries if m not in ("teacher", "experiment")]
    if "teacher" not in entries or not trained:
        return None
    pooled = pooled or {}
    groups = {base: [m for m in trained if family(m) == base] for base in ("sr", "rsa")}
    teacher = entries["teacher"]
    ncols = 5
    nrows = -(-len(TRAINING_PANELS) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    colours = {"sr": "tab:blue", "rsa": "tab:red"}
    for ax, (title, key, err_key) in zip(axes.flat, TRAINING_PANELS, strict=False):
        ref, ref_err = entry_value(teacher, key), entry_value(teacher, err_key) or 0.0
        if ref is None:
            ax.set_visible(False)
            continue
        ax.axhspan(-ref_err, ref_err, color="0.85")
        ax.axhline(0.0, color="k", lw=0.8)
        x = 0
        ticks, labels = [], []
        for base, models in groups.items():
            for m in models:
                v = entry_value(entries[m], key)
                if v is not None:
                    marker = "^" if "no_supercooled" in m else "o"
                    ax.errorbar(x, v - ref, yerr=entry_value(entries[m], err_key) or 0.0,
                                fmt=marker, color=colours[base], capsize=2, ms=5)  # fmt: skip
                ticks.append(x)
                labels.append(m.replace("_no_supercooled", " no sc.").replace("_seed", " s"))
                x += 1
            mean = pooled.get(f"{base}_pooled")
            if mean is not None and entry_value(mean, key) is not None:
                ax.errorbar(x, entry_value(mean, key) - ref, yerr=entry_value(mean, err_key) or 0.0,
                            fmt="s", mfc="none", color=colours[base], capsize=2, ms=7)  # fmt: skip
                ticks.append(x)
                labels.append(f"{base} pooled")
                x += 1
            x += 0.5
        ax.set_xticks(ticks, labels, rotation=60, fontsize=7)
        ax.set_title(f"{title}: model - teacher", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(TRAINING_PANELS) :]:
        ax.set_visible(False)
    fig.suptitle(
        "Each training minus the teacher (bars: replica standard errors; grey: the teacher's; "
        "triangles: no supercooled data; open squares: trainings pooled)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(curves: dict[str, dict], path: Path) -> Path:
    """Validation energy and force RMSE per epoch of every trained model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, c in curves.items():
        for ax, key in zip(axes, ("energy_rmse", "forces_rmse"), strict=True):
            ax.semilogy(c["epoch"], c[key], "o-", ms=3, label=LABELS[m])
    axes[0].set(xlabel="epoch", ylabel="validation energy RMSE (meV/atom)")
    axes[1].set(xlabel="epoch", ylabel="validation force RMSE (meV/A)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
