"""Net learned source amplitude of each molecule in a periodic dimer, before and after the RSA
layer's per-structure neutralisation (``RSAConfig.neutral``), at the far end of a scan.

A diagnostic for ``dimers_periodic``'s binding curves: with per-structure neutralisation, two
different neutral molecules whose raw amplitudes do not sum to zero carry equal and opposite net
amplitudes in the pair (a spurious monopole-monopole tail) and none alone. Prints, per trained
seed and RSA layer, the RMS amplitude norm of one atom, each molecule's summed amplitude norm
raw and neutralised, and the model's and the reference's interaction energy (eV).

Usage: PYTHONPATH=. python experiments/long_range/net_amplitudes.py runs/long_range/dimers_periodic
       [--pairs ammonia_water ammonium_formate] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
from ase.io import read

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).parent))

from run import Evaluator, parts_of  # noqa: E402

import rsajax.nn.rsa.kernel as kernel  # noqa: E402


def recorded_amplitudes(evaluator: Evaluator, dimer) -> list[tuple[np.ndarray, ...]]:
    """(raw, neutralised, node_mask) amplitudes of every RSA layer for one structure (the
    kernel's ``queries_and_amplitudes`` wrapped, run without jit so the values are concrete)."""
    records, original = [], kernel.queries_and_amplitudes

    def wrapped(q, k, v, node_graph, node_mask, num_graphs, num_heads, neutral=False,
                total_amplitude=None, dispersion_heads=0):  # fmt: skip
        common = (q, k, v, node_graph, node_mask, num_graphs, num_heads)
        raw = original(*common, False, None, dispersion_heads)[1]
        out = original(*common, neutral, total_amplitude, dispersion_heads)
        records.append((np.asarray(raw), np.asarray(out[1]), np.asarray(node_mask)))
        return out

    kernel.queries_and_amplitudes = wrapped
    try:
        with jax.disable_jit():
            evaluator([dimer], forces=False)
    finally:
        kernel.queries_and_amplitudes = original
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path, help="OUT/dimers_periodic of run.py")
    parser.add_argument("--pairs", nargs="+", default=["ammonia_water", "ammonium_formate"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    scan = read(args.bench_dir / "data" / "scan.xyz", ":")
    for pair in args.pairs:
        far = [a for a in scan if a.info.get("pair") == pair][-1]
        parts, _ = parts_of([far])
        n_a = len(parts[0])
        for seed in args.seeds:
            model_dir = args.bench_dir / f"seed{seed}" / "rsa" / "best_model"
            evaluator = Evaluator(model_dir, [far, *parts], chunk=1)
            e_int = float(evaluator.interaction_energies([far])[0])
            layers = []
            for raw, neutral, mask in recorded_amplitudes(evaluator, far):
                n = int(mask.sum())
                atom = np.sqrt(np.mean(np.sum(np.abs(raw[:n]) ** 2, axis=(1, 2, 3))))
                norms = [np.linalg.norm(x[sl].sum(0)) for x in (raw, neutral)
                         for sl in (slice(0, n_a), slice(n_a, n))]  # fmt: skip
                layers.append(
                    f"atom {atom:.2f}, raw A {norms[0]:.2f} B {norms[1]:.2f}, "
                    f"neutralised A {norms[2]:.2f} B {norms[3]:.2f}"
                )
            print(
                f"{pair} seed {seed}, closest pair {far.info['min_intermolecular_distance']:.1f} A:"
                f" E_int model {e_int:.3f} eV, reference {far.info['interaction_energy']:.3f} eV"
                f" | " + " | ".join(layers),
                flush=True,
            )


if __name__ == "__main__":
    main()
