"""``rsajax md CONFIG``: config validation (fast), a full run with resume (slow), an RSA-MACE run
that logs the long-range energy."""

import argparse
import csv
import json

import numpy as np
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
    start = triclinic_silica()
    start.info["charge"] = "plus one"
    write(tmp_path / "start.extxyz", start)
    with pytest.raises(ValueError, match=r"start.extxyz: info\['charge'\] must be a number"):
        cli.load_structure(str(tmp_path / "start.extxyz"), str(path))


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


def test_md_command_logs_the_long_range_energy_of_an_rsa_model(tmp_path):
    """A saved RSA-MACE runs under ``rsajax md``; the thermo log's ``E_lr_eV`` is the long-range
    part of ``E_pot_eV``, as the ASE calculator reports it for the logged frame."""
    from rsajax.calculator import RsajaxCalculator
    from rsajax.nn.model import init_model
    from tests.tiny_models import switch_on_long_range

    config = tiny_config(long_range="default")
    _, variables = init_model(config, seed=2)
    save_model(tmp_path / "model", config, switch_on_long_range(variables))
    start = triclinic_silica()
    start.info["charge"] = 1.0  # a charged cell: the frames and the calculator must carry it
    write(tmp_path / "start.extxyz", start)
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(f"""
model: {tmp_path / "model"}
structure: {tmp_path / "start.extxyz"}
ensemble: {{kind: nvt_langevin, dt_fs: 0.5}}
stages: [{{kind: hold, T: 300, steps: 10}}]
limits: {{min_distance: 0.05}}
output: {{dir: {tmp_path / "out"}, log_every: 5, records_per_chunk: 2, frame_every: 10}}
""")
    assert cli.run(parse(["md", str(run_yaml), "--no-progress"])) == 0
    with open(tmp_path / "out" / "thermo.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [5, 10]
    e_lr = np.array([float(r["E_lr_eV"]) for r in rows])
    assert np.all(np.isfinite(e_lr)) and np.all(np.abs(e_lr) > 1e-3)
    logged = [json.loads(line) for line in (tmp_path / "out" / "thermo.jsonl").open()]
    np.testing.assert_allclose([r["E_lr_eV"] for r in logged], e_lr, rtol=1e-12)
    frame = read(tmp_path / "out" / "trajectory.traj", index=-1)  # step 10, full precision
    assert frame.info["charge"] == 1.0
    frame.calc = RsajaxCalculator(tmp_path / "model")
    assert frame.get_potential_energy() == pytest.approx(logged[-1]["E_pot_eV"], rel=1e-9)
    assert frame.calc.get_long_range_energy() == pytest.approx(logged[-1]["E_lr_eV"], rel=1e-8)
