"""The ``rsajax`` command line: one subcommand per job, each in its own module.

A subcommand module provides ``add_parser(subparsers)`` and ``run(args) -> int``. Modules are
imported only when present, so ``rsajax --help`` stays fast and lists what this install has. Every
subcommand runs through :func:`rsajax.errors.run_command`: an error that is the user's (bad file,
structure, config value, missing path) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rsajax.errors import run_command

#: (subcommand, module) in the order ``--help`` lists them.
SUBCOMMANDS = (
    ("demo", "rsajax.demo"),
    ("info", "rsajax.data.summary"),
    ("teach", "rsajax.teachers.cli"),
    ("train", "rsajax.train.cli"),
    ("md", "rsajax.md.cli"),
    ("analyze", "rsajax.analysis.cli"),
    ("convert", "rsajax.convert.cli"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rsajax",
        description="Reciprocal-space attention and MACE interatomic potentials in JAX.",
    )
    from rsajax import __version__

    parser.add_argument("--version", action="version", version=f"rsajax {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of input errors too"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module_name in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # this part of rsajax is not built yet
            raise
        sub = module.add_parser(subparsers)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 1
    return run_command(args.command, args.run, args, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
