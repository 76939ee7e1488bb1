"""Stage 4: the glasses (and hot liquids) of the teacher and the models against each other and
against the NIMROD neutron data; summary JSON, Markdown table, figures.

Per model, every replica's ``glass`` frames (and the last ``liquid_fraction`` of its ``hot``
frames) go through :func:`rsajax.analysis.report.analyze_run`: neutron and X-ray S(Q) on the
boxes' reciprocal lattices, the FSDP fit with its bootstrap errors and verdict
(:mod:`rsajax.analysis.fsdp`), Si-O cutoff at the first minimum of g_SiO, Si-O-Si and O-Si-O
angles, shortest-path rings. All replicas together give the reported FSDP (merged S(Q)) and ring
histogram (summed counts); the spread of the replicas gives the uncertainty: a quantity's error is
the standard error of its replica values (std / sqrt(R)), and for the FSDP the larger of that and
the merged fit's bootstrap error. The FSDP counts as resolved only when the merged fit is
(``PeakFit.resolved``), every replica could be fitted and the replicas agree on the position to
0.05 1/A. The FSDP band mean (mean S_N(Q) over 1.0-2.2 1/A, :func:`rsajax.analysis.fsdp.band_mean`)
needs no resolved peak: it compares the models' intermediate-range order where the fit cannot.
Several trainings of one model (``run.py --seeds``) are pooled by :func:`pool_trainings`, whose
error also covers the scatter between trainings, which the replica errors do not.

``summary.json`` holds ``{preset: {"teacher" | "sr" | "rsa" | "experiment" (| ablation models):
{"fsdp_position", "fsdp_position_err", "fsdp_height", "fsdp_height_err", "ring_fractions",
"density", "si_o_si_mean", ...}}}``; ``<preset>_details.json`` adds the liquid, test errors,
melt checks, timings and the model-vs-teacher comparison.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from experiments.silica_study.presets import LABELS, Preset

#: Ring sizes (Si atoms) reported: all the ring search finds (``max_si`` 10 of
#: :func:`rsajax.analysis.report.analyze_run`). 2-rings are edge-sharing tetrahedra
#: (Si-O-Si-O), a defect the teacher's glass may lack and a model's may not.
RING_SIZES = tuple(range(2, 11))
#: Fewer replicas than this make the standard errors, and so every verdict, rough.
MIN_REPLICAS_FOR_VERDICT = 3
#: Replicas must agree on the FSDP position to this (1/A) for the peak to count as resolved.
MAX_REPLICA_POSITION_ERROR = 0.05


def sem(values: list[float]) -> float:
    """Standard error of the mean (ddof 1); NaN for fewer than two values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) >= 2 else float("nan")


def _r(x, digits: int = 4):
    """Round for JSON; NaN and inf become None."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def split_frames(frames: list, liquid_fraction: float) -> tuple[list, list]:
    """``(glass, liquid)`` frames of one replica's trajectory: ``stage == "glass"``, and the last
    ``liquid_fraction`` of the ``hot`` frames."""
    glass = [a for a in frames if a.info.get("stage") == "glass"]
    hot = [a for a in frames if a.info.get("stage") == "hot"]
    keep = max(1, int(round(liquid_fraction * len(hot)))) if hot else 0
    return glass, hot[len(hot) - keep :]


def fsdp_summary(merged, replicas: list) -> dict:
    """FSDP of a model (neutron): the merged fit, the replica values and the combined errors;
    and the band mean (merged curve, error from the replicas), which needs no resolved peak."""
    fit = merged.fsdp_neutron
    reps = [r.fsdp_neutron for r in replicas]
    fitted = [f for f in reps if f is not None]
    values = {k: [getattr(f, k) for f in fitted] for k in ("position", "height", "fwhm")}
    spread = {k: sem(v) for k, v in values.items()}
    bands = [r.neutron_band_mean for r in replicas]
    out = {
        "fsdp_replicas": {
            **{k: [_r(x) for x in v] for k, v in values.items()},
            "band_mean": [_r(x) for x in bands],
        },
        "fsdp_band_mean": _r(merged.neutron_band_mean),
        "fsdp_band_mean_err": _r(sem(bands)),
    }
    if fit is None:
        return {
            **out,
            "fsdp_position": None,
            "fsdp_position_err": None,
            "fsdp_height": None,
            "fsdp_height_err": None,
            "fsdp_width": None,
            "fsdp_width_err": None,
            "fsdp_resolved": False,
            "fsdp_problems": ["the merged S(Q) could not be fitted (too few points)"],
        }
    problems = list(fit.problems)
    if len(fitted) < len(reps):
        problems.append(f"only {len(fitted)} of {len(reps)} replicas could be fitted")
    if len(fitted) >= 2 and not spread["position"] <= MAX_REPLICA_POSITION_ERROR:
        problems.append(
            f"the replicas disagree: position standard error {spread['position']:.3f} 1/A "
            f"(> {MAX_REPLICA_POSITION_ERROR})"
        )

    def err(bootstrap: float, replica: float) -> float:
        return float(np.nanmax([bootstrap, replica]))

    return {
        **out,
        "fsdp_position": _r(fit.position),
        "fsdp_position_err": _r(err(fit.position_err, spread["position"])),
        "fsdp_height": _r(fit.height),
        "fsdp_height_err": _r(err(fit.height_err, spread["height"])),
        "fsdp_width": _r(fit.fwhm),
        "fsdp_width_err": _r(err(fit.fwhm_err, spread["fwhm"])),
        "fsdp_bootstrap_err": {
            "position": _r(fit.position_err),
            "height": _r(fit.height_err),
            "width": _r(fit.fwhm_err),
        },
        "fsdp_replica_sem": {k: _r(v) for k, v in spread.items()},
        "fsdp_min_vectors": fit.min_vectors,
        "fsdp_resolved": not problems,
        "fsdp_problems": problems,
    }


def structure_summary(merged, replicas: list) -> dict:
    """Density, angles, rings, bonds: merged values, replica means and standard errors."""
    from rsajax.analysis.rings import ring_fractions

    def per_replica(get) -> tuple[float, float]:
        values = [get(r) for r in replicas]
        return float(np.mean(values)), sem(values)

    density, density_err = per_replica(lambda r: r.density)
    siosi, siosi_err = per_replica(lambda r: r.angles["Si-O-Si"].mean)
    osio, osio_err = per_replica(lambda r: r.angles["O-Si-O"].mean)
    fractions = ring_fractions(merged.rings)
    rep_fractions = [ring_fractions(r.rings) for r in replicas]
    xray = merged.fsdp_xray
    return {
        "ring_fractions": {str(n): _r(fractions[n]) for n in RING_SIZES if n < len(fractions)},
        "ring_fractions_err": {
            str(n): _r(sem([f[n] for f in rep_fractions])) for n in RING_SIZES if n < len(fractions)
        },
        "ring_count": int(np.sum(merged.rings)),
        "density": _r(density),
        "density_err": _r(density_err),
        "si_o_si_mean": _r(siosi, 2),
        "si_o_si_mean_err": _r(siosi_err, 2),
        "si_o_si_std": _r(merged.angles["Si-O-Si"].std, 2),
        "si_o_si_mode": _r(merged.angles["Si-O-Si"].mode, 1),
        "o_si_o_mean": _r(osio, 2),
        "o_si_o_mean_err": _r(osio_err, 2),
        "o_si_o_std": _r(merged.angles["O-Si-O"].std, 2),
        "si_o_bond": _r(merged.r_sio_mean),
        "si_o_cutoff": _r(merged.sio_cutoff, 3),
        "coordination_si": _r(merged.coordination_si, 3),
        "coordination_o": _r(merged.coordination_o, 3),
        "fsdp_xray_position": None if xray is None else _r(xray.position),
        "fsdp_xray_resolved": False if xray is None else xray.resolved,
    }


def analyze_model(name: str, md_dir: Path, preset: Preset) -> dict:
    """``{"glass": (merged, replicas), "liquid": (merged, replicas)}`` RunAnalysis objects of
    one model's replicas (``md_dir/rep<k>/trajectory.extxyz``)."""
    from rsajax.analysis.frames import read_frames
    from rsajax.analysis.report import analyze_run

    a = preset.analysis
    reps = {"glass": [], "liquid": []}
    for k in range(preset.md.replicas):
        frames = read_frames(md_dir / f"rep{k}" / "trajectory.extxyz")
        glass, liquid = split_frames(frames, preset.md.liquid_fraction)
        if not glass:
            raise ValueError(f"{md_dir}/rep{k}: no glass frames (did the run finish?)")
        for kind, sel, rings in (("glass", glass, a.ring_frames), ("liquid", liquid, 0)):
            run = analyze_run(
                f"{name} rep{k}", sel, a.q_max, a.shell_width, 10, rings, a.ring_engine,
                progress=False,
            )  # fmt: skip
            reps[kind].append((sel, run))
    out = {}
    for kind, items in reps.items():
        frames = [f for sel, _ in items for f in sel]
        merged = analyze_run(name, frames, a.q_max, a.shell_width, 10, 0, progress=False)
        merged = dataclasses.replace(merged, rings=np.sum([r.rings for _, r in items], axis=0))
        out[kind] = (merged, [r for _, r in items])
    return out


def model_entry(analysis: dict, melt: list[dict], md_summary: dict) -> dict:
    """A model's ``summary.json`` entry (glass) with the liquid and the melt check added."""
    merged, replicas = analysis["glass"]
    entry = {**fsdp_summary(merged, replicas), **structure_summary(merged, replicas)}
    lm, lr = analysis["liquid"]
    entry["liquid"] = {
        **{k: v for k, v in fsdp_summary(lm, lr).items() if k.startswith("fsdp")},
        "density": _r(np.mean([r.density for r in lr])),
        "si_o_si_mean": _r(np.mean([r.angles["Si-O-Si"].mean for r in lr]), 2),
        "frames": lm.n_frames,
    }
    entry["melted"] = [bool(m.get("melted")) for m in melt]
    entry["o_msd_hot_A2"] = [_r(m.get("msd_A2", {}).get("O"), 2) for m in melt]
    entry["ring_distance_to_start"] = [_r(m.get("ring_distance"), 3) for m in melt]
    entry.update(
        replicas=len(replicas),
        atoms=merged.n_atoms,
        glass_frames=merged.n_frames,
        **md_timing(md_summary),
    )
    return entry


def md_timing(md_summary: dict) -> dict:
    """The entry's MD time fields from the melt-quench's ``done.json``: seconds, the steps they
    cover (older files timed each phase's last sitting only) and atom-steps/s per phase."""
    phases = md_summary["phases"]
    return dict(
        md_seconds=md_summary.get("seconds"),
        md_steps=sum(v["steps"] for v in phases.values()),
        md_steps_timed=sum(
            v.get("steps_timed", v.get("steps_run_here", v["steps"])) for v in phases.values()
        ),
        md_atom_steps_per_s={k: v["atom_steps_per_s"] for k, v in phases.items()},
    )


def experiment_entry(exp_path: Path | None) -> dict:
    """The experiment column: the NIMROD curve fitted like the simulations when the file is
    there, literature values otherwise (sources in ``rsajax.analysis.SILICA_REFERENCE``)."""
    from rsajax.analysis.experiment import SILICA_REFERENCE, read_nimrod_mint01
    from rsajax.analysis.fsdp import band_mean, fit_fsdp

    ref = SILICA_REFERENCE
    entry = {
        "density": ref["density_g_cm3"]["value"],
        "si_o_si_mean": 149.0,
        "si_o_si_mean_range": [147.0, 151.0],
        "si_o_si_std": ref["SiOSi_std_deg"]["value"],
        "o_si_o_mean": ref["OSiO_mean_deg"]["value"],
        "ring_fractions": None,
        "sources": {
            "density": ref["density_g_cm3"]["source"],
            "si_o_si": ref["SiOSi_mean_deg"]["source"],
            "ring_fractions": "not measurable by diffraction",
        },
    }
    if exp_path is None or not Path(exp_path).is_file():
        entry.update(
            fsdp_position=ref["fsdp_neutron_q"]["value"],
            fsdp_position_err=None,
            fsdp_height=ref["fsdp_neutron_height"]["value"],
            fsdp_height_err=None,
            fsdp_width=ref["fsdp_neutron_fwhm"]["value"],
            fsdp_resolved=True,
        )
        entry["sources"]["fsdp"] = "SILICA.md table (NIMROD file not found)"
        return entry
    exp = read_nimrod_mint01(exp_path)
    fit = fit_fsdp(exp.q, exp.s)
    entry.update(
        fsdp_band_mean=_r(band_mean(exp.q, exp.s)),
        fsdp_position=_r(fit.position),
        fsdp_position_err=_r(fit.position_err),
        fsdp_height=_r(fit.height),
        fsdp_height_err=_r(fit.height_err),
        fsdp_width=_r(fit.fwhm),
        fsdp_width_err=_r(fit.fwhm_err),
        fsdp_resolved=fit.resolved,
        fsdp_problems=list(fit.problems),
    )
    entry["sources"]["fsdp"] = (
        f"NIMROD (ISIS) v-SiO2 neutron data ({Path(exp_path).name}), fitted like the simulations"
    )
    return entry


#: (quantity, key, error key, is an FSDP quantity) compared with the teacher. Every ring size
#: is compared: with nine of them, one difference of 2 standard errors is expected by chance.
COMPARED = (
    ("FSDP height", "fsdp_height", "fsdp_height_err", True),
    ("FSDP position (1/A)", "fsdp_position", "fsdp_position_err", True),
    ("FSDP width (1/A)", "fsdp_width", "fsdp_width_err", True),
    ("FSDP band mean S_N, 1.0-2.2 1/A", "fsdp_band_mean", "fsdp_band_mean_err", False),
    (
        "hot liquid: FSDP band mean S_N",
        ("liquid", "fsdp_band_mean"),
        ("liquid", "fsdp_band_mean_err"),
        False,
    ),
    *(
        (f"{n}-ring fraction", ("ring_fractions", str(n)), ("ring_fractions_err", str(n)), False)
        for n in RING_SIZES
    ),
    ("Si-O-Si mean (deg)", "si_o_si_mean", "si_o_si_mean_err", False),
    ("O-Si-O mean (deg)", "o_si_o_mean", "o_si_o_mean_err", False),
    ("density (g/cm3)", "density", "density_err", False),
)


def entry_value(entry: dict, key):
    """``entry[key]``, or ``entry[key[0]][key[1]]`` for a tuple key (a :data:`COMPARED` key);
    None where missing."""
    if isinstance(key, tuple):
        return (entry.get(key[0]) or {}).get(key[1])
    return entry.get(key)


def compare_to_teacher(entries: dict, pair: tuple[str, str] = ("sr", "rsa")) -> list[dict]:
    """Which of two models is closer to the teacher, quantity by quantity.

    ``difference = model - teacher`` with error ``sqrt(err_model^2 + err_teacher^2)``. The
    closer model is named only when the two models differ from each other by more than twice
    their combined error; otherwise the verdict is that the spread does not tell them apart.
    FSDP quantities get no verdict unless all three peaks are resolved.
    """
    a, b = pair
    if any(m not in entries for m in ("teacher", a, b)):
        return []
    rows = []
    for label, key, err_key, is_fsdp in COMPARED:
        values = {m: entry_value(entries[m], key) for m in ("teacher", a, b)}
        errors = {m: entry_value(entries[m], err_key) or 0.0 for m in ("teacher", a, b)}
        row = {"quantity": label, "teacher": values["teacher"]}
        if any(v is None for v in values.values()):
            row["verdict"] = "missing values"
            rows.append(row)
            continue
        for m in (a, b):
            row[f"{m}_minus_teacher"] = _r(values[m] - values["teacher"])
            row[f"{m}_minus_teacher_err"] = _r(math.hypot(errors[m], errors["teacher"]))
        gap = abs(values[a] - values[b])
        combined = math.hypot(errors[a], errors[b])
        closer = a if abs(values[a] - values["teacher"]) < abs(values[b] - values["teacher"]) else b
        resolved = all(entries[m].get("fsdp_resolved") for m in ("teacher", a, b))
        replicas = min(entries[m].get("replicas", 0) for m in ("teacher", a, b))
        if is_fsdp and not resolved:
            row["verdict"] = "FSDP not resolved in every run: no answer"
            rows.append(row)
            continue
        if combined == 0.0:
            row["verdict"] = f"{LABELS[closer]} closer (no replica spread to judge it: one replica)"
        elif gap > 2.0 * combined:
            row["verdict"] = f"{LABELS[closer]} closer ({gap / combined:.1f} x the spread)"
        else:
            row["verdict"] = (
                f"not told apart ({LABELS[closer]} nominally closer, "
                f"{gap / combined:.1f} x the spread)"
            )
        if 0 < replicas < MIN_REPLICAS_FOR_VERDICT:
            row["verdict"] += f"; only {replicas} replicas: the spread itself is uncertain"
        rows.append(row)
    return rows


def _set(entry: dict, key, value) -> None:
    if isinstance(key, tuple):
        entry.setdefault(key[0], {})[key[1]] = value
    else:
        entry[key] = value


def pool_trainings(entries: dict, models: list[str]) -> dict | None:
    """One entry for several trainings of a model (``sr``, ``sr_seed1``, ...): per compared
    quantity the mean over the trainings, with an error that covers both kinds of scatter.

    With training values ``v_i`` (``n`` of them) and replica standard errors ``e_i``, the error
    is the larger of ``std(v_i) / sqrt(n)`` (the spread between trainings; it includes the
    replica noise, but with two trainings it rests on one degree of freedom and can come out
    small by chance) and ``sqrt(sum e_i^2) / n`` (the replica noise of the mean alone). ``None``
    when fewer than two of ``models`` are in ``entries``.
    """
    present = [m for m in models if m in entries]
    if len(present) < 2:
        return None
    n = len(present)
    pooled: dict = {
        "trainings": present,
        "replicas": min(entries[m].get("replicas", 0) for m in present),
        "fsdp_resolved": all(entries[m].get("fsdp_resolved") for m in present),
    }
    for _, key, err_key, _ in COMPARED:
        values = [entry_value(entries[m], key) for m in present]
        if any(v is None for v in values):
            continue
        errors = [entry_value(entries[m], err_key) or 0.0 for m in present]
        between = float(np.std(values, ddof=1) / np.sqrt(n))
        replica = math.sqrt(sum(e * e for e in errors)) / n
        _set(pooled, key, _r(float(np.mean(values))))
        _set(pooled, err_key, _r(max(between, replica)))
    return pooled
