"""Fit a MACE potential to a neutron S(Q) by trajectory reweighting (issue 18), in one command.

    PYTHONPATH=. python experiments/sq_fit/run.py --preset tiny                 # minutes
    PYTHONPATH=. python experiments/sq_fit/run.py --preset small --resume       # an hour on 2 cores
    PYTHONPATH=. python experiments/sq_fit/run.py --preset small --target nimrod

Stages: (1) an SR model: the tiny MACE of ``rsajax demo`` trained on the shipped BKS silica data
(``rsajax/data/default/silica_small.xyz``) for the preset's epochs; (2) the target: the teacher's
own 300 K glass S(Q) (the 20 annealed 192-atom frames, same box, a known answer) or the NIMROD
neutron data; (3) the fit (:class:`rsajax.fit.loop.SQFit`): NVT frames of the model in the
teacher glass's box at 300 K, reweighted S(Q) loss + energy/force loss on teacher frames, Adam,
fresh frames when the effective sample size drops, an orbax checkpoint after every step
(``--resume`` continues); (4) before/after: fresh frames with the first and the last parameters,
their S(Q), the FSDP fit (:func:`rsajax.analysis.fsdp.fit_fsdp`, same procedure on the target),
Si-O-Si / O-Si-O angles, and the energy/force errors on held-out teacher frames. Results go to
``experiments/sq_fit/results/`` (``results.json`` under ``<preset>/<target>``, figures); the work
folder (``--out``, default ``runs/sq_fit/<preset>/<target>``) holds the model and checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.io import read  # noqa: E402

from rsajax.analysis.angles import silica_angles  # noqa: E402
from rsajax.analysis.experiment import read_nimrod_mint01  # noqa: E402
from rsajax.analysis.fsdp import fit_fsdp  # noqa: E402
from rsajax.analysis.rings import ring_fractions, ring_statistics  # noqa: E402
from rsajax.analysis.structure_factor import reciprocal_grid  # noqa: E402
from rsajax.demo import CORE_REPULSION, default_dataset  # noqa: E402
from rsajax.fit.backprop import window_sq_loss  # noqa: E402
from rsajax.fit.loop import FitCheckpoints, FitSettings, SQFit  # noqa: E402
from rsajax.fit.objective import make_target, model_sq, shell_mean_q  # noqa: E402
from rsajax.fit.reweight import reweighted_sq_loss  # noqa: E402
from rsajax.fit.teacher import teacher_errors, teacher_graph  # noqa: E402
from rsajax.md.adapter import model_system, with_core_repulsion  # noqa: E402
from rsajax.nn.model import load_model  # noqa: E402

EXPERIMENT = REPO.parent / "shared" / "silica_exp" / "SiO2_NIMROD.mint01"
RESULTS = REPO / "experiments" / "sq_fit" / "results"


@dataclasses.dataclass(frozen=True)
class Preset:
    epochs: int  # pre-training of the SR model
    steps: int  # outer fit steps
    teacher_every: int  # every k-th frame of the data in the teacher loss (offset 0) and report
    settings: FitSettings
    window_steps: int = 0  # NVE window length for the gradient comparison (0: skip it)
    windows: int = 4


PRESETS = {
    "tiny": Preset(
        epochs=2,
        steps=3,
        teacher_every=32,
        settings=FitSettings(
            frames=8, every=10, equilibrate=50, learning_rate=5e-4, sq_weight=100.0
        ),
    ),
    "small": Preset(
        epochs=8,
        steps=20,
        teacher_every=8,
        settings=FitSettings(
            frames=30,
            every=20,
            equilibrate=100,
            learning_rate=5e-4,
            min_effective_fraction=0.3,
            sq_weight=100.0,
        ),
        window_steps=60,
        windows=3,
    ),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pretrain(out: Path, epochs: int) -> Path:
    """The SR model: ``rsajax demo``'s tiny MACE on the shipped BKS data (skipped if done)."""
    from rsajax.demo import train_config
    from rsajax.train import train

    model_dir = out / "model"
    if (model_dir / "config.json").is_file():
        return model_dir
    config = train_config(default_dataset(), out, epochs, long_range=False)
    config["progress_bar"] = False
    resume = (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
    return train(config, resume=resume).model_dir


def teacher_frames(
    every: int, stage: str = "anneal"
) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """``(target frames, fit set, report set)``: the 192-atom frames of ``stage`` (``anneal``: 20
    frames of the 300 K glass; ``melt``: 30 frames of the 6000 K liquid, same box), and of the
    other frames every ``every``-th (offset 0) for the loss and (offset every/2) for the report."""
    frames = read(default_dataset(), ":")
    glass = [a for a in frames if len(a) == 192 and a.info.get("stage") == stage]
    rest = [a for a in frames if not (len(a) == 192 and a.info.get("stage") == stage)]
    return glass, rest[::every], rest[every // 2 :: every]


def fsdp_dict(q, s, n_vectors=None) -> dict:
    try:
        fit = fit_fsdp(q, s, n_vectors=n_vectors)
    except (ValueError, RuntimeError) as err:  # too few points around the maximum: say so
        nan = float("nan")
        return {"position": nan, "height": nan, "resolved": False, "problems": [str(err)]}
    return {
        "position": fit.position,
        "position_err": fit.position_err,
        "height": fit.height,
        "height_err": fit.height_err,
        "fwhm": fit.fwhm,
        "resolved": fit.resolved,
        "problems": list(fit.problems),
    }


def angles_dict(cartesian: np.ndarray, glass: Atoms) -> dict:
    atoms = [Atoms(glass.numbers, positions=p, cell=glass.cell, pbc=True) for p in cartesian]
    out = {}
    for name, dist in silica_angles(atoms).items():
        out[name] = {"mean": dist.mean, "std": dist.std, "mode": dist.mode}
    return out


def rings_dict(positions: np.ndarray, glass: Atoms) -> dict:
    """Shortest-path ring fractions (in Si atoms per ring, n = 3..9) of one frame."""
    counts = ring_statistics(positions, glass.cell.array, glass.numbers, engine="matscipy")
    fractions = ring_fractions(counts)
    return {str(n): float(fractions[n]) for n in range(3, 10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--target", choices=("teacher", "nimrod"), default="teacher")
    parser.add_argument(
        "--phase",
        choices=("glass", "liquid"),
        default="glass",
        help="glass: 300 K, the teacher's annealed glass; liquid: 6000 K, the teacher's melt "
        "(teacher target only; the model runs with rsajax demo's pair wall)",
    )
    parser.add_argument("--sq-weight", type=float, default=None, help="preset's by default")
    parser.add_argument("--lr", type=float, default=None, help="Adam step (preset's by default)")
    parser.add_argument(
        "--min-ess", type=float, default=None, help="resampling threshold (preset's by default)"
    )
    parser.add_argument(
        "--energy-weight", type=float, default=None, help="teacher energy weight (default 1)"
    )
    parser.add_argument("--tag", default="", help="suffix of the run's name (results key, files)")
    parser.add_argument("--steps", type=int, default=None, help="outer steps (preset's default)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--exp-path", type=Path, default=EXPERIMENT)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.phase == "liquid" and args.target != "teacher":
        parser.error("--phase liquid needs --target teacher (the experiment is a glass)")
    args.name = args.target if args.phase == "glass" else f"{args.target}-liquid"
    args.name += f"-{args.tag}" if args.tag else ""
    preset = PRESETS[args.preset]
    steps = preset.steps if args.steps is None else args.steps
    out = args.out or REPO / "runs" / "sq_fit" / args.preset
    work = out / args.name
    st = preset.settings
    if args.phase == "liquid":
        # 0.5 ps before the first frame: the model's own liquid, not the teacher's start
        st = dataclasses.replace(st, temperature_K=6000.0, equilibrate=max(st.equilibrate, 500))
    if args.sq_weight is not None:
        st = dataclasses.replace(st, sq_weight=args.sq_weight)
    if args.lr is not None:
        st = dataclasses.replace(st, learning_rate=args.lr)
    if args.energy_weight is not None:
        st = dataclasses.replace(st, energy_weight=args.energy_weight)
    if args.min_ess is not None:
        st = dataclasses.replace(st, min_effective_fraction=args.min_ess)
    tic = time.time()

    log(f"stage 1: SR model ({preset.epochs} epochs on the shipped BKS data)")
    model, variables = load_model(pretrain(out / "pretrain", preset.epochs))
    params0 = variables["params"]

    stage = "anneal" if args.phase == "glass" else "melt"
    glass_frames, fit_set, report_set = teacher_frames(preset.teacher_every, stage)
    glass = glass_frames[-1]
    cell = glass.cell.array
    dtype = np.float32 if not jax.config.jax_enable_x64 else np.float64
    teach_fit = teacher_graph(fit_set, model.config.r_max, dtype)
    teach_report = teacher_graph(report_set, model.config.r_max, dtype)

    log(f"stage 2: target ({args.target})")
    grid = reciprocal_grid(cell, 4.5, shell_width=0.1, max_per_shell=None)
    q, counts = shell_mean_q(grid)
    filled = counts > 0
    probe = make_target(grid, cell, glass.numbers, [0.0, 5.0], [1.0, 1.0], (0.5, 4.4))
    teacher_pos = np.stack([a.positions for a in glass_frames])
    s_teacher = np.asarray(model_sq(teacher_pos, probe))
    if args.target == "teacher":
        curve_q, curve_s = q[filled], s_teacher[filled]
        target_fsdp = fsdp_dict(curve_q, curve_s, counts[filled] * len(glass_frames))
    else:
        exp = read_nimrod_mint01(args.exp_path)
        curve_q, curve_s = exp.q, exp.s
        target_fsdp = fsdp_dict(exp.q, exp.s)
    q_range = (max(1.0, curve_q.min()), min(4.0, curve_q.max()))
    target = make_target(grid, cell, glass.numbers, curve_q, curve_s, q_range)

    system = model_system(model, variables, glass.numbers, cell.T)
    if args.phase == "liquid":
        # zero wherever the data has pairs; keeps hot atoms out of an SR model's holes
        system = with_core_repulsion(system, CORE_REPULSION["radii"], CORE_REPULSION["strength_eV"])
    fit = SQFit(model, system, variables["constants"], target, teach_fit, st)
    R_start = jnp.asarray(glass.get_scaled_positions(), dtype)
    checkpoints = FitCheckpoints(work / "checkpoints")
    optimizer_state = fit.optimizer.init(params0)
    record_path = work / "before.json"
    if checkpoints.latest() is not None:
        if not args.resume:
            raise SystemExit(f"{work} holds a checkpoint: pass --resume or choose another --out")
        params, opt_state, samples, meta = checkpoints.restore(
            params0, optimizer_state, st.temperature_K
        )
        fit.adopt(samples)
        history, step0, before = meta["history"], meta["step"], json.loads(record_path.read_text())
        log(f"resumed at step {step0}")
    else:
        log("stage 3: first frames with the SR model")
        fit.sample(params0, R_start, seed=0)
        s_before = fit.frame_s.mean(0)
        before = {
            "s": s_before.tolist(),
            "cartesian_last": fit.samples.cartesian[-1].tolist(),
            "fsdp": fsdp_dict(q[filled], s_before[filled], counts[filled] * st.frames),
            "angles": angles_dict(fit.samples.cartesian, glass),
            "teacher_errors": teacher_errors(model, variables, teach_report),
        }
        if preset.window_steps:
            before["gradient_comparison"] = compare_gradients(fit, params0, variables, preset)
        work.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(before))
        params, opt_state, history, step0 = params0, optimizer_state, [], 0

    log(f"stage 3: {steps - step0} fit steps")
    for step in range(step0, steps):
        t = time.time()
        params, opt_state, record = fit.step(params, opt_state, seed=step + 1)
        record["step"], record["seconds"] = step, round(time.time() - t, 1)
        history.append(record)
        checkpoints.save(
            step + 1, params, opt_state, fit.samples, {"step": step + 1, "history": history}
        )
        log(
            f"step {step}: loss {record['loss']:.4g} (S(Q) {record['sq_loss']:.4g}, teacher "
            f"{record['teacher_loss']:.4g}), sample size {record['effective_fraction']:.2f}"
            + (" (resampled)" if record["resampled"] else "")
        )

    log("stage 4: fresh frames with the fitted model")
    final = {"params": params, "constants": variables["constants"]}
    fit.sample(params, fit.samples.last, seed=10_000)
    s_after = fit.frame_s.mean(0)
    after = {
        "fsdp": fsdp_dict(q[filled], s_after[filled], counts[filled] * st.frames),
        "angles": angles_dict(fit.samples.cartesian, glass),
        "rings": rings_dict(fit.samples.cartesian[-1], glass),
        "teacher_errors": teacher_errors(model, final, teach_report),
    }
    before["rings"] = rings_dict(np.asarray(before["cartesian_last"]), glass)
    s_before = np.asarray(before["s"])
    teacher_rings = rings_dict(glass.positions, glass)
    summary = summarise(args, st, steps, target, target_fsdp, teacher_rings, before, after, history)
    summary["sq_loss_before_after"] = [
        float(np.sum(target.weight * (s_before - target.target) ** 2)),
        float(np.sum(target.weight * (s_after - target.target) ** 2)),
    ]
    # The noise of a before/after comparison: the same first parameters sampled again (another
    # seed, same start and protocol). Differences below this spread mean nothing.
    fit.sample(params0, R_start, seed=20_000)
    s_again = fit.frame_s.mean(0)
    again = fsdp_dict(q[filled], s_again[filled], counts[filled] * st.frames)
    summary["replicate_before"] = {
        "sq_loss": float(np.sum(target.weight * (s_again - target.target) ** 2)),
        "fsdp": again,
        "fsdp_position_error": abs(again["position"] - target_fsdp["position"]),
        "fsdp_height_rel_error": abs(again["height"] - target_fsdp["height"])
        / abs(target_fsdp["height"]),
    }
    summary["wall_seconds"] = round(time.time() - tic, 1)
    write_results(args, summary)
    plots(args, q, filled, s_teacher, target, curve_q, curve_s, s_before, s_after, history)
    plot_structure(args, summary)
    log(f"FSDP position error {summary['fsdp_position_error']}")
    log(f"FSDP height relative error {summary['fsdp_height_rel_error']}")
    return 0


def compare_gradients(fit: SQFit, params, variables, preset: Preset) -> dict:
    """The S(Q)-loss gradient at the start, by reweighting and by NVE windows: cosine, norms."""
    rw = reweighted_sq_loss(fit.system, fit.nbrs, fit.samples, fit.frame_s, fit.target)
    constants = variables["constants"]
    g_rw = jax.jit(jax.grad(lambda p: rw({"params": p, "constants": constants})[0]))(params)
    pick = np.linspace(0, len(fit.samples.positions) - 1, preset.windows).astype(int)
    loss = window_sq_loss(
        fit.system, fit.nbrs, fit.samples.positions[pick], fit.samples.idx[pick], fit.target,
        steps=preset.window_steps, every=10, skip=2, temperature_K=fit.settings.temperature_K,
    )  # fmt: skip
    t = time.time()
    g_bp = jax.jit(jax.grad(lambda p: loss({"params": p, "constants": variables["constants"]})[0]))(
        params
    )
    seconds = time.time() - t
    a = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(g_rw)])
    b = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(g_bp)])
    return {
        "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
        "norm_reweighting": float(np.linalg.norm(a)),
        "norm_windows": float(np.linalg.norm(b)),
        "windows": preset.windows,
        "window_steps": preset.window_steps,
        "window_seconds": round(seconds, 1),
    }


def summarise(
    args, settings, steps, target, target_fsdp, teacher_rings, before, after, history
) -> dict:
    def errors(fsdp):
        return (
            abs(fsdp["position"] - target_fsdp["position"]),
            abs(fsdp["height"] - target_fsdp["height"]) / abs(target_fsdp["height"]),
        )

    pos_b, h_b = errors(before["fsdp"])
    pos_a, h_a = errors(after["fsdp"])
    return {
        "command": "PYTHONPATH=. python experiments/sq_fit/run.py " + shlex.join(sys.argv[1:]),
        "machine": f"{platform.machine()}, jax {jax.__version__}, {jax.devices()[0].platform}",
        "preset": args.preset,
        "target": args.target,
        "phase": args.phase,
        "steps": steps,
        "settings": dataclasses.asdict(settings),
        "q_range": [float(target.q[target.used].min()), float(target.q[target.used].max())],
        "fsdp_target": target_fsdp,
        "fsdp_before": before["fsdp"],
        "fsdp_after": after["fsdp"],
        "fsdp_position_error": {"before": pos_b, "after": pos_a},
        "fsdp_height_rel_error": {"before": h_b, "after": h_a},
        "teacher_errors": {"before": before["teacher_errors"], "after": after["teacher_errors"]},
        "angles": {"before": before["angles"], "after": after["angles"]},
        "rings": {"teacher": teacher_rings, "before": before["rings"], "after": after["rings"]},
        "gradient_comparison": before.get("gradient_comparison"),
        "resamples": sum(r["resampled"] for r in history),
        "history": history,
    }


def write_results(args, summary: dict) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "results.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[f"{args.preset}/{args.name}"] = summary
    path.write_text(json.dumps(data, indent=1) + "\n")


def plots(args, q, filled, s_teacher, target, curve_q, curve_s, s_before, s_after, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, xlim in ((axes[0], (0.5, 4.5)), (axes[1], (0.9, 2.3))):
        if args.target == "nimrod":
            ax.plot(curve_q, curve_s, "k-", lw=1, label="NIMROD (target)")
        teacher_label = f"BKS teacher {args.phase}" + (
            " (target)" if args.target == "teacher" else ""
        )
        style = "ko--" if args.target == "nimrod" else "ko-"
        ax.plot(q[filled], s_teacher[filled], style, ms=3, lw=0.8, label=teacher_label)
        ax.plot(q[filled], s_before[filled], "C0s-", ms=3, label="SR model, before the fit")
        ax.plot(q[filled], s_after[filled], "C3^-", ms=3, label="after the fit")
        ax.axvspan(*target.fsdp_range, color="C1", alpha=0.12)
        ax.set_xlim(*xlim)
        ax.set_xlabel("Q (1/A)")
        ax.set_ylabel("neutron S(Q)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("S(Q), 192-atom box, shells 0.1 1/A")
    axes[1].set_title("FSDP region (orange: weighted x3)")
    ax = axes[2]
    steps = [r["step"] for r in history]
    ax.semilogy(steps, [r["sq_loss"] for r in history], "C0o-", ms=3, label="S(Q) loss")
    ax.semilogy(steps, [r["teacher_loss"] for r in history], "C2s-", ms=3, label="teacher loss")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["effective_fraction"] for r in history], "C7.:", label="sample size")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("effective sample size / frames")
    ax.set_xlabel("fit step")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("loss curve (resampling below the threshold)")
    fig.tight_layout()
    fig.savefig(args.results / f"{args.preset}_{args.name}.png", dpi=110)


def plot_structure(args, summary: dict) -> None:
    """Ring fractions (teacher, before, after) and the mean angles, one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    sizes = np.arange(3, 10)
    for k, (name, label) in enumerate(
        (("teacher", "BKS teacher glass"), ("before", "before the fit"), ("after", "after"))
    ):
        values = [summary["rings"][name][str(n)] for n in sizes]
        axes[0].bar(sizes + (k - 1) * 0.27, values, width=0.27, label=label)
    axes[0].set_xlabel("ring size (Si atoms), one frame")
    axes[0].set_ylabel("fraction")
    axes[0].legend(fontsize=8)
    ax = axes[1]
    for k, angle in enumerate(("Si-O-Si", "O-Si-O")):
        for j, when in enumerate(("before", "after")):
            a = summary["angles"][when][angle]
            ax.errorbar(k + 0.15 * (2 * j - 1), a["mean"], yerr=a["std"], fmt="os"[j],
                        color=f"C{j}", label=when if k == 0 else None)  # fmt: skip
    ax.set_xticks([0, 1], ["Si-O-Si", "O-Si-O"])
    ax.set_ylabel("mean +- std (deg)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.results / f"{args.preset}_{args.name}_structure.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
