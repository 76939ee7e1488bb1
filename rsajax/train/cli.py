"""``rsajax train CONFIG [--resume] [--key value | --set key=value ...]``."""

from __future__ import annotations

import argparse
import sys

from rsajax.errors import run_command
from rsajax.train.config import parse_overrides

EPILOG = """overrides: any config key, e.g. --optimizer.lr 1e-3 --epochs 50 or
--set loss.forces_weight=10 (all keys: docs/train_config.md)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a MACE / RSA-MACE model from a YAML or TOML config",
        description="Train a model; checkpoints, metrics.jsonl, learning_curves.png and the "
        "exported model go to output_dir.",
        epilog=EPILOG,
    )
    parser.add_argument("config", help="YAML (.yaml/.yml) or TOML (.toml) training config")
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from output_dir's last checkpoint"
    )
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace) -> int:
    tokens = list(args.overrides)
    resume = args.resume or "--resume" in tokens
    tokens = [t for t in tokens if t != "--resume"]
    overrides = parse_overrides(tokens)
    from rsajax.train.loop import train

    result = train(args.config, overrides, resume=resume)
    final = {
        k: round(v, 4)
        for k, v in result.final.items()
        if k.endswith(("_rmse", "_mae")) or k == "valid_loss"
    }
    print(f"trained {result.steps} steps; final validation {final}; model: {result.model_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rsajax")
    add_parser(parser.add_subparsers(dest="command"))
    return run_command("train", run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
