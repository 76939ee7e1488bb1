"""float32 and float64 mace-torch models convert and match mace-torch at their own precision;
edited Bessel frequencies are refused at either precision.

A float32 model's Bessel frequencies and Clebsch-Gordan tables are float32 roundings of the exact
values (up to ~1e-7 relative), so the converter checks them at the precision they were computed
in. float64 parity to 1e-9 is test_parity.py.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mace", reason="needs the [torch] extra")
pytestmark = pytest.mark.torch

from rsajax.convert.mace_torch import (  # noqa: E402
    ConversionError,
    config_from_torch,
    import_torch,
    variables_from_torch,
)
from rsajax.data import atoms_to_graph  # noqa: E402
from rsajax.nn.model import MACE  # noqa: E402
from rsajax.potential import energy_fn_from_model, make_potential  # noqa: E402
from tests.convert.test_parity import assert_close  # noqa: E402
from tests.convert.torch_reference import make_torch_model, torch_outputs  # noqa: E402
from tests.structures import all_structures  # noqa: E402

CASE = dict(max_ell=2, hidden="3x0e+3x1o", correlation=3, num_interactions=2)
BESSEL = "radial_embedding.bessel_fn.bessel_weights"


def compare(torch_model, rtol: float) -> str:
    """Convert, evaluate all test structures in the converted dtype, compare with mace-torch.

    Energy to ``rtol`` relative; forces and stress to ``rtol`` of their largest magnitude.
    Returns the dtype the outputs were computed in.
    """
    config = config_from_torch(torch_model)
    variables = variables_from_torch(torch_model, config)
    structures = all_structures()
    graph = atoms_to_graph(list(structures.values()), config.r_max, dtype=config.dtype)
    out = make_potential(energy_fn_from_model(MACE(config)))(variables, graph)
    node_graph = np.asarray(graph.node_graph)
    for i, (name, atoms) in enumerate(structures.items()):
        ref = torch_outputs(torch_model, atoms, config.r_max)
        assert_close(out["energy"][i], ref["energy"], f"{name} energy", rtol)
        assert_close(np.asarray(out["forces"])[node_graph == i], ref["forces"], f"{name} F", rtol)
        assert_close(out["stress"][i], ref["stress"], f"{name} stress", rtol)
    return str(out["energy"].dtype)


@pytest.mark.parametrize(
    "random_weights",
    [
        True,
        # the same code path with mace-torch's initial magnitudes; ~25 s on a busy CPU
        pytest.param(False, marks=pytest.mark.slow),
    ],
    ids=["random", "mace_init"],
)
def test_float32_model_converts_and_matches_at_float32_precision(random_weights):
    """Measured: energies within 1.5e-7 relative, forces within 6.3e-7 eV/A (|F| <= 0.8)."""
    torch_model = make_torch_model(**CASE, dtype="float32", random_weights=random_weights)
    assert config_from_torch(torch_model).dtype == "float32"
    assert compare(torch_model, rtol=1e-5) == "float32"  # computed in float32, not float64


def test_float32_model_saved_as_float64_converts():
    """``model.double()`` keeps the float32-rounded frequencies; rsajax uses the exact ones, a
    difference at float32 precision (measured 2e-8 relative in energy, 2.5e-7 in forces)."""
    torch_model = make_torch_model(**CASE, dtype="float32").double()
    assert config_from_torch(torch_model).dtype == "float64"
    assert compare(torch_model, rtol=1e-5) == "float64"


@pytest.mark.parametrize(
    ("dtype", "relative"),
    [("float32", 1e-4), ("float64", 1e-4), ("float64", 1e-9)],
    ids=["float32", "float64", "float64_tiny"],
)
def test_edited_bessel_frequency_is_refused(dtype, relative):
    """An edit far beyond the rounding of the model's precision (float32: ~1e-7; float64:
    ~1e-16, and 1e-9 leaves values that are no float32 numbers) is no rounding."""
    torch = import_torch()
    torch_model = make_torch_model(**CASE, dtype=dtype)
    with torch.no_grad():
        torch_model.state_dict()[BESSEL][2] *= 1.0 + relative
    with pytest.raises(ConversionError, match="trained/modified Bessel frequencies"):
        variables_from_torch(torch_model, config_from_torch(torch_model))


def test_mixed_precision_model_is_refused():
    torch_model = make_torch_model(**CASE)
    torch_model.readouts[0].linear.weight.data = torch_model.readouts[0].linear.weight.data.float()
    with pytest.raises(ConversionError, match="must all be float32 or all float64"):
        config_from_torch(torch_model)
