"""A float32 model must compute in float32 even with x64 enabled (as in the tests, MD and training).

NumPy scalars are not weakly typed in JAX: ``x32 / np.sqrt(c)`` is float64 under x64. Such a leak
once made every "float32" model run in float64 at half the speed, silently. The check reads the
jaxpr of energy, forces and stress and fails on any float64 array that is not a scalar constant.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from rsajax.data import atoms_to_graph
from rsajax.nn.model import init_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn
from rsajax.potential import energy_fn_from_model, make_potential
from tests.structures import molecule, triclinic
from tests.tiny_models import tiny_config

BASE = dict(max_ell=3, num_channels=4, correlation=3, radial_MLP=(8,), dtype="float32")


def float64_arrays(jaxpr_text: str) -> list[str]:
    """Every ``f64[...]`` with at least one dimension in a printed jaxpr."""
    return sorted(set(re.findall(r"f64\[\d[\d,]*\]", jaxpr_text)))


@pytest.mark.parametrize("long_range", [None, "default-v0", "default"])
def test_float32_model_has_no_float64_arrays(long_range):
    """``default-v0``: the earlier default (Ewald, residual) on a periodic cell; ``default``: the
    current one (Ewald times a learned correction, the additive energy, sigma from r_max) on a
    periodic cell and an open molecule (the radial pair-sum kernel) in one batch."""
    assert jax.config.jax_enable_x64
    lr = None if long_range is None else RSAConfig.preset(long_range, k_cut=1.5)
    config = tiny_config(**BASE, long_range=lr)
    model, variables = init_model(config)
    variables = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), variables)
    atoms = [triclinic()] + ([molecule()] if long_range == "default" else [])
    # the model's long-range config is resolved (sigma derived from r_max for "default")
    kset_fn = None if lr is None else make_kset_fn(config.long_range, atoms)
    graph = atoms_to_graph(atoms, config.r_max, dtype=np.float32, kset_fn=kset_fn)
    potential = make_potential(energy_fn_from_model(model))
    text = str(jax.make_jaxpr(potential)(variables, graph))
    assert float64_arrays(text) == []
    out = potential(variables, graph)
    assert {k: str(v.dtype) for k, v in out.items()} == dict.fromkeys(out, "float32")
