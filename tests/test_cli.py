"""Every ``rsajax`` subcommand on bad input: one line on stderr naming the file, structure or key
and the problem, exit status 2, no traceback; ``--debug`` and real bugs keep the traceback."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.io import write

from rsajax.cli import SUBCOMMANDS, main
from rsajax.errors import INPUT_ERROR_STATUS, InputError

NAN_XYZ = """2
Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"
Si 0.0 0.0 0.0
O nan 1.0 1.0
"""


def one_line_error(argv: list[str], capsys) -> str:
    """Run ``rsajax argv``; check status 2 and a single ``rsajax CMD: error:`` line; return it."""
    assert main(argv) == INPUT_ERROR_STATUS
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"rsajax {argv[0]}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def crystal(tmp_path):
    path = tmp_path / "crystal.extxyz"
    write(path, bulk("Si", "diamond", a=5.43, cubic=True))
    return path


def md_config(tmp_path, text: str, structure) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(f"model: bks\nstructure: {structure}\n{text}")
    return str(path)


def test_info_names_the_structure_with_a_nan_position(tmp_path, capsys):
    path = tmp_path / "nan.xyz"
    path.write_text(NAN_XYZ)
    line = one_line_error(["info", str(path)], capsys)
    assert f"{path}[0]: non-finite positions on atom(s) [1]" in line
    assert "no such structure file" in one_line_error(["info", str(tmp_path / "no.xyz")], capsys)
    assert "--cutoff must be positive" in one_line_error(
        ["info", str(path), "--cutoff", "-1"], capsys
    )


def test_md_names_the_config_file_and_the_key(tmp_path, capsys, crystal):
    missing = tmp_path / "missing.yaml"
    assert f"{missing}: config file not found" in one_line_error(["md", str(missing)], capsys)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: [bks\n")
    assert f"{bad_yaml}: not valid YAML" in one_line_error(["md", str(bad_yaml)], capsys)
    stage = "stages: [{kind: hold, steps: 10}]\n"
    cases = {
        "dtype: float16\n" + stage: "dtype must be float32 or float64, got 'float16'",
        "ensemble: {kind: nvt_langevin, dt: 1}\n" + stage: "ensemble: unknown keys ['dt']",
        "ensemble: {kind: nvt}\n" + stage: "ensemble kind 'nvt' unknown",
        "stages: [{kind: heat, steps: 10}]\n": "stages[0]: heat stage needs T_end",
        "stages: [{kind: hold, steps: 10, T_K: 3}]\n": "unknown keys ['T_K']",
        "stages: {kind: hold}\n": "stages must be a list",
        "output: {log_evry: 10}\n" + stage: "output: unknown keys ['log_evry']",
        "output: {log_every: 0}\n" + stage: "output.log_every must be a positive integer",
        "limits: {min_dist: 1}\n" + stage: "limits: unknown keys ['min_dist']",
        "seed: zero\n" + stage: "seed must be an integer, got 'zero'",
    }
    for text, problem in cases.items():
        config = md_config(tmp_path, text, crystal)
        line = one_line_error(["md", config], capsys)
        assert f"{config}: " in line and problem in line, (text, line)
    config = md_config(tmp_path, stage, tmp_path / "nowhere.extxyz")
    line = one_line_error(["md", config], capsys)
    assert "nowhere.extxyz: structure file not found" in line


def test_train_analyze_convert_demo_report_one_line(tmp_path, capsys, crystal):
    missing = tmp_path / "missing.yaml"
    assert f"{missing}: no such config file" in one_line_error(["train", str(missing)], capsys)
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 2\n")
    line = one_line_error(["train", str(config), "--optimizer.lrr", "0.1"], capsys)
    assert "did you mean optimizer.lr" in line
    out = ["--out", str(tmp_path / "report")]
    line = one_line_error(["analyze", str(tmp_path / "none.extxyz"), *out], capsys)
    assert "trajectory not found" in line and "none.extxyz" in line
    line = one_line_error(["analyze", str(crystal), *out, "--compare", "experiment"], capsys)
    assert "--compare experiment needs --exp-path" in line
    line = one_line_error(["convert", str(tmp_path / "m.model"), str(tmp_path / "o")], capsys)
    assert "m.model: no such model file" in line
    line = one_line_error(["demo", "--data", str(tmp_path / "d.xyz"), *out], capsys)
    assert "d.xyz: no such structure file" in line


def bad_input(tmp_path) -> dict[str, tuple[list[str], str]]:
    """One bad input per subcommand: argv and what its line must say."""
    out = ["--out", str(tmp_path / "out")]
    return {
        "demo": (["demo", "--data", str(tmp_path / "d.xyz"), *out], "no such structure file"),
        "info": (["info", str(tmp_path / "no.xyz")], "no such structure file"),
        "teach": (["teach", "glass"], "invalid choice: 'glass'"),
        "train": (["train", str(tmp_path / "none.yaml")], "no such config file"),
        "md": (["md", str(tmp_path / "none.yaml")], "config file not found"),
        "analyze": (["analyze", str(tmp_path / "none.extxyz"), *out], "trajectory not found"),
        "convert": (["convert", str(tmp_path / "m.model"), str(tmp_path / "o")], "no such model"),
    }


def test_the_bad_input_table_has_every_subcommand(tmp_path):
    assert set(bad_input(tmp_path)) == {name for name, _ in SUBCOMMANDS}


@pytest.mark.parametrize("command", [name for name, _ in SUBCOMMANDS])
def test_every_subcommand_on_bad_input_and_bad_options(command, tmp_path, capsys):
    argv, problem = bad_input(tmp_path)[command]
    assert problem in one_line_error(argv, capsys)
    # argparse's errors too (train reads unknown options as config overrides, which need a value)
    argv = ["teach", "silica"] if command == "teach" else argv  # its bad input is argparse's
    line = one_line_error([*argv, "--no-such-option"], capsys)
    assert "--no-such-option" in line, line
    if command != "demo":  # demo needs no argument: bare, it would run
        assert "required" in one_line_error([command], capsys)  # a missing argument


def test_bad_top_level_command_is_one_line(capsys):
    assert main(["nosuch"]) == INPUT_ERROR_STATUS
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nosuch'" in err and "Traceback" not in err
    assert main(["--version"]) == 0


def test_debug_shows_the_traceback_and_bugs_keep_theirs(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        main(["--debug", "md", str(tmp_path / "missing.yaml")])

    def buggy(args):
        raise KeyError("a bug, not the user's input")

    import rsajax.data.summary

    monkeypatch.setattr(rsajax.data.summary, "run", buggy)
    with pytest.raises(KeyError, match="a bug"):
        main(["info", str(tmp_path / "x.xyz")])


def test_input_errors_are_value_errors():
    """Callers that catch ValueError around readers and configs keep working."""
    from rsajax.convert.mace_torch import ConversionError
    from rsajax.data import StructureError
    from rsajax.train import CheckpointMismatchError, ConfigError

    for kind in (StructureError, ConfigError, ConversionError, CheckpointMismatchError):
        assert issubclass(kind, InputError) and issubclass(kind, ValueError)


def test_teach_offers_every_bks_variant_and_nothing_else(capsys):
    # the CLI lists the variants literally (importing the teacher would load JAX for --help)
    from rsajax.cli import build_parser
    from rsajax.teachers.bks import VARIANTS

    teach = build_parser()._subparsers._group_actions[0].choices["teach"]
    (option,) = [a for a in teach._actions if "--teacher" in a.option_strings]
    assert list(option.choices) == list(VARIANTS)
    assert "invalid choice: 'bks-5'" in one_line_error(
        ["teach", "silica", "--teacher", "bks-5"], capsys
    )
