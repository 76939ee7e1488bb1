"""`rsajax convert` end to end, and clear errors for wrong files."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

pytest.importorskip("mace", reason="needs the [torch] extra")
pytestmark = pytest.mark.torch

from rsajax.convert import cli  # noqa: E402
from rsajax.convert.mace_torch import ConversionError, import_torch, load_torch_model  # noqa: E402
from rsajax.nn.model import load_model  # noqa: E402
from tests.convert.torch_reference import make_torch_model, torch_outputs  # noqa: E402
from tests.structures import rattled_crystal  # noqa: E402


def run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_convert_file_roundtrip_and_calculator(tmp_path):
    torch = import_torch()
    torch_model = make_torch_model(max_ell=2, hidden="3x0e+3x1o", correlation=2, seed=4)
    torch.save(torch_model, tmp_path / "model.pt")
    assert run_cli(["convert", str(tmp_path / "model.pt"), str(tmp_path / "out")]) == 0
    model, variables = load_model(tmp_path / "out")
    assert model.config.model_type == "ScaleShiftMACE"

    from rsajax.calculator import RsajaxCalculator

    atoms = rattled_crystal()
    ref = torch_outputs(torch_model, atoms, model.config.r_max)
    atoms.calc = RsajaxCalculator(tmp_path / "out")
    assert abs(atoms.get_potential_energy() - ref["energy"]) <= 1e-9 * abs(ref["energy"])
    np.testing.assert_allclose(
        atoms.get_forces(), ref["forces"], atol=1e-9 * np.abs(ref["forces"]).max()
    )
    voigt = ref["stress"].flat[[0, 4, 8, 5, 2, 1]]
    np.testing.assert_allclose(atoms.get_stress(), voigt, atol=1e-9 * np.abs(voigt).max())


def test_wrong_files_give_clear_errors(tmp_path):
    torch = import_torch()
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ConversionError, match="not a torch model file"):
        load_torch_model(text)
    state = tmp_path / "state.pt"
    torch.save(make_torch_model(num_interactions=1, correlation=1).state_dict(), state)
    with pytest.raises(ConversionError, match="state_dict"):
        load_torch_model(state)
    other = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(2, 2), other)
    with pytest.raises(ConversionError, match="Linear is not supported"):
        load_torch_model(other)
    with pytest.raises(FileNotFoundError):
        load_torch_model(tmp_path / "missing.pt")
