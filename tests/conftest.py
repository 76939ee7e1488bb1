"""Test-session settings: float64 everywhere (correctness tests compare to 1e-9 and better)."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parents[1]
#: Experimental data lives beside the repository (never copied into it).
SHARED = Path(os.environ.get("RSAJAX_SHARED", REPO.parent / "shared"))


@pytest.fixture
def shared_dir() -> Path:
    return SHARED
