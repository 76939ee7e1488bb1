"""Errors raised for bad input structures."""

from __future__ import annotations

from rsajax.errors import InputError


class StructureError(InputError):
    """A structure cannot be used; the message names the file, the index and the problem."""

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")
