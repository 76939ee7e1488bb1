"""Comparison report: simulated silica runs against experiment (figure, JSON, Markdown)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import ase
import numpy as np
from matplotlib.figure import Figure

from rsajax.analysis.angles import AngleDistribution, silica_angles
from rsajax.analysis.experiment import SILICA_REFERENCE, ExperimentalCurve
from rsajax.analysis.frames import (
    density_g_cm3,
    rdf_frames,
    ring_statistics_frames,
    structure_factor_frames,
)
from rsajax.analysis.fsdp import PeakFit, band_mean_or_none, fit_fsdp
from rsajax.analysis.rings import ring_fractions
from rsajax.analysis.structure_factor import StructureFactor
from rsajax.errors import InputError


@dataclass
class RunAnalysis:
    """Everything the report shows about one run (a trajectory or a set of quenches)."""

    name: str
    n_frames: int
    n_atoms: int
    density: float
    sq: StructureFactor
    s_neutron: np.ndarray
    s_xray: np.ndarray
    fsdp_neutron: PeakFit | None
    fsdp_xray: PeakFit | None
    r_sio_mean: float
    sio_cutoff: float
    coordination_si: float
    coordination_o: float
    angles: dict[str, AngleDistribution]
    rings: np.ndarray

    @property
    def neutron_band_mean(self) -> float | None:
        """Mean S_N(Q) over the FSDP band (:func:`rsajax.analysis.fsdp.band_mean`); None when
        the box leaves too few points there. A property, so pickled analyses have it too."""
        return band_mean_or_none(self.sq.q, self.s_neutron)


def _try_fit(q: np.ndarray, s: np.ndarray, n_vectors: np.ndarray | None) -> PeakFit | None:
    try:
        return fit_fsdp(q, s, n_vectors=n_vectors)
    except (ValueError, RuntimeError):  # box too small for the fit, or no convergence
        return None


def fsdp_warnings(runs: list[RunAnalysis]) -> list[str]:
    """One line per FSDP fit that failed or does not resolve the peak (empty when all do)."""
    lines = []
    for r in runs:
        for kind, fit in (("neutron", r.fsdp_neutron), ("X-ray", r.fsdp_xray)):
            if fit is None:
                lines.append(f"{r.name}: {kind} FSDP could not be fitted (too few S(Q) points)")
            elif not fit.resolved:
                lines.append(
                    f"{r.name}: {kind} {fit.describe()} (fewest q-vectors x frames in a shell "
                    f"of the window: {fit.min_vectors}; {r.n_atoms} atoms, {r.n_frames} frames)"
                )
    return lines


def analyze_run(
    name: str,
    frames: list[ase.Atoms],
    q_max: float = 12.0,
    shell_width: float = 0.05,
    max_si: int = 10,
    ring_frames: int = 10,
    ring_engine: str = "python",
    progress: bool = True,
) -> RunAnalysis:
    """Analyse one silica run; rings use at most ``ring_frames`` evenly spaced frames."""
    species = set(np.unique(frames[0].numbers).tolist())
    if species != {8, 14}:
        raise InputError(f"{name}: the silica report needs Si and O only, found Z={species}")
    sq = structure_factor_frames(frames, q_max, shell_width, progress=progress)
    sn, sx = sq.neutron(), sq.xray()
    rdf = rdf_frames(frames, r_max=6.0, n_bins=300)
    cutoff = rdf.first_minimum(14, 8)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(ring_frames, len(frames))).astype(int))
    rings = ring_statistics_frames(
        [frames[k] for k in picks], cutoff, max_si, ring_engine, progress=progress
    )
    return RunAnalysis(
        name=name,
        n_frames=len(frames),
        n_atoms=len(frames[0]),
        density=density_g_cm3(frames),
        sq=sq,
        s_neutron=sn,
        s_xray=sx,
        fsdp_neutron=_try_fit(sq.q, sn, sq.n_vectors),
        fsdp_xray=_try_fit(sq.q, sx, sq.n_vectors),
        r_sio_mean=rdf.mean_distance(14, 8, cutoff),
        sio_cutoff=cutoff,
        coordination_si=rdf.coordination(14, 8, cutoff),
        coordination_o=rdf.coordination(8, 14, cutoff),
        angles=silica_angles(frames, cutoff=cutoff),
        rings=rings,
    )


def summary_rows(
    runs: list[RunAnalysis], exp_fit: PeakFit | None, exp: ExperimentalCurve | None = None
) -> list[dict]:
    """Table rows: quantity, one value per run, experimental value and its source."""

    def fit_value(fit: PeakFit | None, attr: str) -> float | None:
        return None if fit is None else round(getattr(fit, attr), 4)

    ref = SILICA_REFERENCE
    rows = [
        ("density (g/cm3)", [r.density for r in runs], "density_g_cm3", None),
        ("mean Si-O bond length (A)", [r.r_sio_mean for r in runs], "r_SiO_A", None),
        ("Si-O cutoff = first minimum (A)", [r.sio_cutoff for r in runs], None, None),
        ("coordination Si(O)", [r.coordination_si for r in runs], "coordination_Si_O", None),
        ("coordination O(Si)", [r.coordination_o for r in runs], "coordination_O_Si", None),
        (
            "FSDP neutron position (1/A)",
            [fit_value(r.fsdp_neutron, "position") for r in runs],
            "fsdp_neutron_q",
            "position",
        ),
        (
            "FSDP neutron height",
            [fit_value(r.fsdp_neutron, "height") for r in runs],
            "fsdp_neutron_height",
            "height",
        ),
        (
            "FSDP neutron position error (1/A)",
            [fit_value(r.fsdp_neutron, "position_err") for r in runs],
            None,
            "position_err",
        ),
        (
            "FSDP neutron height error",
            [fit_value(r.fsdp_neutron, "height_err") for r in runs],
            None,
            "height_err",
        ),
        (
            "FSDP neutron FWHM (1/A)",
            [fit_value(r.fsdp_neutron, "fwhm") for r in runs],
            "fsdp_neutron_fwhm",
            "fwhm",
        ),
        (
            "FSDP neutron band mean, S_N over 1.0-2.2 1/A (needs no resolved peak)",
            [r.neutron_band_mean for r in runs],
            None,
            None,
        ),
        (
            "FSDP X-ray position (1/A)",
            [fit_value(r.fsdp_xray, "position") for r in runs],
            "fsdp_xray_q",
            None,
        ),
        ("Si-O-Si mean (deg)", [r.angles["Si-O-Si"].mean for r in runs], "SiOSi_mean_deg", None),
        ("Si-O-Si mode (deg)", [r.angles["Si-O-Si"].mode for r in runs], "SiOSi_mode_deg", None),
        (
            "Si-O-Si spread (std, deg)",
            [r.angles["Si-O-Si"].std for r in runs],
            "SiOSi_std_deg",
            None,
        ),
        ("O-Si-O mean (deg)", [r.angles["O-Si-O"].mean for r in runs], "OSiO_mean_deg", None),
        ("O-Si-O spread (std, deg)", [r.angles["O-Si-O"].std for r in runs], None, None),
    ]
    out = []
    for label, values, key, exp_attr in rows:
        exp_value = ref[key]["value"] if key else None
        source = ref[key]["source"] if key else ""
        if exp_attr is not None and exp_fit is not None:
            exp_value = round(getattr(exp_fit, exp_attr), 4)
            source = "this package's fit of the user-given neutron file"
        if label.startswith("FSDP neutron band mean") and exp is not None:
            exp_value = None if (b := band_mean_or_none(exp.q, exp.s)) is None else round(b, 4)
            source = "this package's band mean of the user-given neutron file"
        values = [None if v is None else round(float(v), 4) for v in values]
        out.append({"quantity": label, "runs": values, "experiment": exp_value, "source": source})
    max_si = len(runs[0].rings) - 1
    for n in range(3, max_si + 1):
        fr = [round(float(ring_fractions(r.rings)[n]), 4) for r in runs]
        out.append(
            {"quantity": f"ring fraction n={n} Si", "runs": fr, "experiment": None, "source": ""}
        )
    return out


def write_tables(
    rows: list[dict], names: list[str], out_dir: Path, warnings: list[str] = ()
) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` (warnings first, where a reader sees them)."""
    js = out_dir / "summary.json"
    js.write_text(json.dumps({"runs": names, "warnings": list(warnings), "rows": rows}, indent=2))
    lines = [f"**WARNING** {w}" for w in warnings] + ([""] if warnings else [])
    lines += [
        "| quantity | " + " | ".join(names) + " | experiment | source |",
        "|---" * (len(names) + 3) + "|",
    ]
    for row in rows:
        vals = ["-" if v is None else f"{v:g}" for v in row["runs"]]
        exp = "-" if row["experiment"] is None else str(row["experiment"])
        lines.append(f"| {row['quantity']} | " + " | ".join(vals) + f" | {exp} | {row['source']} |")
    md = out_dir / "summary.md"
    md.write_text("\n".join(lines) + "\n")
    return js, md


def plot_comparison(
    runs: list[RunAnalysis], exp: ExperimentalCurve | None, path: Path, q_plot: float = 12.0
) -> Path:
    """Four panels: S_N(Q) with experiment, S_X(Q), ring fractions, bond-angle distributions.

    A bare ``Figure`` (no pyplot), so importing or calling this never changes the backend of a
    notebook or a script that shows its own figures."""
    fig = Figure(figsize=(11, 8))
    ax = fig.subplots(2, 2)
    if exp is not None:
        keep = exp.q <= q_plot
        ax[0, 0].plot(exp.q[keep], exp.s[keep], "k-", lw=1.5, label="experiment (NIMROD)")
    for r in runs:
        ax[0, 0].plot(r.sq.q, r.s_neutron, lw=1, label=r.name)
        ax[0, 1].plot(r.sq.q, r.s_xray, lw=1, label=r.name)
    for a, title in [(ax[0, 0], "neutron $S_N(Q)$"), (ax[0, 1], "X-ray $S_X(Q)$")]:
        a.set(xlabel="Q (1/A)", ylabel="S(Q)", title=title, xlim=(0, q_plot))
        a.legend(fontsize=8)
    width = 0.8 / len(runs)
    for k, r in enumerate(runs):
        n = np.arange(len(r.rings))
        ax[1, 0].bar(
            n + (k - (len(runs) - 1) / 2) * width, ring_fractions(r.rings), width, label=r.name
        )
    # from 1.5: every run's bar at 2 (edge-sharing tetrahedra) stays inside the axes
    ax[1, 0].set(
        xlabel="ring size (Si atoms)", ylabel="fraction", title="SP rings", xlim=(1.5, None)
    )
    ax[1, 0].legend(fontsize=8)
    for r in runs:
        for name, style in [("Si-O-Si", "-"), ("O-Si-O", "--")]:
            d = r.angles[name]
            centres = 0.5 * (d.edges[1:] + d.edges[:-1])
            ax[1, 1].plot(centres, d.density, style, lw=1, label=f"{r.name} {name}")
    ax[1, 1].axvline(144.0, color="k", lw=0.8, ls=":", label="Si-O-Si 144 deg (X-ray)")
    ax[1, 1].set(
        xlabel="angle (deg)", ylabel="density (1/deg)", title="bond angles", xlim=(60, 180)
    )
    ax[1, 1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def write_report(
    runs: list[RunAnalysis],
    exp: ExperimentalCurve | None,
    out_dir: str | Path,
    echo_warnings: bool = True,
) -> dict[str, Path]:
    """Write figure, JSON and Markdown tables and the S(Q) curves; returns the paths.

    Warnings (unresolved FSDP fits) head summary.md and are in summary.json; ``echo_warnings``
    also prints each on stderr, else one line on stdout says how many there are and where.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exp_fit = fit_fsdp(exp.q, exp.s) if exp is not None else None
    rows = summary_rows(runs, exp_fit, exp)
    warnings = fsdp_warnings(runs)
    if exp_fit is not None and not exp_fit.resolved:
        warnings.append(f"experiment: neutron {exp_fit.describe()}")
    js, md = write_tables(rows, [r.name for r in runs], out_dir, warnings)
    fig = plot_comparison(runs, exp, out_dir / "comparison.png")
    paths = {"json": js, "markdown": md, "figure": fig}
    if echo_warnings:
        for line in warnings:
            print(f"WARNING: {line}", file=sys.stderr, flush=True)
    elif warnings:
        print(f"{len(warnings)} FSDP fit(s) not resolved: listed at the top of {md}", flush=True)
    for k, r in enumerate(runs):
        curve = out_dir / f"sq_{k}_{Path(r.name).stem}.csv"
        np.savetxt(
            curve,
            np.column_stack([r.sq.q, r.s_neutron, r.s_xray]),
            delimiter=",",
            header="q_1_per_A,S_neutron,S_xray",
            comments="",
        )
        paths[f"sq_{k}"] = curve
    return paths
