"""Is the BKS teacher's melt-quenched glass a tetrahedral network? Numbers for the issue report.

    python experiments/silica_bks_teacher/melt_quench.py            # analyse the shipped data set
    python experiments/silica_bks_teacher/melt_quench.py --seed 5   # run a fresh small-config
                                                                      # melt-quench of 192 atoms

Per run (the annealed 300 K frames): Si-O peak of g_SiO (histogram, 0.01 A bins), its first
minimum, Si(O) and O(Si) coordination to that minimum, fraction of 4-coordinated Si, mean O-Si-O
and Si-O-Si angles.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from ase.neighborlist import neighbor_list

DATASET = Path(__file__).resolve().parents[2] / "rsajax" / "data" / "default" / "silica_small.xyz"


def si_o_distances(frames: list[Atoms], r_max: float = 3.0) -> np.ndarray:
    out = []
    for atoms in frames:
        i, j, d = neighbor_list("ijd", atoms, r_max)
        out.append(d[(atoms.numbers[i] == 14) & (atoms.numbers[j] == 8)])
    return np.concatenate(out)


def glass_numbers(frames: list[Atoms]) -> dict:
    d = si_o_distances(frames)
    hist, edges = np.histogram(d, bins=np.arange(1.2, 3.0, 0.01))
    centres = 0.5 * (edges[1:] + edges[:-1])
    shell = hist / centres**2  # proportional to g_SiO(r)
    peak = int(np.argmax(shell))
    minimum = peak + int(np.argmin(shell[peak : peak + 80]))
    r_min = float(centres[minimum])
    cn_si, cn_o, four, o_si_o, si_o_si = [], [], [], [], []
    for atoms in frames:
        i, j, dd, D = neighbor_list("ijdD", atoms, r_min)
        bond = (atoms.numbers[i] != atoms.numbers[j]) & (atoms.numbers[i] + atoms.numbers[j] == 22)
        i, j, D = i[bond], j[bond], D[bond]
        counts = np.bincount(i, minlength=len(atoms))
        cn_si.append(counts[atoms.numbers == 14].mean())
        cn_o.append(counts[atoms.numbers == 8].mean())
        four.append(np.mean(counts[atoms.numbers == 14] == 4))
        for centre in range(len(atoms)):
            vectors = D[i == centre]
            unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            cos = unit @ unit.T
            upper = np.triu_indices(len(unit), 1)
            angles = np.degrees(np.arccos(np.clip(cos[upper], -1, 1)))
            (o_si_o if atoms.numbers[centre] == 14 else si_o_si).extend(angles)
    return dict(
        frames=len(frames),
        atoms=len(frames[0]),
        peak_A=float(centres[peak]),
        first_min_A=r_min,
        cn_si=float(np.mean(cn_si)),
        cn_o=float(np.mean(cn_o)),
        si4_fraction=float(np.mean(four)),
        o_si_o_deg=float(np.mean(o_si_o)),
        si_o_si_deg=float(np.mean(si_o_si)),
    )


def shipped_runs() -> list[list[Atoms]]:
    frames = [a for a in read(DATASET, ":") if a.info["stage"] == "anneal"]
    return [
        [a for a in frames if a.info["run"] == run]
        for run in sorted({a.info["run"] for a in frames})
    ]


def fresh_run(seed: int) -> list[list[Atoms]]:
    import jax

    jax.config.update("jax_enable_x64", True)
    from rsajax.teachers.generate import CONFIGS, melt_quench_frames

    config = CONFIGS["small"]
    frames = list(melt_quench_frames(config, config.runs[0], seed, 0))
    return [[a for a in frames if a.info["stage"] == "anneal"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=None, help="run a fresh melt-quench")
    args = parser.parse_args()
    runs = shipped_runs() if args.seed is None else fresh_run(args.seed)
    print(
        f"{'atoms':>5} {'frames':>6} {'Si-O peak':>9} {'1st min':>7} {'CN Si':>6} {'CN O':>5} "
        f"{'Si4':>5} {'O-Si-O':>7} {'Si-O-Si':>7}"
    )
    for frames in runs:
        r = glass_numbers(frames)
        print(
            f"{r['atoms']:>5} {r['frames']:>6} {r['peak_A']:>9.3f} {r['first_min_A']:>7.2f} "
            f"{r['cn_si']:>6.3f} {r['cn_o']:>5.3f} {r['si4_fraction']:>5.3f} "
            f"{r['o_si_o_deg']:>7.2f} {r['si_o_si_deg']:>7.2f}"
        )


if __name__ == "__main__":
    main()
