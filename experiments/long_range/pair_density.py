"""Energy error per density of the best smooth pairwise 5 A model (``silica.py pairfit``'s
linear least squares with the training loss's weights), fitted to the BKS labels of a data
folder: can a local pair model learn the density dependence that both MACE models miss?

    PYTHONPATH=. python experiments/long_range/pair_density.py [DATA]

``DATA`` defaults to ``runs/silica_dens/data`` (``silica.py run --preset densities``). Prints the
mean +- spread (meV/atom) of the energy error per group: the 96-atom training quench frames per
density (``None``: the shipped 2.2 g/cm3 frames) and the test frames.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import ase.io
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.silica_study.reuse import long_range_silica  # noqa: E402


def main(data: Path) -> None:
    silica = long_range_silica()
    train = ase.io.read(data / "train.xyz", ":")
    test = ase.io.read(data / "test.xyz", ":")
    feats = [silica.pair_features(a) for a in train]
    coef = silica.pair_fit(train, feats, lambda a: (a.get_potential_energy(), a.get_forces()))
    groups = defaultdict(list)
    test_feats = [silica.pair_features(a) for a in test]
    for name, frames, fs in (("train", train, feats), ("test", test, test_feats)):
        for atoms, (fe, _) in zip(frames, fs, strict=True):
            stage = atoms.info.get("stage")
            if stage not in ("quench", "liquid", "quenched"):
                continue
            if name == "train" and len(atoms) != 96:
                continue
            key = f"{name}:{stage}:{len(atoms)}@{atoms.info.get('density_g_cm3')}"
            groups[key].append(1e3 * (fe @ coef - atoms.get_potential_energy()) / len(atoms))
    for key, errors in sorted(groups.items()):
        print(f"{key:28s} {np.mean(errors):7.1f} +- {np.std(errors):4.1f} ({len(errors)} frames)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/silica_dens/data"))
