"""Training config: files, overrides, unknown keys with suggestions, generated docs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsajax.train import cli
from rsajax.train.config import (
    ConfigError,
    TrainConfig,
    all_keys,
    load_config,
    parse_overrides,
)
from rsajax.train.docs import render_markdown

REPO = Path(__file__).resolve().parents[2]


def test_yaml_and_toml_give_the_same_config(tmp_path):
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "epochs": 7,
                "optimizer": {"lr": 0.003, "name": "adamw"},
                "data": {"train_file": "x.xyz"},
            }
        )
    )
    (tmp_path / "c.toml").write_text(
        'epochs = 7\n[optimizer]\nlr = 0.003\nname = "adamw"\n[data]\ntrain_file = "x.xyz"\n'
    )
    a, b = load_config(tmp_path / "c.yaml"), load_config(tmp_path / "c.toml")
    assert a == b
    assert a.optimizer.lr == 0.003 and a.epochs == 7
    assert a.data.train_file == str(tmp_path / "x.xyz")  # relative to the config file


def test_overrides_both_spellings_and_types():
    tokens = [
        "--optimizer.lr",
        "1e-3",
        "--set",
        "loss.kind=huber",
        "--data.shuffle=false",
        "--model.radial_MLP",
        "[8, 8]",
    ]
    config = load_config({}, parse_overrides(tokens))
    assert config.optimizer.lr == 1e-3 and isinstance(config.optimizer.lr, float)
    assert config.loss.kind == "huber"
    assert config.data.shuffle is False
    assert config.model.radial_MLP == (8, 8)


@pytest.mark.parametrize(
    "tree, key, suggestion",
    [
        ({"optimizer": {"lrr": 1}}, "optimizer.lrr", "optimizer.lr"),
        ({"epoch": 3}, "epoch", "epochs"),
        ({"loss": {"force_weight": 3}}, "loss.force_weight", "loss.forces_weight"),
        ({"lr": 3}, "lr", "optimizer.lr"),
    ],
)
def test_unknown_key_names_close_matches(tree, key, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config(tree)
    assert repr(key) in str(err.value) and suggestion in str(err.value)


def test_unknown_override_and_bad_values_are_errors():
    with pytest.raises(ConfigError, match=r"schedule\.kind"):
        load_config({}, {"schedule.knd": "cosine"})
    with pytest.raises(ConfigError, match="choose from"):
        load_config({"optimizer": {"name": "sgd"}})
    with pytest.raises(ConfigError, match="cannot use 'abc' as float"):
        load_config({}, {"optimizer.lr": "abc"})
    with pytest.raises(ConfigError, match="must be > 0"):
        load_config({"epochs": 0})
    with pytest.raises(ConfigError, match=r"stage_two\.fraction' = 1.0 must be in \[0, 1\)"):
        load_config({"epochs": 10, "stage_two": {"fraction": 1}})
    with pytest.raises(ConfigError, match=r"stage_two\.lr' must be > 0 or null"):
        load_config({}, {"stage_two.lr": "0"})


def test_stage_two_weights_fall_back_to_the_loss_section():
    cfg = load_config(
        {"loss": {"energy_weight": 2.0, "stress_weight": 5.0}, "epochs": 8},
        {"stage_two.fraction": "0.25", "stage_two.forces_weight": "null"},
    )
    assert cfg.loss_weights() == {"energy": 2.0, "forces": 100.0, "stress": 5.0, "dipole": 0.0}
    assert cfg.loss_weights(stage_two=True) == {
        "energy": 1000.0,
        "forces": 100.0,
        "stress": 5.0,
        "dipole": 0.0,
    }
    # 8 epochs: the last ceil(2.0) = 2 are stage two
    assert cfg.stage_two_start == 6
    assert [cfg.in_stage_two(e) for e in (-1, 5, 6, 7)] == [False, False, True, True]
    short = load_config({"epochs": 2, "stage_two": {"fraction": 0.25}})
    assert short.stage_two_start == 1  # never rounded away
    assert not load_config({}).in_stage_two(50)  # fraction 0: no stage two


def test_every_key_is_documented_and_docs_are_current():
    for name, field in all_keys().items():
        assert field.metadata.get("help"), name
        assert name.rsplit(".", 1)[-1] in (TrainConfig.__doc__ + _section_docs()), name
    docs = (REPO / "docs" / "train_config.md").read_text()
    assert docs == render_markdown(), "run: python -m rsajax.train.docs > docs/train_config.md"


def _section_docs() -> str:
    import dataclasses

    return "".join(
        type(getattr(TrainConfig(), f.name)).__doc__ or "" for f in dataclasses.fields(TrainConfig)
    )


def test_cli_reports_unknown_key(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\n")
    code = cli.main(["train", str(path), "--optimizer.lrr", "0.1"])
    assert code == 2
    assert "did you mean optimizer.lr" in capsys.readouterr().err


def test_example_config_is_valid():
    config = load_config(REPO / "experiments" / "configs" / "train_small.yaml")
    assert config.data.batch_size > 0


def test_a_config_written_before_the_architecture_split_reads_the_same():
    """config.yaml and checkpoints written when the model section had its own copy of the
    architecture keys (and ``model.extra``) read as today's defaults, so resuming such a run
    does not warn about changed keys."""
    old = TrainConfig().to_dict()
    old["model"] = {
        "r_max": 5.0,
        "num_bessel": 8,
        "num_polynomial_cutoff": 5,
        "max_ell": 3,
        "hidden_irreps": "32x0e+32x1o",
        "correlation": 3,
        "num_interactions": 2,
        "MLP_irreps": "16x0e",
        "radial_MLP": [64, 64, 64],
        "model_type": "ScaleShiftMACE",
        "interaction_first": "RealAgnosticResidualInteractionBlock",
        "interaction": "RealAgnosticResidualInteractionBlock",
        "long_range": None,
        "extra": {},
    }
    assert load_config(old) == TrainConfig()
    with pytest.raises(ConfigError, match=r"'model.extra.num_channels'.*model\.num_channels"):
        load_config({"model": {"extra": {"num_channels": 8}}})


def test_model_section_is_checked_when_read():
    config = load_config({}, {"model.num_channels": "8", "model.correlation": "[2, 1]"})
    assert config.model.hidden_irreps == "8x0e+8x1o" and config.model.correlation == (2, 1)
    with pytest.raises(ConfigError, match="config section 'model': model_type must be"):
        load_config({"model": {"model_type": "MACEX"}})
    with pytest.raises(ConfigError, match="'model.max_L': cannot use 'one'"):
        load_config({}, {"model.max_L": "one"})
