"""``rsajax convert model.pt OUT``: wire with ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        help="convert a mace-torch MACE/ScaleShiftMACE model to an rsajax model directory",
        description="Reads a pickled mace-torch model (needs the [torch] extra) and writes "
        "config.json and params.msgpack into OUT; load with rsajax.nn.load_model(OUT).",
    )
    parser.add_argument("model", help="mace-torch model file (*.model / *.pt)")
    parser.add_argument("out", help="output directory")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rsajax.convert.mace_torch import convert

    config, variables = convert(args.model, args.out)
    import jax

    n_params = sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))
    print(
        f"converted {config.model_type}: {config.num_interactions} interactions, "
        f"hidden {config.hidden_irreps}, max_ell {config.max_ell}, elements "
        f"{list(config.atomic_numbers)}, {n_params} parameters -> {args.out}"
    )
    return 0
