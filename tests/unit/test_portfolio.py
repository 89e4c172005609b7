"""`make report` (tools.portfolio): champion lookup, smoke/full labels, the section of a project
without a model, and a page that loads nothing from outside itself; on fake runs in a temporary
store (no training)."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shared import tracking
from shared.config import ConfigError
from tools import portfolio

EXPERIMENT = "portfolio_unit"


def _config(tmp_path: Path, **top) -> portfolio.PortfolioConfig:
    """The real report YAML with unique model names (the session store is shared)."""
    raw = yaml.safe_load(portfolio.CONFIG_FILE.read_text())
    tag = f"t{uuid.uuid4().hex[:6]}"  # a letter first: '-1e999' would be read as -inf
    for section in raw["sections"]:
        for model in section["models"]:
            model["suffix"] = f"{model['suffix']}-{tag}"
    raw.update(top)
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(raw))
    return portfolio.load_config(path)


def _section(cfg: portfolio.PortfolioConfig, key: str):
    return next(s for s in cfg.sections if s.key == key)


def _register(name: str, run_id: str, champion: bool = True) -> str:
    client = tracking.get_mlflow().MlflowClient()
    with contextlib.suppress(Exception):  # already there: a new version of it
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version
    if champion:
        client.set_registered_model_alias(name, tracking.CHAMPION, version)
    return str(version)


def _fake_gbm_run(experiment_tag: str = "smoke", folds: int = 2, **artifacts: str) -> str:
    """A top-level run shaped like tabular_gbm's: metrics, an OOF file, nested folds whose
    metric has several steps (a learning curve)."""
    mlflow = tracking.get_mlflow()
    config = {"model": {"min_tpr": 0.8, "n_bags": 3}, "seed": 7, "data": {"name": "isic"}}
    with tracking.start_run(
        EXPERIMENT, run_name=experiment_tag, config=config, tags={"experiment": experiment_tag}
    ) as run:
        y = [0, 1] * 10
        oof = pd.DataFrame({"isic_id": range(20), "target": y, "ensemble": [v * 0.6 for v in y]})
        mlflow.log_text(oof.to_csv(index=False), "oof.csv")
        for name, text in artifacts.items():
            mlflow.log_text(text, name)
        for k in range(folds):
            with tracking.start_run(EXPERIMENT, run_name=f"fold_{k}", nested=True):
                for step in range(3):
                    tracking.log_metrics({"val_pauc": 0.1 + 0.01 * step + k / 100}, step=step)
                tracking.log_metrics({"ensemble_pauc": 0.15 + k / 100})
        tracking.log_metrics({"oof_pauc": 0.1523, "oof_roc_auc": 0.93})
        mlflow.set_tag("headline_metric", "oof_pauc")
    return run.info.run_id


@pytest.fixture()
def cfg(mlflow_store, tmp_path) -> portfolio.PortfolioConfig:
    return _config(tmp_path)


def test_champion_is_the_full_data_model_when_both_exist(cfg):
    section = _section(cfg, "tabular_gbm")
    full, smoke = portfolio.section_models(section)
    assert full.startswith("tabular_gbm-isic2024-")  # tracking.model_name of experiment=full
    assert smoke.startswith("tabular_gbm-isic2024-smoke-")
    smoke_run, full_run = _fake_gbm_run("smoke"), _fake_gbm_run("full")
    _register(smoke, smoke_run)
    mlflow = tracking.get_mlflow()
    assert portfolio.build_section(mlflow, section, cfg)["run_id"] == smoke_run

    _register(full, full_run, champion=False)  # registered, not (yet) champion: skipped
    got = portfolio.build_section(mlflow, section, cfg)
    assert (got["run_id"], got["data"], got["model"]) == (smoke_run, "smoke", smoke)

    version = _register(full, full_run)
    got = portfolio.build_section(mlflow, section, cfg)
    assert (got["run_id"], got["data"], got["version"]) == (full_run, "full", version)
    ref = got["references"][0]  # a full-data champion: the published number beside ours
    assert (ref["value"], ref["ours"]) == (0.17, pytest.approx(0.1523))


def test_a_store_error_is_no_missing_model():
    from mlflow.exceptions import MlflowException

    class Broken:
        def get_model_version_by_alias(self, name, alias):
            raise MlflowException("database is locked", error_code="INTERNAL_ERROR")

    with pytest.raises(MlflowException, match="locked"):
        tracking.find_champion(Broken(), ["m"])


def test_smoke_and_full_sections_are_labelled_on_the_page(cfg, tmp_path):
    stacked, plain = _section(cfg, "tabular_gbm_stacked"), _section(cfg, "tabular_gbm")
    _register(list(portfolio.section_models(stacked))[0], _fake_gbm_run("full"))  # full data
    _register(list(portfolio.section_models(plain))[1], _fake_gbm_run("smoke"))  # smoke data
    page = portfolio.build_report(cfg, tmp_path / "r.html").read_text()
    labels = dict(re.findall(r'<section id="(\w+)".*?data-label="(\w+)"', page, re.S))
    assert labels["tabular_gbm"] == "smoke" and labels["tabular_gbm_stacked"] == "full"
    assert "SMOKE DATA" in page and "FULL DATA" in page


def test_project_without_a_registered_model_names_the_make_target(cfg, tmp_path):
    section = _section(cfg, "retrieval_qa")
    got = portfolio.build_section(tracking.get_mlflow(), section, cfg)
    assert got["status"] == "missing"
    page = portfolio.build_report(cfg, tmp_path / "r.html").read_text()
    block = page.split('<section id="retrieval_qa"')[1].split("</section>")[0]
    assert 'data-status="missing"' in block and "make retrieval-qa-smoke" in block
    assert list(portfolio.section_models(section))[1] in block  # says what it looked for


def test_section_shows_provenance_folds_references_and_plots(cfg):
    section = _section(cfg, "tabular_gbm")
    run_id = _fake_gbm_run("smoke", folds=3)
    _register(list(portfolio.section_models(section))[1], run_id)
    got = portfolio.build_section(tracking.get_mlflow(), section, cfg)
    run = tracking.get_mlflow().MlflowClient().get_run(run_id)
    assert got["git_sha"] == run.data.tags["git_sha"] != "unknown"
    assert got["headline"] == "oof_pauc" and got["headline_value"] == pytest.approx(0.1523)
    assert [name for name, _ in got["folds"]["rows"]] == ["fold_0", "fold_1", "fold_2"]
    col = got["folds"]["columns"].index("ensemble_pauc")
    assert got["folds"]["mean"][col] == pytest.approx(0.16)
    assert got["references"] == [] and got["references_held_back"] == 1  # smoke: none shown
    assert got["roc"] and "redrawn from the run's oof.csv" in got["roc"][1]
    assert got["curves"] is not None  # val_pauc over 3 steps in each fold
    assert ("model.min_tpr", "0.8") in got["config"] and "seed: 7" in got["config_yaml"]


def test_roc_falls_back_to_the_logged_figure_when_the_oof_file_has_no_labels(mlflow_store):
    mlflow = tracking.get_mlflow()
    with tracking.start_run(EXPERIMENT, run_name="img") as run:
        mlflow.log_text("isic_id,fold,score\n1,0,0.3\n", "oof.csv")
        mlflow.log_text("not really a png", "roc_curve.png")
    run = mlflow.MlflowClient().get_run(run.info.run_id)
    spec = portfolio.RocSpec("oof.csv", "target", ["score"], "cv.min_tpr", "roc_curve.png")
    b64, source = portfolio.roc_png(mlflow.MlflowClient(), run, spec)
    assert source == "the run's roc_curve.png"
    spec = portfolio.RocSpec("oof.csv", "target", ["score"], "cv.min_tpr", None)
    assert portfolio.roc_png(mlflow.MlflowClient(), run, spec) is None


def test_report_is_one_file_that_loads_nothing_from_outside(cfg, tmp_path):
    _register(
        list(portfolio.section_models(_section(cfg, "tabular_gbm")))[1], _fake_gbm_run("smoke")
    )
    page = portfolio.build_report(cfg, tmp_path / "r.html").read_text()
    srcs = re.findall(r'<img[^>]*\bsrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert portfolio.external_refs(page) == []
    assert "<script" not in page and "<link" not in page


@pytest.mark.parametrize(
    "snippet",
    [
        '<img src="https://example.org/a.png">',
        "<link rel=stylesheet href='//cdn.example.org/x.css'>",
        "<div style=\"background: url('http://example.org/b.png')\">",
        "<script src=http://example.org/x.js></script>",
    ],
)
def test_external_references_are_detected(snippet):
    page = f'<a href="#tabular_gbm">x</a><img src="data:image/png;base64,AAAA">{snippet}'
    assert len(portfolio.external_refs(page)) == 1


def test_render_refuses_a_page_with_an_external_reference(cfg, tmp_path, monkeypatch):
    section = {"key": "x", "title": "x", "readme": "https://example.org/readme"}
    missing = {
        **section,
        "status": "missing",
        "make_target": "make x",
        "looked_for": ["m"],
        "problems": [],
    }
    page = portfolio.render(cfg, [missing])  # escaped text is no reference: it loads nothing
    assert "https://example.org/readme" in page
    (tmp_path / portfolio.TEMPLATE).write_text('<img src="https://example.org/x.png">')
    monkeypatch.setattr(portfolio, "TEMPLATE_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="external"):
        portfolio.render(cfg, [])


def test_caption_examples_read_captionings_own_page():
    from projects.captioning.report import caption_page

    class Store:
        def read_bytes(self, path: str) -> bytes:
            return b"\xff\xd8jpeg-" + path.encode()

    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "raw": [["a <red> cat"], ["x", "y"]]})
    gen = {"beam": ["a red cat & dog", "b"], "greedy": ["a cat", "b b"]}
    got = portfolio.caption_examples(caption_page(frame, Store(), gen), n=5)
    assert [g["beam"] for g in got] == gen["beam"]
    assert got[0]["refs"] == ["a <red> cat"] and got[1]["greedy"] == "b b"
    assert got[0]["mime"] == "image/jpeg" and got[0]["b64"]
    assert len(portfolio.caption_examples(caption_page(frame, Store(), gen), n=1)) == 1


def test_learning_curves_need_two_epochs_and_keep_the_last_value_of_a_step(mlflow_store):
    mlflow = tracking.get_mlflow()
    with tracking.start_run(EXPERIMENT, run_name="curves") as run:
        tracking.log_metrics({"val_map3": 0.2, "lr": 1e-3}, step=0)
        tracking.log_metrics({"val_map3": 0.3}, step=0)  # a final summary at the same step
        for step in range(3):
            tracking.log_metrics({"val_loss": 1.0 - step / 10, "lr": 1e-4 * step}, step=step)
        time.sleep(0.01)  # MLflow orders a step's values by their millisecond timestamps
        tracking.log_metrics({"val_loss": 0.5}, step=2)
    client = mlflow.MlflowClient()
    got = portfolio.metric_histories(client, [("run", client.get_run(run.info.run_id))], ["lr"])
    assert got == {"val_loss": {"run": [(0, 1.0), (1, 0.9), (2, 0.5)]}}


def test_recall_bars_group_recall_at_k_metrics_by_method():
    metrics = {"recall_at_1_bm25": 0.5, "recall_at_5_bm25": 0.9, "recall_at_1_hybrid": 0.7}
    assert portfolio.recall_png(metrics, "recall_at_") is not None
    assert portfolio.recall_png({"val_map3": 0.8}, "recall_at_") is None


def test_config_typo_and_unknown_data_kind_fail_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="max_curve"):
        _config(tmp_path, max_curve=3)
    raw = yaml.safe_load(portfolio.CONFIG_FILE.read_text())
    raw["sections"][0]["models"][0]["experiment"] = "tiny"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"sections\[0\]\.models\[0\]\.experiment"):
        portfolio.load_config(path)
