"""``rsajax convert model.pt OUT``: wire with ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    from rsajax.convert.mace_torch import convert, import_torch
    from rsajax.errors import InputError

    if not Path(args.model).is_file():
        raise FileNotFoundError(f"{args.model}: no such model file")
    try:
        import_torch()
    except ImportError as err:  # a missing optional extra is the user's to install: one line
        raise InputError(str(err)) from err

    config, variables = convert(args.model, args.out)
    import jax

    n_params = sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))
    print(
        f"converted {config.model_type}: {config.num_interactions} interactions, "
        f"hidden {config.hidden_irreps}, max_ell {config.max_ell}, elements "
        f"{list(config.atomic_numbers)}, {n_params} parameters -> {args.out}"
    )
    return 0
