"""`make report`, issue 23: a smoke run is shown beside its own baselines and never beside a
public reference; headings come from the champion's logged config; a stacked model that scores
lower than the plain one says so; counts print as integers, nulls as `null`; each champion's
size, parameters, latency, seed spread and model card come from what its run logged. On fake
runs in the session's temporary store (no training)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from mlflow.pyfunc import PythonModel

from shared import tracking
from shared.model_card import SMOKE_LIMITATION, split_of
from tests.unit.test_portfolio import EXPERIMENT, _config, _fake_gbm_run, _register, _section
from tests.unit.test_tracking import _tracking_cfg
from tools import portfolio, portfolio_card
from tools.portfolio_parts import recall_figure


class Half(PythonModel):
    """The smallest model that loads: predicts 0.5 for every row."""

    def predict(self, context, model_input: list[str]) -> list[float]:
        return [0.5] * len(model_input)


def _block(page: str, key: str) -> str:
    return page.split(f'<section id="{key}"')[1].split("</section>")[0]


def _run(name: str, metrics: dict, config: dict, tags: dict | None = None) -> str:
    """A top-level run with `config` as its params (and config.yaml) and `metrics`."""
    mlflow = tracking.get_mlflow()
    with tracking.start_run(EXPERIMENT, run_name=name, config=config, tags=tags or {}) as run:
        tracking.log_metrics(metrics)
        mlflow.set_tag("headline_metric", next(iter(metrics)))
    return run.info.run_id


def _gbm(experiment: str, **metrics: float) -> str:
    run_id = _fake_gbm_run(experiment)
    mlflow = tracking.get_mlflow()
    with mlflow.start_run(run_id=run_id):
        tracking.log_metrics(metrics)
        mlflow.set_tag("best_single_feature", "tbp_lv_deltaL")
    return run_id


@pytest.fixture()
def cfg(mlflow_store, tmp_path) -> portfolio.PortfolioConfig:
    return _config(tmp_path)


def test_a_smoke_run_shows_its_baselines_and_no_public_reference(cfg, tmp_path):
    plain, stacked = _section(cfg, "tabular_gbm"), _section(cfg, "tabular_gbm_stacked")
    metrics = {"best_single_feature_pauc": 0.0731, "oracle_pauc": 0.1697}
    _register(list(portfolio.section_models(plain))[1], _gbm("smoke", **metrics))
    _register(list(portfolio.section_models(stacked))[0], _gbm("full", **metrics))
    page = portfolio.build_report(cfg, tmp_path / "r.html").read_text()
    smoke, full = _block(page, "tabular_gbm"), _block(page, "tabular_gbm_stacked")
    assert 'class="references"' not in smoke and '<td class="n">0.170</td>' not in smoke
    assert "ISIC 2024 winners" not in smoke and "shown beside full-data runs only" in smoke
    baselines = smoke.split('class="baselines"')[1].split("</table>")[0]
    assert "best single feature (tbp_lv_deltaL)" in baselines and "= 0.073" in baselines
    assert "generator&#39;s oracle" in baselines and "= 0.170" in baselines
    refs = full.split('class="references"')[1].split("</table>")[0]
    assert "ISIC 2024 (Kaggle), private leaderboard" in refs and "oof_pauc = 0.152" in refs


def test_every_public_reference_is_cited_in_its_own_projects_readme(cfg):
    for section in cfg.sections:
        for ref in section.references:
            assert ref.source == section.readme, (section.key, ref.label)
            text = (Path(portfolio.REPO_ROOT) / ref.source).read_text()
            assert f"{ref.value:g}" in text, (section.key, ref.value)
            assert ref.dataset and ref.split


def test_headings_are_the_champions_logged_config(cfg, tmp_path):
    section = _section(cfg, "image_classifier")
    config = {
        "model": {"backbone": "test_efficientnet", "pretrained": False},
        "loader": {"image_size": 48},
        "data": {"name": "isic2024-tiny"},
        "cv": {"folds": None},
    }
    run_id = _run("img", {"oof_roc_auc": 0.7, "n_folds_done": 5.0}, config, {"experiment": "smoke"})
    _register(list(portfolio.section_models(section))[1], run_id)
    page = portfolio.build_report(cfg, tmp_path / "r.html").read_text()
    h2 = re.sub(r"<[^>]+>", "", _block(page, "image_classifier").split("</h2>")[0])
    assert "test_efficientnet (from scratch) + GeM head, 48 px, on isic2024-tiny" in h2
    assert "EfficientNet" not in h2 and "pretrained)" not in h2
    assert "object at 0x" not in page
    block = _block(page, "image_classifier")
    assert "<td><code>cv.folds</code></td><td>null</td>" in block and ">None<" not in block
    assert '<td class="n">5</td>' in block  # n_folds_done: a count, not 5.0000


def test_fill_reads_params_tags_and_says_what_was_not_logged():
    params = {"reader.model": "pkg:minilm", "reader.num_hidden_layers": "None", "x": "True"}
    fill = portfolio_card.fill
    assert fill("{reader.model} ({reader.num_hidden_layers?@ layers|all layers})", params) == (
        "pkg:minilm (all layers)"
    )
    assert fill("{x?on|off} {reader.num_hidden_layers} {gone}", params) == "on null ?"
    assert fill("{tag.best}", {}, {"best": "age"}) == "age"


def test_a_stacked_model_that_scores_lower_says_so_on_the_page(cfg, tmp_path):
    plain, stacked = _section(cfg, "tabular_gbm"), _section(cfg, "tabular_gbm_stacked")
    _register(list(portfolio.section_models(plain))[1], _gbm("smoke"))  # oof_pauc 0.1523
    _register(list(portfolio.section_models(stacked))[1], _gbm("smoke", oof_pauc=0.1423))
    page = portfolio.build_report(cfg, tmp_path / "r.html").read_text()
    box = _block(page, "tabular_gbm_stacked").split('class="comparison')[1].split("</div>")[0]
    assert 'data-higher="other"' in box and "0.1423 here vs 0.1523 there (-0.0100)" in box
    assert "0.0100 lower than the plain model" in box and "does not help" in box
    assert 'class="comparison' not in _block(page, "tabular_gbm")


def test_compare_says_which_is_higher_and_by_how_much():
    def side(key: str, value: float, data: str = "d") -> dict:
        metrics = {"oof_pauc": value}
        return {"key": key, "status": "ok", "headline": "oof_pauc", "all_metrics": metrics,
                "data_name": data}  # fmt: skip

    up = portfolio_card.compare(side("s", 0.16), side("p", 0.15), "the image score")
    assert up["higher"] == "this" and "0.0100 higher" in up["text"] and "+0.0100" in up["text"]
    other_data = portfolio_card.compare(side("s", 0.16), side("p", 0.15, "e"), "x")
    assert not other_data["same_data"]
    assert portfolio_card.compare(side("s", 0.1), {"status": "missing"}, "x") is None


def test_integer_metrics_print_without_decimals(cfg):
    patterns = list(cfg.integer_metrics)
    fmt = portfolio_card.fmt_metric
    assert fmt("chosen_epoch", 2.0, patterns) == "2" and fmt("n_train", 3581.0, patterns) == "3,581"
    assert fmt("oof_roc_auc", 1.0, patterns) == "1.0000" and fmt("n_x", 0.5, patterns) == "0.5000"


def test_fold_table_counts_are_integers_and_images_have_titles(cfg, tmp_path):
    section = _section(cfg, "tabular_gbm")
    run_id = _fake_gbm_run("smoke", **{"feature_importance.png": "png"})
    mlflow = tracking.get_mlflow()
    with mlflow.start_run(run_id=run_id):
        mlflow.log_text(
            "feature,lightgbm,catboost,mean\nage,0.2,0.4,0.3\n", "feature_importance.csv"
        )
        child = portfolio._child_runs(mlflow, mlflow.get_run(run_id))[0]
    with mlflow.start_run(run_id=child.info.run_id, nested=True):
        tracking.log_metrics({"n_train": 3581.0, "chosen_epoch": 2.0})
    _register(list(portfolio.section_models(section))[1], run_id)
    block = _block(portfolio.build_report(cfg, tmp_path / "r.html").read_text(), "tabular_gbm")
    assert "3,581" in block and "3581.0000" not in block and "2.0000" not in block
    assert "<h3>feature_importance.png</h3>" not in block
    assert f"<h3>{section.images[0].title}</h3>" in block
    assert "redrawn from the run&#39;s feature_importance.csv" in block


def test_the_recall_legend_covers_no_bar():
    metrics = {f"recall_at_{k}_{m}": 1.0 for k in (1, 3, 5, 10) for m in ("a", "b", "c")}
    fig = recall_figure(metrics, "recall_at_")
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    bars = [p.get_window_extent() for p in fig.axes[0].patches]
    assert bars and not any(legend.overlaps(b) for b in bars)


def test_model_size_parameters_latency_seeds_and_card(cfg, tmp_path):
    section = _section(cfg, "image_classifier")
    config = {"model": {"backbone": "tiny"}, "data": {"name": "isic2024-tiny", "generate": True}}
    mlflow = tracking.get_mlflow()
    weights = tmp_path / "fold_0.pt"
    torch.save({"w": torch.zeros(3, 4), "b": torch.zeros(4)}, weights)
    runs = []
    for seed, auc in ((1, 0.70), (2, 0.80)):
        tags = {"experiment": "smoke"}
        runs.append(_run(f"s{seed}", {"oof_roc_auc": auc}, {**config, "seed": seed}, tags))
    name = list(portfolio.section_models(section))[1]
    tracking_cfg = _tracking_cfg(EXPERIMENT, name)
    tracking_cfg.headline_metric = "oof_roc_auc"
    with mlflow.start_run(run_id=runs[-1]) as run:
        tracking.publish(
            run,
            tracking_cfg,
            {"oof_roc_auc": 0.8},
            python_model=Half(),
            artifacts={"w": str(weights)},
            input_example=["a", "b"],
            pip_requirements=[],
        )
    version = mlflow.MlflowClient().get_model_version_by_alias(name, tracking.CHAMPION).version
    got = portfolio.build_section(mlflow, section, cfg, measure_latency=True)
    folder = Path(mlflow.MlflowClient().get_model_version_download_uri(name, version)[7:])
    on_disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert got["footprint"]["bytes"] == on_disk > 0
    assert got["footprint"]["params_total"] == 16  # 3 x 4 + 4
    assert got["latency"]["median_s"] > 0 and got["latency"]["rows"] == 2
    spread = got["spread"]
    assert spread["seeds"] == ["1", "2"]
    row = next(r for r in spread["rows"] if r[0] == "oof_roc_auc")
    assert row[1:] == (pytest.approx(0.75), pytest.approx(0.0707, abs=1e-4), 2)
    card = got["card"]  # the one logged at publish time
    assert card["limitations"][0] == SMOKE_LIMITATION and card["generated_data"]
    assert card["fingerprint"] == got["data_fingerprint"] and card["data_name"] == "isic2024-tiny"
    assert card["metrics"] == [
        ["oof_roc_auc", 0.8, split_of("oof_roc_auc", tracking_cfg.card.splits)]
    ]
    page = portfolio.render(cfg, [got])
    assert "ms median of 5" in page and "± 0.0707" in page and "Model card" in page
    assert "(generated data)" in page and SMOKE_LIMITATION in page
    assert "object at 0x" not in page
    # a card deleted from a run that logged one is named, not silently left out
    folder = Path(mlflow.get_run(runs[-1]).info.artifact_uri[7:])
    (folder / "model_card.json").unlink()
    again = portfolio.build_section(mlflow, section, cfg, measure_latency=False)
    assert again["card"] is None
    assert any("model_card.json" in str(p) for p in again["problems"])
