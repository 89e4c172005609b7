"""Every project's real config composes and validates; bad keys and types fail by name."""

import importlib
import os
import re
import subprocess
import sys

import pytest

from shared.config import ConfigError, validate
from tests.helpers import REPO

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
def test_real_config_composes_and_validates(project_config, project, experiment):
    cfg = validate(project_config(project, f"experiment={experiment}"), _schema(project))
    assert cfg.tracking.experiment == project
    assert cfg.tracking.tags["experiment"] == experiment


@pytest.mark.parametrize("project", sorted(SCHEMAS))
def test_unknown_key_fails_naming_it(project_config, project):
    cfg = project_config(project, "+tracking.not_a_real_key=1")
    with pytest.raises(ConfigError, match="tracking.not_a_real_key"):
        validate(cfg, _schema(project))


def test_wrong_type_fails_naming_the_key(project_config):
    cfg = project_config("tabular_gbm", "model.neg_ratio=lots")
    with pytest.raises(ConfigError, match="model.neg_ratio"):
        validate(cfg, _schema("tabular_gbm"))


@pytest.mark.parametrize(
    ("project", "override", "message"),
    [
        ("image_classifier", "seed=-1", "'seed': must be at least 0, got -1"),
        ("image_classifier", "trainer.max_epochs=-1", "'trainer.max_epochs': must be at least 1"),
        ("image_classifier", "loader.batch_size=0", "'loader.batch_size': must be at least 1"),
        ("captioning", "data.batch_size=0", "'data.batch_size': must be at least 1"),
        ("retrieval_qa", "reader.eval_batch_size=0", "'reader.eval_batch_size': must be at least"),
        ("tabular_gbm", "data.n_folds=1", "'data.n_folds': must be at least 2"),
        ("tabular_gbm", "model.lightgbm.params.learning_rate=0", "must be above 0"),
        ("captioning", "optim.lr=-0.1", "'optim.lr': must be above 0"),
    ],
)
def test_a_value_out_of_range_fails_at_start_up_naming_the_key(
    project_config, project, override, message
):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(project_config(project, override), _schema(project))


def test_cli_fails_at_start_up_naming_the_key():
    proc = subprocess.run(
        [sys.executable, "-m", "projects.tabular_gbm.train", "model.lightgbm.num_boost_round=ten"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: config key 'model.lightgbm.num_boost_round'" in proc.stderr
    assert "Traceback" not in proc.stderr  # an expected error is a message, not a stack


def test_cli_missing_data_is_one_message_that_says_where_it_looked(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "projects.tabular_gbm.train",
            "experiment=full",
            f"data.dir={tmp_path}/nowhere",
            f"paths.output_dir={tmp_path}/out",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and str(tmp_path / "nowhere") in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_data_folder_says_where_it_looked_and_how_to_get_it(project_config, tmp_path):
    from shared.datasets.isic2024_training import load_training_frame

    cfg = validate(
        project_config("tabular_gbm", "experiment=full", f"data.dir={tmp_path}/nowhere"),
        _schema("tabular_gbm"),
    )
    with pytest.raises(FileNotFoundError) as err:
        load_training_frame(cfg.data)
    assert str(tmp_path / "nowhere") in str(err.value)
    assert "kaggle competitions download" in str(err.value)


@pytest.mark.parametrize("project", ["image_classifier", "retrieval_qa", "captioning"])
def test_misspelt_trainer_key_fails_naming_it(project_config, project):
    cfg = project_config(project, "+trainer.max_epoch=3")
    with pytest.raises(ConfigError, match="trainer.max_epoch"):
        validate(cfg, _schema(project))


def test_a_key_left_without_value_fails_naming_it(project_config):
    cfg = project_config("captioning", "tracking.headline_metric=???")
    with pytest.raises(ConfigError, match="tracking.headline_metric"):
        validate(cfg, _schema("captioning"))


@pytest.mark.parametrize("project", sorted(SCHEMAS))
def test_schemas_hold_no_values(project):
    """YAML is the one source of values: no schema field carries a default of its own."""
    import dataclasses
    import typing

    seen, todo = set(), [_schema(project)]
    while todo:
        cls = todo.pop()
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING, f"{cls.__name__}.{f.name} has a default"
            assert f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"
            t = hints[f.name]
            for arg in typing.get_args(t) or (t,):
                if dataclasses.is_dataclass(arg) and arg not in seen:
                    todo.append(arg)
    assert len(seen) > 4  # the walk reached the nested groups


@pytest.mark.parametrize("project", sorted(SCHEMAS))
def test_registered_model_is_named_after_project_and_data_set(project_config, project):
    smoke = validate(project_config(project, "experiment=smoke"), _schema(project))
    full = validate(project_config(project, "experiment=full"), _schema(project))
    assert smoke.tracking.model_name == f"{project}-{smoke.data.name}"
    assert smoke.data.name.endswith("-smoke") and not full.data.name.endswith("-smoke")


@pytest.mark.parametrize("project", sorted(SCHEMAS))
def test_smoke_data_folders_are_keyed_by_the_generator_settings(project_config, project):
    """`debug=tiny` gets its own folder (it once replaced the smoke data set that fold files,
    OOF scores and earlier runs refer to), and the key reads the same before and after the
    schema turns 25 into 25.0."""
    smoke = project_config(project, "experiment=smoke")
    tiny = project_config(project, "experiment=smoke", "debug=tiny")
    assert smoke.data.dir != tiny.data.dir
    for cfg in (smoke, tiny):
        assert validate(cfg, _schema(project)).data.dir == cfg.data.dir
