"""Dataclasses whose fields carry their own help text.

A field is declared once, with its default and what it means (``key(default, "help")``); the
texts are appended to the class docstring and rendered into ``docs/train_config.md``. Used by the
model's hyperparameters (:mod:`rsajax.nn.model`) and the training config
(:mod:`rsajax.train.config`), so a hyperparameter the trainer reads is declared only where the
model declares it.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def key(default: Any, help: str) -> Any:
    """A documented dataclass field (mutable defaults are copied per instance)."""
    if isinstance(default, list | dict):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help})


def documented(cls=None, *, frozen: bool = False):
    """Make ``cls`` a dataclass and append an ``Attributes:`` section built from field help."""

    def wrap(cls):
        cls = dataclasses.dataclass(cls, frozen=frozen)
        lines = [(cls.__doc__ or "").rstrip(), "", "Attributes:"]
        for f in dataclasses.fields(cls):
            if "help" in f.metadata:
                lines.append(f"    {f.name}: {f.metadata['help']} (default: {default_of(f)!r})")
        cls.__doc__ = "\n".join(lines)
        return cls

    return wrap if cls is None else wrap(cls)


def default_of(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field (calling its factory)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None
