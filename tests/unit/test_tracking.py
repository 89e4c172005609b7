import json
import uuid
from pathlib import Path

import mlflow
import pytest
import torch
from omegaconf import OmegaConf

from shared import REPO_ROOT, model_card, provenance, tracking


def _exp():
    return f"test-{uuid.uuid4().hex[:8]}"


def _run(run_id):
    return mlflow.MlflowClient().get_run(run_id)


def test_run_logs_config_tags_and_params(mlflow_store, tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    cfg = OmegaConf.create({"model": {"lr": 0.1, "layers": [1, 2]}, "seed": 3})
    with tracking.start_run(
        _exp(), run_name="r", config=cfg, data_paths=[data], tags={"experiment": "smoke"}
    ) as run:
        tracking.log_metrics({"score": 0.5})
    r = _run(run.info.run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["model.lr"] == "0.1"
    assert r.data.params["seed"] == "3"
    for tag in ("git_sha", "git_dirty", "data_fingerprint", "experiment", "version.torch"):
        assert tag in r.data.tags
    assert r.data.tags["data_fingerprint"] == provenance.data_fingerprint([data])
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="config.yaml")
    with open(local) as fh:
        assert "lr: 0.1" in fh.read()


def test_a_crash_marks_the_run_failed_and_keeps_what_was_logged(mlflow_store):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run(_exp()) as run:
            tracking.log_metrics({"epoch_loss": 1.25})
            raise RuntimeError("boom")
    r = _run(run.info.run_id)
    assert r.info.status == "FAILED"
    assert r.data.metrics["epoch_loss"] == 1.25
    assert "RuntimeError: boom" in r.data.tags["error"]
    assert mlflow.active_run() is None  # the next run can start


def test_nested_runs_hang_under_their_parent(mlflow_store):
    exp = _exp()
    with tracking.start_run(exp) as parent:
        with tracking.start_run(exp, run_name="fold_0", nested=True) as child:
            pass
    assert _run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_resuming_a_run_continues_it(mlflow_store):
    exp = _exp()
    with tracking.start_run(exp) as run:
        tracking.log_metrics({"loss": 2.0}, step=0)
    with tracking.start_run(exp, run_id=run.info.run_id):
        tracking.log_metrics({"loss": 1.0}, step=1)
    hist = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in sorted(hist, key=lambda m: m.step)] == [2.0, 1.0]


def test_non_finite_metrics_are_skipped(mlflow_store):
    with tracking.start_run(_exp()) as run:
        tracking.log_metrics({"ok": 1.0, "bad": float("nan")})
    assert set(_run(run.info.run_id).data.metrics) == {"ok"}


class _Const(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _log_model_with(exp, value):
    with tracking.start_run(exp) as run:
        tracking.log_metrics({"score": value})
        info = mlflow.pyfunc.log_model(name="m", python_model=_Const(), pip_requirements=[])
    return info.model_uri, run


def test_champion_moves_only_when_the_new_run_is_better(mlflow_store):
    exp, name = _exp(), f"model-{uuid.uuid4().hex[:6]}"
    client = mlflow.MlflowClient()
    uri, _ = _log_model_with(exp, 0.5)
    v1, promoted = tracking.register_if_better(uri, name, "score", 0.5)
    assert promoted and str(client.get_model_version_by_alias(name, "champion").version) == v1
    uri, _ = _log_model_with(exp, 0.4)
    v2, promoted = tracking.register_if_better(uri, name, "score", 0.4)
    assert not promoted and str(client.get_model_version_by_alias(name, "champion").version) == v1
    uri, _ = _log_model_with(exp, 0.5)
    _, promoted = tracking.register_if_better(uri, name, "score", 0.5)
    assert not promoted  # a tie keeps the champion
    uri, _ = _log_model_with(exp, 0.7)
    v4, promoted = tracking.register_if_better(uri, name, "score", 0.7)
    assert promoted and str(client.get_model_version_by_alias(name, "champion").version) == v4


def test_champion_rule_for_lower_is_better(mlflow_store):
    exp, name = _exp(), f"model-{uuid.uuid4().hex[:6]}"
    uri, _ = _log_model_with(exp, 2.0)
    tracking.register_if_better(uri, name, "score", 2.0, higher_is_better=False)
    uri, _ = _log_model_with(exp, 1.0)
    _, promoted = tracking.register_if_better(uri, name, "score", 1.0, higher_is_better=False)
    assert promoted


def test_data_fingerprint_follows_content_not_location(tmp_path):
    a = tmp_path / "a" / "train.csv"
    b = tmp_path / "b" / "train.csv"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("x\n1\n")
    assert provenance.data_fingerprint([a]) == provenance.data_fingerprint([b])
    b.write_text("x\n2\n")
    assert provenance.data_fingerprint([a]) != provenance.data_fingerprint([b])


def test_data_fingerprint_of_a_large_file_is_fast_and_sensitive(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "_SMALL_FILE", 1024)
    big = tmp_path / "train-image.hdf5"
    big.write_bytes(b"\0" * (3 << 20))
    before = provenance.data_fingerprint([big])
    with big.open("r+b") as f:
        f.seek(-10, 2)
        f.write(b"changed!!!")
    assert provenance.data_fingerprint([big]) != before


def test_flatten_nested_config():
    assert provenance.flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": None}) == {
        "a.b": "1",
        "a.c.d": "x",
        "e": "None",
    }


def _tracking_cfg(exp, name, register=True):
    card = OmegaConf.load(Path(REPO_ROOT) / "configs/common/tracking/default.yaml").card
    card.intended_use, card.limitations = "a test model", ["answers 0.5"]
    return OmegaConf.create(
        {
            "headline_metric": "val_score",
            "model_name": name,
            "register": register,
            "test_metric": "test_score",
            "experiment": exp,
            "card": card,
        }
    )


def test_publish_logs_a_model_card_with_the_version_and_counts_parameters(mlflow_store, tmp_path):
    """The card travels with the model: a run artifact and the version's description, with
    the data's fingerprint, each metric's split, and the generated-data limitation first."""
    exp, name = _exp(), f"proj-{uuid.uuid4().hex[:6]}-smoke"
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    weights = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3, 4), "b": torch.zeros(4)}, weights)
    config = {"data": {"name": "tiny", "generate": True}}
    with tracking.start_run(exp, config=config, data_paths=[data]) as run:
        tracking.publish(
            run,
            _tracking_cfg(exp, name),
            {"val_score": 0.6, "oof_pauc": 0.1},
            python_model=_Const(),
            artifacts={"weights": str(weights)},
        )
    got = _run(run.info.run_id)
    assert got.data.metrics["n_params"] == 16 and got.data.metrics["model_bytes"] > 0
    card = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="model_card.json", dst_path=str(tmp_path)
            )
        ).read_text()
    )
    assert card["limitations"] == [model_card.SMOKE_LIMITATION, "answers 0.5"]
    assert card["fingerprint"] == got.data.tags["data_fingerprint"] and card["data_name"] == "tiny"
    splits = {m: split for m, _, split in card["metrics"]}
    assert splits["val_score"].startswith("validation") and splits["oof_pauc"].startswith("out-of")
    assert splits["n_params"].startswith("the training run")
    version = mlflow.MlflowClient().get_model_version(name, got.data.tags["model_version"])
    assert "**Intended use.** a test model" in version.description
    assert "| val_score | 0.6 | validation split" in version.description


def test_publish_logs_registers_under_the_configured_name_and_announces(mlflow_store, capsys):
    exp, name = _exp(), f"proj-{uuid.uuid4().hex[:6]}-smoke"
    client = mlflow.MlflowClient()
    with tracking.start_run(exp) as run:
        uri = tracking.publish(
            run,
            _tracking_cfg(exp, name),
            {"val_score": 0.6, "test_score": 0.9},
            python_model=_Const(),
        )
    tags = _run(run.info.run_id).data.tags
    version = client.get_model_version(name, tags["model_version"])
    assert version.tags["run_id"] == run.info.run_id and version.tags["val_score"] == "0.6"
    assert version.tags["test_metric"] == "test_score" and version.tags["test_score"] == "0.9"
    assert {"git_sha", "data_fingerprint", "experiment", "validation_metric"} <= set(version.tags)
    assert tags["model_uri"] == uri and tags["registered_model"] == name
    assert tags["champion"] == "true" and tags["headline_metric"] == "val_score"
    assert client.get_model_version_by_alias(name, "champion").run_id == run.info.run_id
    assert "val_score = 0.6000" in capsys.readouterr().out
    with tracking.start_run(exp) as worse:
        tracking.log_metrics({"val_score": 0.5})
        tracking.publish(worse, _tracking_cfg(exp, name), {"val_score": 0.5}, python_model=_Const())
    assert client.get_model_version_by_alias(name, "champion").run_id == run.info.run_id


def test_publish_with_register_false_logs_the_model_but_registers_nothing(mlflow_store):
    exp, name = _exp(), f"proj-{uuid.uuid4().hex[:6]}"
    with tracking.start_run(exp) as run:
        uri = tracking.publish(
            run, _tracking_cfg(exp, name, register=False), {"val_score": 1.0}, python_model=_Const()
        )
    assert uri and "registered_model" not in _run(run.info.run_id).data.tags
    assert not mlflow.MlflowClient().search_model_versions(f"name = '{name}'")


def test_publish_names_a_headline_metric_the_run_does_not_have(mlflow_store):
    exp = _exp()
    with pytest.raises(KeyError, match="val_score"), tracking.start_run(exp) as run:
        tracking.publish(run, _tracking_cfg(exp, "x"), {"test_score": 1.0}, python_model=_Const())


def test_a_missing_registered_model_says_which_make_target_creates_it(mlflow_store):
    with pytest.raises(FileNotFoundError, match="make some-target"):
        tracking.load_registered_model("models:/no-such-model@champion", "make some-target")


def test_metrics_without_an_active_run_start_no_stray_run(mlflow_store):
    tracking.log_metrics({"loss": 1.0})
    assert mlflow.active_run() is None
    with tracking.start_run(_exp()) as run:  # would fail "already active" otherwise
        tracking.log_metrics({"loss": 1.0})
    assert _run(run.info.run_id).data.metrics["loss"] == 1.0


def test_a_champion_of_an_older_model_format_gives_way_whatever_its_score(mlflow_store):
    """A model registered before the pyfunc contract changed (no `model_format` tag: format 1)
    cannot serve today's callers, so a new-format version takes the alias even when worse."""
    exp, name = _exp(), f"model-{uuid.uuid4().hex[:6]}"
    client = mlflow.MlflowClient()
    uri, _ = _log_model_with(exp, 0.9)
    v1, _ = tracking.register_if_better(uri, name, "score", 0.9)
    client.delete_model_version_tag(name, v1, "model_format")  # as registered by older code
    uri, _ = _log_model_with(exp, 0.5)
    v2, promoted = tracking.register_if_better(uri, name, "score", 0.5, model_format=2)
    assert promoted and str(client.get_model_version_by_alias(name, "champion").version) == v2
    assert client.get_model_version(name, v2).tags["model_format"] == "2"
    uri, _ = _log_model_with(exp, 0.4)  # same format again: the score decides
    _, promoted = tracking.register_if_better(uri, name, "score", 0.4, model_format=2)
    assert not promoted


def _register_together(barrier, uri, source, value, results):
    import os

    os.environ["MLFLOW_TRACKING_URI"] = uri
    barrier.wait()  # every process meets a brand-new store at once
    version, promoted = tracking.register_if_better(source, "m", "score", value)
    results.put((value, version, promoted))


def test_runs_finishing_together_on_a_new_store_leave_the_best_as_the_one_champion(tmp_path):
    """A brand-new SQLite store is created once (two at once crashed: duplicate column), and
    compare-and-set promotion: the champion ends as the best version, whatever the order."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    values = [0.3, 0.9, 0.5, 0.7]
    barrier, results = ctx.Barrier(len(values)), ctx.Queue()
    procs = [
        ctx.Process(
            target=_register_together, args=(barrier, uri, str(tmp_path / f"m{v}"), v, results)
        )
        for v in values
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(values)
    client = mlflow.MlflowClient(uri)
    champion = client.get_model_version_by_alias("m", tracking.CHAMPION)
    assert float(champion.tags["score"]) == max(values)
    promoted = {value for value, _, took in got if took}
    assert max(values) in promoted  # the best took the alias, and kept it


def test_a_run_carries_its_callers_tags_from_creation(mlflow_store, monkeypatch):
    """A run killed before its start-up tags are logged (git state, fingerprint: seconds on a
    loaded machine) is still findable by the caller's tags: a sweep kills a dead trial's runs
    by `sweep` / `optuna_trial` (CI once left one RUNNING, untagged)."""

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "_log_run_start", killed)
    exp = _exp()
    with pytest.raises(KeyboardInterrupt), tracking.start_run(exp, tags={"optuna_trial": 2}):
        pass
    (run,) = mlflow.search_runs(
        experiment_names=[exp], filter_string="tags.optuna_trial = '2'", output_format="list"
    )
    assert run.info.status == "KILLED"
