"""Command-line helpers shared by the long-range benchmark scripts."""

from __future__ import annotations

import argparse
import json
from typing import Any


def assignment(item: str) -> tuple[str, Any]:
    """argparse ``type`` of a ``KEY=VALUE`` option: the value read as JSON where it is JSON
    (``false``, ``1000``, ``[1, 2]``), else kept as the string."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
