"""``rsajax md CONFIG``: config validation (fast) and a full run with resume (slow)."""

import argparse

import pytest
from ase.io import read, write

from rsajax.md import cli
from rsajax.nn.model import save_model
from tests.md.conftest import tiny_config, triclinic_silica


def parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_config_errors_are_clear(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: bks\nstructure: x.extxyz\nstages: []\ntimestep: 1\n")
    with pytest.raises(ValueError, match=r"unknown keys \['timestep'\]"):
        cli.run(parse(["md", str(path)]))
    path.write_text("model: bks\nstages: []\n")
    with pytest.raises(ValueError, match="missing required key 'structure'"):
        cli.run(parse(["md", str(path)]))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        cli.run(parse(["md", str(tmp_path / "nope.yaml")]))


@pytest.mark.slow
def test_md_command_runs_a_protocol_and_resumes(tmp_path, tiny_model):
    _, variables = tiny_model
    save_model(tmp_path / "model", tiny_config(), variables)
    write(tmp_path / "start.extxyz", triclinic_silica())
    config = tmp_path / "run.yaml"
    config.write_text(f"""
model: {tmp_path / "model"}
structure: {tmp_path / "start.extxyz"}
ensemble: {{kind: nvt_langevin, dt_fs: 1.0}}
stages:
  - {{kind: heat, T_end: 600, steps: 45}}
  - {{kind: quench, T_end: 300, rate_K_per_ps: 10000}}
limits: {{min_distance: 0.05}}
output: {{dir: {tmp_path / "unused"}, log_every: 10, records_per_chunk: 2, frame_every: 20,
          checkpoint_every: 1}}
""")
    out = tmp_path / "out"  # --out wins over output.dir
    assert cli.run(parse(["md", str(config), "--out", str(out), "--no-progress"])) == 0
    rows = (out / "thermo.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # 45 + 30 steps, padded to 80
    frames = read(out / "trajectory.extxyz", index=":")
    assert [a.info["step"] for a in frames] == [20, 40, 60, 80]
    assert cli.run(parse(["md", str(config), "--out", str(out), "--resume", "--no-progress"])) == 0
    assert (out / "thermo.csv").read_text().splitlines() == rows  # nothing left to run
    assert not (tmp_path / "unused").exists()
