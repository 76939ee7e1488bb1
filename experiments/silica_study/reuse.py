"""The pieces of ``experiments/long_range/silica.py`` this study reuses (teacher MD with far
Coulomb labels, extxyz writer, training with resume, test errors, errors per stage), loaded as a
module: that script imports its neighbour ``options.py``, so its folder goes on ``sys.path``."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
LONG_RANGE = REPO / "experiments" / "long_range"


@cache
def long_range_silica() -> ModuleType:
    """``experiments/long_range/silica.py`` as the module ``long_range_silica``."""
    if str(LONG_RANGE) not in sys.path:
        sys.path.insert(0, str(LONG_RANGE))
    spec = importlib.util.spec_from_file_location("long_range_silica", LONG_RANGE / "silica.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module
