"""Molecules in a large periodic box: RSA-MACE's cost with and without the pair kernel.

One training batch of the ``dimers_periodic`` benchmark (two molecules of 6-10 atoms in a 30 A
cube, about 13000 k-vectors per structure at the default split; ``experiments/long_range``,
``quick`` preset data), the benchmark's own model and batch size, float64. Times, side by side in
alternating rounds: SR-MACE, RSA-MACE through the structure factors (the pair kernel switched
off) and RSA-MACE as the library runs it (the pair kernel, ``rsajax.nn.rsa.kernel``), each for
energy + forces and for the parameter gradient of an energy + force loss (a training step's
work). Prints the best time of each in ms.

Usage: python benchmarks/rsa_molecule_box.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

jax.config.update("jax_enable_x64", True)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments" / "long_range"))


def batch_and_models(workdir: Path):
    """The first training batch (one sub-batch) and ``{name: (model, variables)}``."""
    from ase.io import write
    from generate import make_splits

    from rsajax.nn.model import init_model
    from rsajax.train.config import load_config
    from rsajax.train.setup import load_data, model_config_from

    splits = make_splits("dimers_periodic", "quick")
    for split in ("train", "valid"):
        write(workdir / f"{split}.xyz", splits[split], format="extxyz")
    bench = yaml.safe_load(
        (ROOT / "experiments/long_range/configs/dimers_periodic.yaml").read_text()
    )
    models, batch = {}, None
    for name, long_range in (("SR-MACE", None), ("RSA-MACE", "default")):
        overrides = {
            "data.train_file": str(workdir / "train.xyz"),
            "data.valid_file": str(workdir / "valid.xyz"),
            "output_dir": str(workdir / "out"),
            "model.long_range": long_range,
        }
        cfg = load_config(bench["train"], overrides)
        data = load_data(cfg, 1)
        models[name] = init_model(model_config_from(cfg, data.statistics), 0)
        if long_range is not None:  # the RSA batch carries the k-set; SR ignores it
            stacked = next(iter(data.train.batches(0)))[0]  # (graph, active) of the sub-batches
            batch = jax.tree_util.tree_map(lambda x: x[0], stacked)
    return batch, models


def compiled_calls(model, variables, graph) -> list:
    """Compiled (energy + forces, loss gradient) of one model on ``graph``."""
    from rsajax.potential import energy_fn_from_model, make_potential

    potential = make_potential(energy_fn_from_model(model), compute_stress=False)

    def loss(params):
        out = potential({**variables, "params": params}, graph)
        return jnp.sum(out["energy"] ** 2) + jnp.sum(out["forces"] ** 2)

    return [
        (jax.jit(potential).lower(variables, graph).compile(), (variables, graph)),
        (jax.jit(jax.grad(loss)).lower(variables["params"]).compile(), (variables["params"],)),
    ]


def main() -> None:
    from rsa_scaling import interleaved_best  # benchmarks/ is the script's directory

    from rsajax.nn.rsa import kernel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        graph, models = batch_and_models(Path(tmp))
    sizes = np.asarray(graph.n_node)[np.asarray(graph.graph_mask)]
    num_k = int(np.asarray(graph.kset.mask).sum(axis=1).max())
    runs, names = [], []
    for name, ratio in (("SR-MACE", None), ("RSA-MACE, structure factors", 0.0),
                        ("RSA-MACE, pair kernel", kernel.PAIR_KERNEL_MAX_RATIO)):  # fmt: skip
        saved = kernel.PAIR_KERNEL_MAX_RATIO
        if ratio is not None:
            kernel.PAIR_KERNEL_MAX_RATIO = ratio  # read when the call is traced
        model, variables = models["SR-MACE" if ratio is None else "RSA-MACE"]
        runs += compiled_calls(model, variables, graph)
        kernel.PAIR_KERNEL_MAX_RATIO = saved
        names.append(name)
    best = interleaved_best(runs, args.repeats)  # alternating rounds: fair on a busy machine
    print(f"device: {jax.devices()[0].device_kind}; one dimers_periodic batch: "
          f"{len(sizes)} structures of {sizes.min()}-{sizes.max()} atoms, up to {num_k} "
          f"k-vectors each, float64")  # fmt: skip
    print(f"{'model':>30} {'energy+forces ms':>17} {'loss gradient ms':>17}")
    for i, name in enumerate(names):
        print(f"{name:>30} {1e3 * best[2 * i]:>17.1f} {1e3 * best[2 * i + 1]:>17.1f}")


if __name__ == "__main__":
    main()
