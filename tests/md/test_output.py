"""Thermo logs: the ``E_lr_eV`` column (empty without an RSA part) and resuming older logs."""

import csv
import json

import pytest

from rsajax.md.output import THERMO_FIELDS, RunOutput

OLD_FIELDS = [f for f in THERMO_FIELDS if f != "E_lr_eV"]


def row(step: int, **extra) -> dict:
    return {**{k: float(step) for k in OLD_FIELDS}, "step": step, "stage": "hold", **extra}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_long_range_column_is_empty_without_an_rsa_part(tmp_path):
    out = RunOutput(tmp_path)
    out.write_thermo([row(10), row(20, E_lr_eV=-1.5)])  # a short-range row, an RSA-MACE row
    rows = read_csv(tmp_path / "thermo.csv")
    assert list(rows[0]) == list(THERMO_FIELDS)
    assert [r["E_lr_eV"] for r in rows] == ["", "-1.5"]
    logged = [json.loads(line) for line in (tmp_path / "thermo.jsonl").open()]
    assert [r["E_lr_eV"] for r in logged] == [None, -1.5]


def test_resume_rewrites_a_log_written_before_the_column(tmp_path):
    """An older run (no ``E_lr_eV``) resumes: rows up to the checkpoint kept, new header."""
    with open(tmp_path / "thermo.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OLD_FIELDS)
        writer.writerows([[r[k] for k in OLD_FIELDS] for r in (row(10), row(20), row(30))])
    with open(tmp_path / "thermo.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in (row(10), row(20), row(30)))
    out = RunOutput(tmp_path, resume_step=20)
    out.write_thermo([row(30, E_lr_eV=0.5)])
    rows = read_csv(tmp_path / "thermo.csv")
    assert [int(r["step"]) for r in rows] == [10, 20, 30]
    assert [r["E_lr_eV"] for r in rows] == ["", "", "0.5"]
    assert len((tmp_path / "thermo.jsonl").read_text().splitlines()) == 3


def test_resume_of_an_old_csv_without_jsonl_fails_clearly(tmp_path):
    (tmp_path / "thermo.csv").write_text(",".join(OLD_FIELDS) + "\n")
    with pytest.raises(ValueError, match="no thermo.jsonl to rewrite it from"):
        RunOutput(tmp_path, resume_step=10)
