"""Train SR-MACE and RSA-MACE on one long-range benchmark and compare them on its test set.

Stages (each prints progress; each is skipped when its output exists, so a rerun resumes):

1. data: ``generate.py``'s splits in ``OUT/BENCH/data`` (made if missing, for this preset).
2. train: for each seed, SR-MACE and RSA-MACE through ``rsajax.train.train`` with the same
   config (``configs/BENCH.yaml``, the preset's epochs), RSA-MACE adding only
   ``model.long_range: "default"``. A run with ``done.json`` is skipped; one with checkpoints
   resumes (``resume=True``).
3. evaluate: the model with the lowest validation loss (``best_model``; model selection uses the
   validation split only) on the held-out test split, in the model's dtype. Energy RMSE (meV per
   structure and meV/atom) and force RMSE (meV/A) on test configurations inside the cutoff
   (closest intermolecular pair < r_max) and beyond it; beyond, also the energy RMSE with the
   model's mean error over the beyond set removed (an offset cannot decide). S22x5: the energy
   is the interaction energy ``E(AB) - E(A) - E(B)`` evaluated by the model, no forces.
4. figures: ``learning_curves.png`` (validation RMSE per epoch from each run's metrics.jsonl, SR
   vs RSA) and ``binding_curves_BENCH.png`` (model vs reference interaction energy along the scan
   set's fixed orientations, against the closest intermolecular distance, r_max marked).
5. results: ``OUT/BENCH/results.json`` (per seed, mean and spread) merged into
   ``experiments/long_range/results.json`` (skip with ``--no-merge``).

Usage:
    python experiments/long_range/run.py dimers_open --preset quick --out runs/long_range
    python experiments/long_range/run.py dimers_open --preset full --out runs/long_range \\
        --seeds 0 1 2
Smoke test of the pipeline (not a result): add ``--epochs 2 --max-train 16 --no-merge``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from ase.io import read, write  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate as gen  # noqa: E402
from options import assignment  # noqa: E402

from rsajax.data import atoms_to_record, collate  # noqa: E402
from rsajax.data.graphs import Caps  # noqa: E402
from rsajax.md import BlowUpError  # noqa: E402
from rsajax.nn.model import load_model  # noqa: E402
from rsajax.nn.rsa import make_kset_fn  # noqa: E402
from rsajax.potential import energy_fn_from_model, make_potential  # noqa: E402

MODELS = ("sr", "rsa")
RESULTS = HERE / "results.json"
UNITS = "meV per structure (energy), meV/A (forces)"
EXTRA_UNITS = {
    "exfoliation": "; scan_* and exfoliation_energy* in meV/atom",
    "water": "; dipole_* in debye (molecular |mu| from MD with each model); no beyond-cutoff "
    "configurations (a dense liquid: every molecule has neighbours inside 5 A), inside = all",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def train_config(benchmark: str, preset: str, epochs: int | None = None) -> dict:
    """The shared training config of a benchmark (``configs/BENCH.yaml``) for a preset."""
    raw = yaml.safe_load((HERE / "configs" / f"{benchmark}.yaml").read_text())
    cfg = _merge(raw["train"], raw.get("presets", {}).get(preset, {}))
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    return cfg


# --------------------------------------------------------------------------- stage 1: data


def ensure_data(benchmark: str, preset: str, data_dir: Path, max_train: int | None) -> dict:
    """Generate the splits if missing; return paths of the files training reads."""
    summary_path = data_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary["preset"] != preset:
            raise SystemExit(
                f"{data_dir} holds the {summary['preset']!r} preset's data, not {preset!r}; "
                "choose another --out"
            )
        log(f"data: {data_dir} exists ({summary['counts']})")
    else:
        log(f"data: generating {benchmark} ({preset}) in {data_dir}")
        summary = gen.generate(benchmark, data_dir, preset)
        log(f"data: done in {summary['seconds']} s ({summary['counts']})")
    train = data_dir / "train.xyz"
    if max_train is not None:
        subset = data_dir / f"train_max{max_train}.xyz"
        if not subset.is_file():
            structures = read(train, ":")
            keep = np.random.default_rng(0).permutation(len(structures))[:max_train]
            write(subset, [structures[i] for i in sorted(keep)], format="extxyz")
        train = subset
    return {"train": train, "valid": data_dir / "valid.xyz", "summary": summary}


# --------------------------------------------------------------------------- stage 2: train


def train_model(
    kind: str, cfg: dict, files: dict, run_dir: Path, seed: int, rsa_options: dict | None = None
) -> Path:
    """Train (or resume, or skip) one model; return the directory of the model to evaluate.
    RSA-MACE is the library's ``default`` preset, or the default with ``rsa_options`` changed."""
    from rsajax.train import train
    from rsajax.train.checkpoint import Checkpoints

    done = run_dir / "done.json"
    if done.is_file():
        log(f"train {kind} seed {seed}: finished earlier, skipped ({run_dir})")
        return Path(json.loads(done.read_text())["eval_model_dir"])
    cfg = _merge(
        cfg,
        {
            "output_dir": str(run_dir),
            "seed": seed,
            "data": {"train_file": str(files["train"]), "valid_file": str(files["valid"])},
        },
    )
    if kind == "rsa":
        cfg["model"]["long_range"] = dict(rsa_options) if rsa_options else "default"
    ckpt = run_dir / "checkpoints"
    resume = ckpt.is_dir() and Checkpoints(ckpt, async_save=False).latest() is not None
    t0 = time.perf_counter()

    def progress(event: str, info: dict) -> None:
        if event != "epoch":
            return
        e, f = info.get("energy_rmse"), info.get("forces_rmse")
        parts = [f"E {e:.2f} meV/atom" if e is not None else "", f"F {f:.1f} meV/A" if f else ""]
        epoch = "initial" if info["epoch"] < 0 else f"epoch {info['epoch'] + 1}/{cfg['epochs']}"
        log(
            f"train {kind} seed {seed}: {epoch} valid "
            f"{' '.join(p for p in parts if p)} ({time.perf_counter() - t0:.0f} s)"
        )

    log(f"train {kind} seed {seed}: {'resuming' if resume else 'starting'} in {run_dir}")
    result = train(cfg, resume=resume, callbacks=[progress])
    best = result.output_dir / "best_model"
    eval_dir = best if (best / "config.json").is_file() else result.model_dir
    seconds = time.perf_counter() - t0
    done.write_text(
        json.dumps(
            {"eval_model_dir": str(eval_dir), "seconds": seconds, "steps": result.steps}, indent=2
        )
    )
    log(f"train {kind} seed {seed}: done in {seconds:.0f} s, evaluating {eval_dir.name}")
    return eval_dir


# --------------------------------------------------------------------------- stage 3: evaluate


def parts_of(structures: list) -> tuple[list, np.ndarray]:
    """What a structure's interaction energy is measured from: its two monomers (dimers) or its
    layers moved apart (``arrays["layer_index"]``, the exfoliation benchmark): to the gap
    ``info["interaction_reference_gap"]`` where given (the scan: 16 A), else beyond any cutoff.
    Returns ``(parts, owner)``: ``owner[p]`` is the index of the structure part ``p`` belongs to."""
    parts, owner = [], []
    for s, a in enumerate(structures):
        if "layer_index" in a.arrays:
            from rsajax.teachers import layered

            if "interaction_reference_gap" in a.info:  # the exfoliation scan: its 16 A point
                far = layered.set_gap(a, float(a.info["interaction_reference_gap"]), a.info["gap"])
                mine = [far]
            else:
                mine = [layered.separated(a)]
        else:
            mine = monomers_of([a])
        parts += mine
        owner += [s] * len(mine)
    return parts, np.array(owner, dtype=np.int64)


def monomers_of(structures: list) -> list:
    """Both monomers of each dimer (``arrays["molecule_index"]``), A then B, in the dimer's cell
    and boundary conditions."""
    out = []
    for a in structures:
        index = a.arrays["molecule_index"]
        net = a.info.get("net_charges")
        for m in (0, 1):
            monomer = a[index == m]
            monomer.info.pop("charge", None)  # the dimer's; a monomer carries its own
            if net is not None:
                monomer.info["charge"] = round(float(np.asarray(net)[m]), 9)
            out.append(monomer)
    return out


class Evaluator:
    """A trained model as ``structures -> (energies (S,), forces list of (n, 3))``.

    ``structures``: everything it will evaluate (monomers included): they fix one padded batch
    shape and one k-set size, so the potential compiles once.
    """

    def __init__(self, model_dir: Path, structures: list, chunk: int = 16):
        self.model, self.variables = load_model(model_dir)
        self.config = self.model.config
        energy_fn = energy_fn_from_model(self.model)
        self.potential = make_potential(energy_fn, compute_stress=False)
        self.energy_only = jax.jit(energy_fn)
        self.dtype = np.float64 if self.config.dtype == "float64" else np.float32
        records = [atoms_to_record(a, self.config.r_max) for a in structures]
        self.kset_fn = None
        if self.config.long_range is not None:
            self.kset_fn = make_kset_fn(self.config.long_range, records)
        self.chunk = chunk
        self.caps = Caps(
            n_node=chunk * max(r.n_node for r in records) + 1,
            n_edge=chunk * max(r.n_edge for r in records) + 1,
            n_graph=chunk + 1,
        )

    def __call__(
        self, structures: list, forces: bool = True
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Energies (S,) and, with ``forces``, the forces of each structure."""
        records = [atoms_to_record(a, self.config.r_max) for a in structures]
        energies, all_forces = [], []
        for start in range(0, len(records), self.chunk):
            part = records[start : start + self.chunk]
            graph = collate(part, self.caps, dtype=self.dtype, kset_fn=self.kset_fn)
            if not forces:
                e = jax.device_get(self.energy_only(self.variables, graph))
                energies += [float(x) for x in e[: len(part)]]
                continue
            out = jax.device_get(self.potential(self.variables, graph))
            energies += [float(e) for e in out["energy"][: len(part)]]
            offset = 0
            for r in part:
                all_forces.append(np.asarray(out["forces"][offset : offset + r.n_node], np.float64))
                offset += r.n_node
        return np.array(energies), all_forces if forces else None

    def interaction_energies(self, structures: list) -> np.ndarray:
        """``E(AB) - E(A) - E(B)`` of dimers, each monomer alone in the dimer's cell; for layered
        structures ``E - E(layers apart)`` (:func:`parts_of`)."""
        if not structures:
            return np.zeros(0)
        e_whole, _ = self(structures, forces=False)
        parts, owner = parts_of(structures)
        e_parts, _ = self(parts, forces=False)
        return e_whole - np.bincount(owner, weights=e_parts, minlength=len(structures))


def _rmse(x: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(x**2))) if len(x) else None


def test_metrics(
    test: list, energy_pred: np.ndarray, forces_pred: list | None, r_max: float, interaction: bool
) -> dict:
    """Errors inside / beyond the cutoff (meV per structure, meV/atom, meV/A)."""
    rmin = np.array([a.info["min_intermolecular_distance"] for a in test])
    n_atoms = np.array([len(a) for a in test])
    if interaction:
        reference = np.array([a.info["interaction_energy"] for a in test])
    else:
        reference = np.array([a.get_potential_energy() for a in test])
    err = 1000.0 * (energy_pred - reference)
    out = {"n_inside": int(np.sum(rmin < r_max)), "n_beyond": int(np.sum(rmin >= r_max))}
    for region, mask in (("inside", rmin < r_max), ("beyond", rmin >= r_max), ("all", rmin >= 0)):
        out[f"{region}_rmse"] = _rmse(err[mask])
        out[f"{region}_rmse_per_atom"] = _rmse(err[mask] / n_atoms[mask])
        if region == "beyond" and mask.any():
            out["beyond_rmse_centered"] = _rmse(err[mask] - err[mask].mean())
            out["beyond_mean_error"] = float(err[mask].mean())
        if forces_pred is not None:
            f_err = [
                1000.0 * (f - a.get_forces()).ravel()
                for a, f, m in zip(test, forces_pred, mask, strict=True)
                if m
            ]
            out[f"force_{region}_rmse"] = _rmse(np.concatenate(f_err)) if f_err else None
    classes = np.array([pair_class(a) for a in test])
    beyond = rmin >= r_max
    out["beyond_rmse_by_class"] = {
        c: _rmse(err[beyond & (classes == c)]) for c in sorted(set(classes[beyond]))
    }
    return out


def pair_class(atoms) -> str:
    """``ion-ion``, ``ion-neutral`` or ``neutral-neutral`` from ``info["net_charges"]`` (S22x5
    dimers, which have none, are ``neutral-neutral``)."""
    charged = sum(abs(float(q)) > 1e-6 for q in np.ravel(atoms.info.get("net_charges", [0, 0])))
    return ("neutral-neutral", "ion-neutral", "ion-ion")[charged]


def scan_metrics(scan: list, predicted: np.ndarray, r_max: float) -> dict:
    """Interaction-energy errors along the scan inside / beyond the cutoff (meV/atom) and, for the
    exfoliation scan (``info["gap"]``), the exfoliation energy: minus the interaction energy per
    atom at the reference curve's minimum (meV/atom), the model's at the same gap."""
    if not scan:
        return {}
    rmin = np.array([a.info["min_intermolecular_distance"] for a in scan])
    n_atoms = np.array([len(a) for a in scan])
    reference = np.array([a.info["interaction_energy"] for a in scan])
    err = 1000.0 * (np.asarray(predicted) - reference) / n_atoms
    out = {
        "scan_inside_rmse_per_atom": _rmse(err[rmin < r_max]),
        "scan_beyond_rmse_per_atom": _rmse(err[rmin >= r_max]),
    }
    if "gap" in scan[0].info:
        k = int(np.argmin(reference / n_atoms))
        out["exfoliation_energy"] = float(-1000.0 * predicted[k] / n_atoms[k])
        out["exfoliation_energy_reference"] = float(-1000.0 * reference[k] / n_atoms[k])
        out["exfoliation_energy_error"] = (
            out["exfoliation_energy"] - out["exfoliation_energy_reference"]
        )
    return out


def evaluate(model_dir: Path, test: list, scan: list, r_max: float, interaction: bool) -> dict:
    parts, _ = parts_of(scan + (test if interaction else []))
    ev = Evaluator(model_dir, test + scan + parts)
    if interaction:
        energies, forces = ev.interaction_energies(test), None
    else:
        energies, forces = ev(test)
    metrics = test_metrics(test, energies, forces, r_max, interaction)
    scan_pred = ev.interaction_energies(scan)
    metrics.update(scan_metrics(scan, scan_pred, r_max))
    metrics["scan_interaction"] = scan_pred.tolist()
    return metrics


def water_dipoles(model_dir: Path, data_dir: Path, preset: str, seed: int) -> np.ndarray:
    """Molecular dipole magnitudes (debye) sampled by NVT MD with the model, from the data's
    ``dipole_start.xyz`` with the same protocol as the reference's (``generate.py``)."""
    from rsajax.md import model_system

    start = read(data_dir / "dipole_start.xyz")
    model, variables = load_model(model_dir)
    # NVT: a fixed box, so no list or k-set head room for strain
    system = model_system(model, variables, start.numbers, np.array(start.cell).T, strain_skin=0.0)
    masses = np.where(start.numbers == 1, 2.014, system.masses)  # as the reference: deuterium
    system = dataclasses.replace(system, masses=masses)
    return gen.water_dipole_sample(system, start, preset, gen._seed(0, 0, "scan") + 1000 * seed)


def dipole_noise_floor(reference: np.ndarray) -> float:
    """1-Wasserstein distance (debye) between the first and second half of the reference's own
    dipole sample: how far two samples of the same liquid lie apart with this protocol's length,
    below which a model's ``dipole_w1`` says nothing."""
    from scipy.stats import wasserstein_distance

    half = len(reference) // 2
    return float(wasserstein_distance(reference[:half], reference[half:]))


def dipole_metrics(model: np.ndarray, reference: np.ndarray) -> dict:
    """Mean and spread of the model's dipole sample, its mean's offset from the reference's and
    the 1-Wasserstein distance between the two distributions (debye)."""
    from scipy.stats import wasserstein_distance

    return {
        "dipole_mean": float(model.mean()),
        "dipole_std": float(model.std()),
        "dipole_mean_error": float(model.mean() - reference.mean()),
        "dipole_w1": float(wasserstein_distance(model, reference)),
    }


# --------------------------------------------------------------------------- stage 4: figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLORS = {"sr": "tab:blue", "rsa": "tab:orange"}
LABELS = {"sr": "SR-MACE", "rsa": "RSA-MACE"}


def plot_learning_curves(run_dirs: dict, path: Path, title: str) -> None:
    """Validation energy (and force) RMSE per epoch, every seed, SR vs RSA."""
    plt = _plt()
    histories = {}
    for (kind, seed), run_dir in run_dirs.items():
        log_path = run_dir / "metrics.jsonl"
        if log_path.is_file():
            lines = log_path.read_text().splitlines()
            histories[kind, seed] = [json.loads(x) for x in lines if x.strip()]
    if not histories:
        return
    names = [
        k for k in ("energy_rmse", "forces_rmse") if any(k in h[-1] for h in histories.values())
    ]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    units = {"energy_rmse": "meV/atom", "forces_rmse": "meV/A"}
    for ax, name in zip(axes[0], names, strict=True):
        for (kind, seed), hist in sorted(histories.items()):
            rows = [(r["epoch"] + 1, r[name]) for r in hist if name in r]
            if rows:
                label = LABELS[kind] if seed == min(s for k, s in histories if k == kind) else None
                ax.semilogy(*zip(*rows, strict=True), color=COLORS[kind], alpha=0.8, label=label)
        ax.set(xlabel="epoch", ylabel=f"valid {name.split('_')[0]} RMSE ({units[name]})")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_binding_curves(scan: list, predictions: dict, r_max: float, path: Path, title: str):
    """Per curve: reference vs model interaction energy against the closest intermolecular
    distance; ``predictions``: kind -> list over seeds of (S,) arrays."""
    plt = _plt()
    curves = list(dict.fromkeys(str(a.info["curve"]) for a in scan))
    cols = min(4, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    rmin = np.array([a.info["min_intermolecular_distance"] for a in scan])
    reference = np.array([a.info["interaction_energy"] for a in scan])
    for ax, curve in zip(axes.ravel(), curves, strict=False):
        idx = np.array([i for i, a in enumerate(scan) if str(a.info["curve"]) == curve])
        order = idx[np.argsort(rmin[idx])]
        ax.plot(rmin[order], reference[order], "k-", lw=2, label="reference")
        held_out = [i for i in order if scan[i].info.get("role") == "test"]
        if held_out:  # S22x5: curve points that are test structures
            ax.plot(rmin[held_out], reference[held_out], "ko", mfc="none", ms=9, label="test")
        for kind, runs in predictions.items():
            for s, pred in enumerate(runs):
                ax.plot(
                    rmin[order],
                    np.asarray(pred)[order],
                    "--",
                    color=COLORS[kind],
                    alpha=0.8,
                    label=LABELS[kind] if s == 0 else None,
                )
        ax.axvline(r_max, color="gray", lw=1, ls=":")
        ax.set(title=curve, xlabel="closest intermolecular distance (A)", ylabel="E_int (eV)")
    for ax in axes.ravel()[len(curves) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_dipoles(reference: np.ndarray, models: dict, path: Path, title: str) -> None:
    """Histograms of the molecular dipole magnitude: reference vs each model's MD (every seed)."""
    plt = _plt()
    samples = [reference] + [d for runs in models.values() for d in runs]
    bins = np.linspace(min(x.min() for x in samples), max(x.max() for x in samples), 60)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.hist(reference, bins=bins, density=True, color="k", histtype="step", lw=2, label="reference")
    for kind, runs in models.items():
        for s, d in enumerate(runs):
            label = LABELS[kind] if s == 0 else None
            ax.hist(d, bins=bins, density=True, histtype="step", color=COLORS[kind], label=label)
    ax.set(xlabel="molecular dipole |mu| (D)", ylabel="density")
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- stage 5: results

SUMMARY_KEYS = {
    "scan_inside_rmse_per_atom": "scan_inside_rmse_per_atom",
    "scan_beyond_rmse_per_atom": "scan_beyond_rmse_per_atom",
    "exfoliation_energy": "exfoliation_energy",
    "exfoliation_energy_error": "exfoliation_energy_error",
    "dipole_mean": "dipole_mean",
    "dipole_std": "dipole_std",
    "dipole_mean_error": "dipole_mean_error",
    "dipole_w1": "dipole_w1",
    "beyond_rmse": "beyond_rmse",
    "inside_rmse": "inside_rmse",
    "beyond_rmse_centered": "beyond_rmse_centered",
    "beyond_rmse_per_atom": "beyond_rmse_per_atom",
    "inside_rmse_per_atom": "inside_rmse_per_atom",
    "force_inside_rmse": "force_inside_rmse",
    "force_beyond_rmse": "force_beyond_rmse",
}


#: Keys of the benchmarks that have them only (left out where None).
NEW_ONLY = tuple(f"{k}_{m}" for k in MODELS for m in ("scan_", "exfoliation", "dipole"))


def summarise(per_seed: dict, data_summary: dict, command: str, preset: str, epochs: int) -> dict:
    """The flat results entry: ``{kind}_{metric}`` means over seeds, ``_std`` their spread."""
    entry: dict = {}
    for kind in MODELS:
        runs = [m for (k, _), m in sorted(per_seed.items()) if k == kind]
        if not runs:
            continue
        for name, key in SUMMARY_KEYS.items():
            values = [r[key] for r in runs if r.get(key) is not None]
            entry[f"{kind}_{name}"] = float(np.mean(values)) if values else None
            entry[f"{kind}_{name}_std"] = float(np.std(values)) if len(values) > 1 else None
    entry = {k: v for k, v in entry.items() if not (v is None and k.startswith(NEW_ONLY))}
    any_run = next(iter(per_seed.values()))
    budget = data_summary.get("test_budget", {})
    if "exfoliation" in data_summary:
        entry["exfoliation_reference"] = data_summary["exfoliation"]
    if "dipoles_reference" in data_summary:
        entry["dipoles_reference"] = data_summary["dipoles_reference"]
    entry.update(
        n_inside=any_run["n_inside"],
        n_beyond=any_run["n_beyond"],
        sr_floor_beyond_rmse=budget.get("sr_floor_beyond_rmse"),
        seeds=sorted({s for _, s in per_seed}),
        preset=preset,
        epochs=epochs,
        units=UNITS + EXTRA_UNITS.get(data_summary.get("benchmark", ""), ""),
        command=command,
    )
    return entry


def merge_results(benchmark: str, entry: dict, path: Path = RESULTS) -> None:
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[benchmark] = entry
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=gen.BENCHMARKS)
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--out", default="runs/long_range", help="writes OUT/BENCHMARK/...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="model seeds")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (smoke tests)")
    parser.add_argument("--max-train", type=int, help="train on a random subset (smoke tests)")
    parser.add_argument("--no-merge", action="store_true", help="leave results.json alone")
    parser.add_argument(
        "--rsa",
        nargs="+",
        default=[],
        type=assignment,
        metavar="KEY=VALUE",
        help="ablation: RSAConfig fields changed from the default (JSON), e.g. neutral=false; "
        "implies --no-merge",
    )
    args = parser.parse_args(argv)
    rsa_options = dict(args.rsa)
    command = shlex.join(["python", "experiments/long_range/run.py", *(argv or sys.argv[1:])])
    t_start = time.perf_counter()
    bench_dir = Path(args.out) / args.benchmark
    bench_dir.mkdir(parents=True, exist_ok=True)
    interaction = args.benchmark == "s22x5"
    water = args.benchmark == "water"

    files = ensure_data(args.benchmark, args.preset, bench_dir / "data", args.max_train)
    cfg = train_config(args.benchmark, args.preset, args.epochs)
    r_max = float(cfg["model"]["r_max"])
    test = read(bench_dir / "data" / "test.xyz", ":")
    scan_path = bench_dir / "data" / "scan.xyz"
    scan = read(scan_path, ":") if scan_path.stat().st_size else []  # water has no scan

    run_dirs, per_seed, scans = {}, {}, {k: [] for k in args.models}
    dipoles = {k: [] for k in args.models}
    dipoles_ref = np.load(bench_dir / "data" / "dipoles_reference.npy") if water else None
    for seed in args.seeds:
        for kind in args.models:
            run_dir = bench_dir / f"seed{seed}" / kind
            run_dirs[kind, seed] = run_dir
            model_dir = train_model(kind, cfg, files, run_dir, seed, rsa_options or None)
            t0 = time.perf_counter()
            metrics = evaluate(model_dir, test, scan, r_max, interaction)
            scans[kind].append(metrics.pop("scan_interaction"))
            if water:
                path, failed = run_dir / "dipoles.npy", run_dir / "md_failed.txt"
                if not path.is_file() and not failed.is_file():
                    log(f"water {kind} seed {seed}: MD with the model for the dipole sample")
                    try:
                        sample = water_dipoles(model_dir, bench_dir / "data", args.preset, seed)
                        np.save(path, sample)
                    except BlowUpError as err:  # a result too: the model's MD is not stable
                        failed.write_text(str(err) + "\n")
                if path.is_file():
                    dipoles[kind].append(np.load(path))
                    metrics.update(dipole_metrics(dipoles[kind][-1], dipoles_ref))
                else:
                    metrics["md_failed"] = failed.read_text().strip()
                    log(f"water {kind} seed {seed}: model MD failed: {metrics['md_failed']}")
            per_seed[kind, seed] = metrics
            (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            log(
                f"evaluate {kind} seed {seed}: energy RMSE inside {metrics['inside_rmse']}, "
                f"beyond {metrics['beyond_rmse']} (centred {metrics.get('beyond_rmse_centered')})"
                f" meV; {time.perf_counter() - t0:.0f} s"
            )

    title = f"{args.benchmark} ({args.preset}, {cfg['epochs']} epochs)"
    plot_learning_curves(run_dirs, bench_dir / "learning_curves.png", title)
    if scan:
        plot_binding_curves(
            scan, scans, r_max, bench_dir / f"binding_curves_{args.benchmark}.png", title
        )
        log(f"figures: {bench_dir / 'learning_curves.png'}, binding_curves_{args.benchmark}.png")
    if water:
        plot_dipoles(dipoles_ref, dipoles, bench_dir / "dipoles_water.png", title)
        log(f"figures: {bench_dir / 'learning_curves.png'}, dipoles_water.png")

    entry = summarise(per_seed, files["summary"], command, args.preset, cfg["epochs"])
    entry["max_train"] = args.max_train
    entry["seconds"] = round(time.perf_counter() - t_start, 1)  # this call (a rerun skips training)
    # each run's done.json: the wall time of its last training call (after a resume, that part)
    entry["train_seconds"] = round(
        sum(json.loads((d / "done.json").read_text())["seconds"] for d in run_dirs.values()), 1
    )
    if water:
        entry["dipole_w1_reference_halves"] = dipole_noise_floor(dipoles_ref)
    full = {
        "summary": entry,
        "per_seed": {f"{k}_seed{s}": m for (k, s), m in per_seed.items()},
        "data": files["summary"],
    }
    (bench_dir / "results.json").write_text(json.dumps(full, indent=2) + "\n")
    entry["rsa_options"] = rsa_options or None
    if not args.no_merge and not rsa_options:
        merge_results(args.benchmark, entry)
        log(f"results merged into {RESULTS}")
    log(f"results: {bench_dir / 'results.json'} ({entry['seconds']} s in all)")
    print(json.dumps(entry, indent=2))
    return entry


if __name__ == "__main__":
    main()
