"""Errors that are the user's, and how every ``rsajax`` command reports them.

A bad structure file, a missing path, a config key with a wrong value or a model that cannot be
converted is the user's to fix: the command prints one line naming the file, structure or key and
the problem, and exits with status 2 (argparse's status for a bad command line). Any other
exception is a bug and keeps its traceback. ``rsajax --debug`` shows the traceback of both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

#: Exit status of a command stopped by the user's input (as argparse uses for bad options).
INPUT_ERROR_STATUS = 2


class InputError(ValueError):
    """Input that cannot be used; the message names the file, structure or key and the problem.

    A ``ValueError``, so code that catches ``ValueError`` around a reader keeps working.
    """


#: What a command reports in one line: input errors and operating-system errors about paths
#: (missing file, a directory where a file was expected, no permission), which name the path.
USER_ERRORS: tuple[type[BaseException], ...] = (InputError, OSError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined with "; ")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def run_command(
    command: str,
    run: Callable[[argparse.Namespace], int | None],
    args: argparse.Namespace,
    *,
    debug: bool = False,
) -> int:
    """``run(args)``'s exit status; a user error prints ``rsajax COMMAND: error: ...`` on stderr
    and gives :data:`INPUT_ERROR_STATUS` instead (re-raised when ``debug``)."""
    try:
        return int(run(args) or 0)
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"rsajax {command}: error: {one_line(error)}", file=sys.stderr)
        return INPUT_ERROR_STATUS
