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

from rsajax.errors import INPUT_ERROR_STATUS, one_line, run_command

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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors (unknown option, bad choice, missing argument) are one line,
    ``rsajax CMD: error: ...`` with a pointer to ``--help``, and exit status 2, like every other
    input error. Subcommand parsers are made of the same class."""

    def error(self, message: str):
        self.exit(INPUT_ERROR_STATUS, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rsajax",
        description="Reciprocal-space attention and MACE interatomic potentials in JAX.",
    )
    from rsajax import __version__

    parser.add_argument("--version", action="version", version=f"rsajax {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of input errors too"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = {}  # name -> subcommand parser, which reports its own bad options
    for name, module_name in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # this part of rsajax is not built yet
            raise
        sub = module.add_parser(subparsers)
        sub.set_defaults(run=module.run)
        parser.commands[name] = sub
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            command = parser.commands.get(getattr(args, "command", None), parser)
            command.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as stop:  # a bad command line, --help or --version: its status
        return 0 if stop.code is None else int(stop.code)
    if not hasattr(args, "run"):
        parser.print_help()
        return 1
    return run_command(args.command, args.run, args, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
