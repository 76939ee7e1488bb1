"""Frozen mace-torch numbers (see tests/goldens/make_goldens.py), checked without torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rsajax.data import atoms_to_graph
from rsajax.nn.model import MACE, MACEConfig
from rsajax.potential import energy_fn_from_model, make_potential
from tests.structures import all_structures

GOLDENS = sorted((Path(__file__).parents[1] / "goldens").glob("mace_*.npz"))


def unflatten(archive) -> dict:
    tree: dict = {}
    for key in archive.files:
        if key.startswith("var/"):
            *parents, leaf = key[4:].split("/")
            node = tree
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = archive[key]
    return tree


def test_goldens_exist():
    assert len(GOLDENS) >= 2, "run `python -m tests.goldens.make_goldens` (needs torch)"


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_matches_frozen_torch_numbers(path):
    archive = np.load(path)
    config = MACEConfig.from_dict(json.loads(str(archive["config_json"])))
    variables = unflatten(archive)
    structures = all_structures()
    graph = atoms_to_graph(list(structures.values()), config.r_max)
    out = make_potential(energy_fn_from_model(MACE(config)))(variables, graph)
    node_graph = np.asarray(graph.node_graph)
    for i, name in enumerate(structures):
        for key, actual in (
            ("energy", out["energy"][i]),
            ("stress", out["stress"][i]),
            ("forces", np.asarray(out["forces"])[node_graph == i]),
        ):
            expected = archive[f"ref/{name}/{key}"]
            scale = max(float(np.max(np.abs(expected))), 1e-12)
            err = float(np.max(np.abs(np.asarray(actual) - expected)))
            assert err <= 1e-9 * scale, f"{path.stem} {name} {key}: {err:.2e} (scale {scale:.2e})"
