"""Every project's real config composes and validates; bad keys and types fail by name."""

import importlib
import subprocess
import sys

import pytest

from shared.config import ConfigError, validate
from tests.conftest import REPO, compose

SCHEMAS = {
    "tabular_gbm": "projects.tabular_gbm.config:TabularGBMConfig",
    "image_classifier": "projects.image_classifier.config:ImageClassifierConfig",
    "retrieval_qa": "projects.retrieval_qa.config:RetrievalQAConfig",
    "captioning": "projects.captioning.config:CaptioningConfig",
}


def _schema(project):
    module, name = SCHEMAS[project].split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("experiment", ["smoke", "full"])
@pytest.mark.parametrize("project", sorted(SCHEMAS))
def test_real_config_composes_and_validates(project, experiment):
    cfg = validate(compose(project, [f"experiment={experiment}"]), _schema(project))
    assert cfg.tracking.experiment == project
    assert cfg.tracking.tags["experiment"] == experiment


@pytest.mark.parametrize("project", sorted(SCHEMAS))
def test_unknown_key_fails_naming_it(project):
    cfg = compose(project, ["+tracking.not_a_real_key=1"])
    with pytest.raises(ConfigError, match="tracking.not_a_real_key"):
        validate(cfg, _schema(project))


def test_wrong_type_fails_naming_the_key():
    cfg = compose("tabular_gbm", ["model.neg_ratio=lots"])
    with pytest.raises(ConfigError, match="model.neg_ratio"):
        validate(cfg, _schema("tabular_gbm"))


def test_cli_fails_at_start_up_naming_the_key():
    proc = subprocess.run(
        [sys.executable, "-m", "projects.tabular_gbm.train", "model.lightgbm.num_boost_round=ten"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "model.lightgbm.num_boost_round" in proc.stderr + proc.stdout


def test_missing_data_folder_says_where_it_looked_and_how_to_get_it(tmp_path):
    from projects.tabular_gbm.data import load_training_frame

    cfg = validate(
        compose("tabular_gbm", ["experiment=full", f"data.dir={tmp_path}/nowhere"]),
        _schema("tabular_gbm"),
    )
    with pytest.raises(FileNotFoundError) as err:
        load_training_frame(cfg.data)
    assert str(tmp_path / "nowhere") in str(err.value)
    assert "kaggle competitions download" in str(err.value)
