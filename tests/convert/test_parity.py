"""rsajax MACE vs mace-torch 0.3.16 in float64: energies, forces and stress to 1e-9 relative."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("mace", reason="needs the [torch] extra")
pytestmark = pytest.mark.torch

from rsajax.convert.mace_torch import config_from_torch, variables_from_torch  # noqa: E402
from rsajax.data import atoms_to_graph  # noqa: E402
from rsajax.nn.model import MACE  # noqa: E402
from rsajax.potential import energy_fn_from_model, make_potential  # noqa: E402
from tests.convert.torch_reference import make_torch_model, torch_outputs  # noqa: E402
from tests.structures import all_structures  # noqa: E402

RES = "RealAgnosticResidualInteractionBlock"
NONRES = "RealAgnosticInteractionBlock"
HIDDEN = {0: "3x0e", 1: "3x0e+3x1o", 2: "3x0e+3x1o+3x2e"}

# (max_ell, hidden L, correlation, num_interactions, first block, ScaleShiftMACE): every value of
# each axis appears at least once; the full product runs under -m slow.
DEFAULT_CASES = [
    (1, 0, 1, 1, RES, True),
    (2, 1, 2, 2, NONRES, False),
    (3, 2, 3, 3, RES, True),
]
FULL_CASES = [
    (ell, hl, corr, n, first, ss)
    for ell, hl, corr, n in itertools.product((1, 2, 3), (0, 1, 2), (1, 2, 3), (1, 2, 3))
    for first, ss in [(RES, True) if (ell + corr + n) % 2 else (NONRES, False)]
    if hl <= ell and (ell, hl, corr, n, first, ss) not in DEFAULT_CASES
]


def assert_close(actual, expected, what: str, rtol: float = 1e-9) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-12)
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= rtol * scale, f"{what}: max |diff| {err:.3e} vs scale {scale:.3e}"


def check_case(max_ell, hidden_l, correlation, num_interactions, first, scale_shift):
    torch_model = make_torch_model(
        max_ell=max_ell,
        hidden=HIDDEN[hidden_l],
        correlation=correlation,
        num_interactions=num_interactions,
        first=first,
        scale_shift=scale_shift,
    )
    config = config_from_torch(torch_model)
    variables = variables_from_torch(torch_model, config)
    structures = all_structures()
    graph = atoms_to_graph(list(structures.values()), config.r_max)
    out = make_potential(energy_fn_from_model(MACE(config)))(variables, graph)
    node_graph = np.asarray(graph.node_graph)
    for i, (name, atoms) in enumerate(structures.items()):
        ref = torch_outputs(torch_model, atoms, config.r_max)
        assert_close(out["energy"][i], ref["energy"], f"{name} energy")
        assert_close(np.asarray(out["forces"])[node_graph == i], ref["forces"], f"{name} forces")
        assert_close(out["stress"][i], ref["stress"], f"{name} stress")
        if name == "strained_crystal":  # the stress check must not be vacuous
            assert np.max(np.abs(ref["stress"])) > 1e-6


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=str)
def test_parity(case):
    check_case(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", FULL_CASES, ids=str)
def test_parity_full_matrix(case):
    check_case(*case)


def test_cuequivariance_absent():
    """cuequivariance changes mace-torch's contraction basis; parity is pinned without it."""
    with pytest.raises(ImportError):
        import cuequivariance  # noqa: F401
