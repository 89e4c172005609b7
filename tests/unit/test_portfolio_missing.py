"""`make report` with pieces deleted from the store (issue 22 item 4): every artifact the page
cannot read and every champion model that cannot be loaded is named in its section's warning
box and on stderr, the page is still written, and the command exits 3; a complete store exits
0. On a real tiny store (the session's temporary one), deleting files on disk."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from shared import tracking
from tests.unit.test_portfolio import _config, _fake_gbm_run, _register, _section
from tools import portfolio

PNGS = {"roc_curve.png": "png bytes", "feature_importance.png": "png bytes"}


class Half(PythonModel):
    """The smallest model that loads: predicts 0.5 for every row."""

    def predict(self, context, model_input: list[str]) -> list[float]:
        return [0.5] * len(model_input)


def _local(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


@pytest.fixture()
def store(mlflow_store, tmp_path):
    """(report config file, its config, the tabular_gbm section's smoke champion: model name,
    run id) with a loadable model and every artifact the section shows."""
    cfg = _config(tmp_path)
    run_id = _fake_gbm_run("smoke", **PNGS)
    mlflow = tracking.get_mlflow()
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=Half(), pip_requirements=[])
    name = list(portfolio.section_models(_section(cfg, "tabular_gbm")))[1]
    version = mlflow.register_model(info.model_uri, name).version
    mlflow.MlflowClient().set_registered_model_alias(name, tracking.CHAMPION, version)
    return tmp_path / "portfolio.yaml", cfg, name, run_id


def _report(config: Path, out: Path, capsys) -> tuple[int, str, list[str]]:
    """(exit status, the tabular_gbm section of the page, stderr lines) of the CLI."""
    try:
        portfolio.main(["--config", str(config), "--output", str(out)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.splitlines()
    page = out.read_text()
    return code, page.split('<section id="tabular_gbm"')[1].split("</section>")[0], err


def test_a_complete_store_exits_0_and_shows_no_warning(store, tmp_path, capsys):
    config, _, _, _ = store
    code, block, err = _report(config, tmp_path / "r.html", capsys)
    assert (code, err) == (0, [])
    assert 'data-status="ok"' in block and "warning" not in block
    assert (
        "redrawn from the run&#39;s oof.csv" in block
    )  # the ROC redrawn: the artifacts were there


def test_a_deleted_run_artifact_folder_is_named_per_file(store, tmp_path, capsys):
    config, _, _, run_id = store
    client = tracking.get_mlflow().MlflowClient()
    shutil.rmtree(_local(client.get_run(run_id).info.artifact_uri))
    code, block, err = _report(config, tmp_path / "r.html", capsys)
    assert code == portfolio.EXIT_MISSING == 3
    names = ["config.yaml", "oof.csv", "roc_curve.png", "feature_importance.png"]
    assert sorted(err) == sorted(
        f"error: tabular_gbm: artifact {n} of run {run_id}: file missing" for n in names
    )
    box = block.split('class="warning missing-pieces"')[1].split("</div>")[0]
    assert "4 pieces of this section could not be read" in box
    for n in names:
        assert f"<code>artifact {n}</code> of <code>run {run_id}</code>: file missing" in box
    assert 'data-status="ok"' in block  # the model itself still loads: a record, shown


def test_single_deleted_files_are_named_and_the_roc_falls_back(store, tmp_path, capsys):
    config, _, _, run_id = store
    folder = _local(tracking.get_mlflow().MlflowClient().get_run(run_id).info.artifact_uri)
    (folder / "oof.csv").unlink()
    (folder / "feature_importance.png").unlink()
    code, block, err = _report(config, tmp_path / "r.html", capsys)
    assert code == 3
    assert sorted(err) == [
        f"error: tabular_gbm: artifact feature_importance.png of run {run_id}: file missing",
        f"error: tabular_gbm: artifact oof.csv of run {run_id}: file missing",
    ]
    assert "the run&#39;s roc_curve.png" in block  # shown from the fallback, and still named
    assert block.count('class="missing-piece"') == 2
    page = (tmp_path / "r.html").read_text()
    summary = page.split('id="summary"')[1].split("</table>")[0]
    assert re.search(r'<span class="problems-count">2</span>', summary)


@pytest.mark.parametrize(
    ("delete", "why"),
    [(".", "its MLmodel file is missing"), ("python_model.pkl", "python_model.pkl is missing")],
)
def test_a_champion_whose_model_cannot_be_loaded_is_marked_broken(
    store, tmp_path, capsys, delete, why
):
    config, _, name, _ = store
    mlflow = tracking.get_mlflow()
    folder = _local(mlflow.MlflowClient().get_model_version_download_uri(name, "1"))
    target = folder / delete
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(
        (MlflowException, OSError)
    ):  # the loader agrees: this champion serves nothing
        mlflow.pyfunc.load_model(f"models:/{name}@champion")
    code, block, err = _report(config, tmp_path / "r.html", capsys)
    assert code == 3 and len(err) == 1
    assert err[0].startswith(f"error: tabular_gbm: model of {name} v1: cannot be loaded: {why}")
    assert 'data-status="broken"' in block and "MODEL CANNOT BE LOADED" in block
    assert f"<code>model</code> of <code>{name} v1</code>: cannot be loaded: {why}" in block


def test_a_champion_whose_run_is_gone_is_named(mlflow_store, tmp_path, capsys):
    cfg = _config(tmp_path)
    name = list(portfolio.section_models(_section(cfg, "tabular_gbm")))[1]
    client = tracking.get_mlflow().MlflowClient()
    client.create_registered_model(name)
    gone = "0" * 32
    version = client.create_model_version(name, f"runs:/{gone}/model", run_id=gone).version
    client.set_registered_model_alias(name, tracking.CHAMPION, version)
    code, block, err = _report(tmp_path / "portfolio.yaml", tmp_path / "r.html", capsys)
    assert code == 3 and 'data-status="unreadable"' in block
    assert any(f"tabular_gbm: run {gone} of {name} v1: cannot be read" in e for e in err)
    assert f"<code>run {gone}</code> of <code>{name} v1</code>: cannot be read" in block


@pytest.mark.parametrize(
    ("oof", "why"),
    [
        ("isic_id,fold,score\n1,0,0.3\n", "has no 'target' column"),
        ('target,ensemble\n"1,0.3\n', "cannot be read: ParserError"),
    ],
)
def test_an_oof_file_the_roc_cannot_use_is_named_though_the_figure_fills_in(mlflow_store, oof, why):
    mlflow = tracking.get_mlflow()
    with tracking.start_run("portfolio_unit", run_name="oof") as run:
        mlflow.log_text(oof, "oof.csv")
        mlflow.log_text("png bytes", "roc_curve.png")
    client = mlflow.MlflowClient()
    run = client.get_run(run.info.run_id)
    spec = portfolio.RocSpec("oof.csv", "target", ["ensemble"], "model.min_tpr", "roc_curve.png")
    problems: list = []
    assert portfolio.roc_png(client, run, spec, problems)[1] == "the run's roc_curve.png"
    assert [(p.what, p.owner) for p in problems] == [("artifact oof.csv", f"run {run.info.run_id}")]
    assert problems[0].reason.startswith(why)


def test_a_captions_page_without_examples_is_named(mlflow_store, tmp_path):
    cfg = _config(tmp_path)
    section = _section(cfg, "captioning")
    mlflow = tracking.get_mlflow()
    with tracking.start_run("portfolio_unit", run_name="captions") as run:
        mlflow.log_text("<html>no examples here</html>", "captions.html")
    _register(list(portfolio.section_models(section))[1], run.info.run_id)
    got = portfolio.build_section(mlflow, section, cfg)
    lines = [p.line() for p in got["problems"]]
    want = f"artifact captions.html of run {run.info.run_id}: cannot be read: no caption examples"
    assert any(line.startswith(want) for line in lines), lines
