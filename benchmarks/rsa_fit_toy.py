"""Fit quality of SR-MACE and RSA-MACE variants on a long-range toy target (chooses the default).

Target: the Coulomb (Ewald) energy of point charges (Si +2.4 e, O -1.2 e, the BKS charges) on
random silica-like boxes of several densities, from pymatgen's ``EwaldSummation``. Much of it lies
beyond any short-range cutoff, so a short-range model cannot fit it; a long-range one can. Each
model is trained on energies only (full batch, Adam) from the same seed and scored on held-out
boxes (RMSE in meV/atom). Tiny models and few steps: this ranks variants, it does not tune them.

Usage: python benchmarks/rsa_fit_toy.py [--steps 300] [--variants default residual ...]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure

from rsajax.data import atoms_to_graph, random_silica_box
from rsajax.nn.model import MACEConfig, init_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn

CHARGES = {14: 2.4, 8: -1.2}
MODEL = dict(
    r_max=4.0,
    num_bessel=6,
    max_ell=2,
    num_channels=8,
    max_L=1,
    correlation=2,
    num_interactions=2,
    MLP_irreps="8x0e",
    radial_MLP=(16, 16),
    avg_num_neighbors=8.0,
    atomic_numbers=(8, 14),
    atomic_energies=(0.0, 0.0),
)
VARIANTS = {
    "SR": lambda: None,
    "default": lambda: RSAConfig.preset("default"),
    "k_cut=1.0": lambda: RSAConfig.preset("default", k_cut=1.0),
    "k_cut=1.2": lambda: RSAConfig.preset("default", k_cut=1.2),
    "sigma=3": lambda: RSAConfig.preset("default", sigma=3.0),
    "learned": lambda: RSAConfig.preset("default", weighting="learned"),
    "gate": lambda: RSAConfig.preset("default", combine="gate"),
    "tp": lambda: RSAConfig.preset("default", combine="tp"),
}


def coulomb_energy(atoms) -> float:
    """Ewald energy (eV) of the point charges of ``atoms`` (pymatgen)."""
    charges = [CHARGES[z] for z in atoms.numbers]
    structure = Structure(
        Lattice(atoms.cell.array),
        atoms.get_chemical_symbols(),
        atoms.positions,
        coords_are_cartesian=True,
        site_properties={"charge": charges},
    )
    return float(EwaldSummation(structure).total_energy)


def dataset(count: int, n_atoms: int, seed: int):
    rng = np.random.default_rng(seed)
    boxes = [
        random_silica_box(n_atoms, density=rng.uniform(1.9, 2.5), seed=seed * 1000 + i, rattle=0.3)
        for i in range(count)
    ]
    return boxes, np.array([coulomb_energy(a) for a in boxes])


def fit(long_range, train, test, steps: int, lr: float, seed: int = 0) -> tuple[float, float]:
    """(train, test) RMSE in meV/atom after ``steps`` full-batch Adam steps."""
    (train_atoms, e_train), (test_atoms, e_test) = train, test
    n = len(train_atoms[0])
    per_atom = e_train / n
    config = MACEConfig(
        **MODEL, scale=float(per_atom.std()), shift=float(per_atom.mean()), long_range=long_range
    )
    model, variables = init_model(config, seed=seed)
    kset_fn = None if long_range is None else make_kset_fn(long_range, train_atoms + test_atoms)
    g_train = atoms_to_graph(train_atoms, config.r_max, kset_fn=kset_fn)
    g_test = atoms_to_graph(test_atoms, config.r_max, kset_fn=kset_fn)

    def rmse(params, graph, target):
        pred = model.apply({**variables, "params": params}, graph)[: len(target)]
        return jnp.sqrt(jnp.mean(((pred - target) / n) ** 2))

    optimizer = optax.adam(lr)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(rmse)(params, g_train, e_train)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    params = variables["params"]
    state = optimizer.init(params)
    for _ in range(steps):
        params, state, _ = step(params, state)
    evaluate = jax.jit(rmse)
    return 1e3 * float(evaluate(params, g_train, e_train)), 1e3 * float(
        evaluate(params, g_test, e_test)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--train", type=int, default=24)
    parser.add_argument("--test", type=int, default=12)
    parser.add_argument("--atoms", type=int, default=81)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    train = dataset(args.train, args.atoms, seed=1)
    test = dataset(args.test, args.atoms, seed=2)
    spread = 1e3 * np.std(test[1] / args.atoms)
    print(
        f"{args.train} train / {args.test} test boxes of {args.atoms} atoms, "
        f"test energy spread {spread:.1f} meV/atom; {args.steps} Adam steps, lr {args.lr}"
    )
    print(f"{'variant':>10} {'train meV/at':>12} {'test meV/at':>12} {'s':>6}")
    for name in args.variants:
        start = time.perf_counter()
        e_train, e_test = fit(VARIANTS[name](), train, test, args.steps, args.lr)
        elapsed = time.perf_counter() - start
        print(f"{name:>10} {e_train:>12.2f} {e_test:>12.2f} {elapsed:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
