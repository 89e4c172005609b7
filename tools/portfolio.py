"""`make report`: one self-contained HTML page of every project's registered champion.

Read-only over the MLflow store (`shared.tracking.tracking_uri()`): for each section of
`configs/report/portfolio.yaml` the first registered model that has a `champion` alias (the
full-data model before the smoke one) gives the run whose config, CV table, plots, git SHA and
data fingerprint the page shows, beside the public reference numbers the YAML cites. Every
image is a base64 `data:` URI so the file can be mailed or opened offline; a project without a
registered model gets a section naming the `make` target that creates one.

python -m tools.portfolio [--config PATH] [--output PATH]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import REPO_ROOT
from shared.cli import expected_errors
from shared.config import ConfigError, load_yaml
from shared.provenance import git_state
from shared.tracking import find_champion, get_mlflow, tracking_uri
from tools.portfolio_parts import (
    artifact_bytes,
    caption_examples,
    config_summary,
    curves_png,
    fold_table,
    metric_histories,
    recall_png,
    roc_png,
)
from tools.registry import ML_PROJECTS, model_name

CONFIG_FILE = REPO_ROOT / "configs" / "report" / "portfolio.yaml"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "portfolio.html.j2"
DATA_KINDS = ("full", "smoke")


@dataclass
class ModelRef:
    experiment: str  # "full" or "smoke": composed with experiment=<this>; labels the section
    suffix: str  # appended to the config's tracking.model_name ("-stacked": the stacked GBM)


@dataclass
class RocSpec:
    artifact: str | None  # OOF csv with the label column; null: show `logged_png` only
    target: str
    scores: list[str]
    min_tpr_param: str  # the run's param holding the scored TPR band's lower edge
    logged_png: str | None  # the run's own ROC figure, when the OOF file cannot be redrawn


@dataclass
class Reference:
    label: str
    metric: str  # our run metric shown beside it
    value: float
    source: str


@dataclass
class SectionConfig:
    key: str
    project: str  # whose config names the registered models (tools.registry.ML_PROJECTS)
    title: str
    readme: str
    make_target: str
    models: list[ModelRef]
    metrics: list[str]
    config_keys: list[str]  # param prefixes shown in the config summary
    roc: RocSpec | None
    images: list[str]  # PNG artifacts of the run embedded as they are
    recall_prefix: str | None  # metrics `<prefix><k>_<method>` drawn as recall@k bars
    captions: bool  # examples from the run's captions.html
    references: list[Reference]


@dataclass
class PortfolioConfig:
    output: str
    title: str
    max_curves: int
    caption_examples: int
    max_folds_columns: int
    skip_metrics: list[str]  # logged per epoch but neither a learning curve nor a fold column
    sections: list[SectionConfig]


def load_config(path: str | Path = CONFIG_FILE, overrides: list[str] | None = None):
    """The report config, schema-checked (an unknown key or a bad data kind fails, named)."""
    cfg: PortfolioConfig = load_yaml(path, PortfolioConfig, overrides)
    for i, section in enumerate(cfg.sections):
        if section.project not in ML_PROJECTS:
            raise ConfigError(
                f"config key 'sections[{i}].project': '{section.project}' is not one of "
                f"{', '.join(ML_PROJECTS)} ({path})"
            )
        for j, ref in enumerate(section.models):
            if ref.experiment not in DATA_KINDS:
                raise ConfigError(
                    f"config key 'sections[{i}].models[{j}].experiment': '{ref.experiment}' is "
                    f"not one of {', '.join(DATA_KINDS)} ({path})"
                )
    return cfg


# --- the store --------------------------------------------------------------------------------


def section_models(section: SectionConfig) -> dict[str, str]:
    """Registered model name -> "full" / "smoke", in lookup order, from the project's config."""
    return {
        model_name(section.project, ref.experiment)[0] + ref.suffix: ref.experiment
        for ref in section.models
    }


def _child_runs(mlflow: Any, run: Any) -> list[Any]:
    """The run's nested runs (folds), in run-name order."""
    runs = mlflow.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        output_format="list",
        max_results=1000,
    )
    return sorted(runs, key=lambda r: r.info.run_name or "")


def _when(ms: int | None) -> str:
    if not ms:
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_section(mlflow: Any, section: SectionConfig, cfg: PortfolioConfig) -> dict[str, Any]:
    """Everything the template shows for one section (`status` 'missing' when no champion)."""
    client = mlflow.MlflowClient()
    models = section_models(section)
    found = find_champion(client, models)
    base = {"key": section.key, "title": section.title, "readme": section.readme}
    if found is None:
        return {
            **base,
            "status": "missing",
            "make_target": section.make_target,
            "looked_for": list(models),
        }
    registered, version = found
    run = client.get_run(version.run_id)
    tags, metrics = run.data.tags, run.data.metrics
    children = _child_runs(mlflow, run)
    headline = tags.get("headline_metric") or version.tags.get("validation_metric", "")
    config_text = artifact_bytes(client, run.info.run_id, "config.yaml")
    roc = roc_png(client, run, section.roc) if section.roc else None
    images = []
    for name in section.images:
        png = artifact_bytes(client, run.info.run_id, name)
        if png is not None:
            images.append({"name": name, "b64": base64.b64encode(png).decode()})
    captions = []
    if section.captions:
        page = artifact_bytes(client, run.info.run_id, "captions.html")
        if page is not None:
            captions = caption_examples(page.decode(), cfg.caption_examples)
    histories = metric_histories(
        client,
        [("run", run), *((c.info.run_name or c.info.run_id, c) for c in children)],
        list(cfg.skip_metrics),
    )
    return {
        **base,
        "status": "ok",
        "data": models[registered],
        "model": registered,
        "version": str(version.version),
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_tag": tags.get("experiment", "?"),
        "started": _when(run.info.start_time),
        "git_sha": tags.get("git_sha", "unknown"),
        "git_dirty": tags.get("git_dirty", "?"),
        "data_fingerprint": tags.get("data_fingerprint", "unknown"),
        "device": tags.get("device", "?"),
        "headline": headline,
        "headline_value": metrics.get(headline),
        "metrics": [(m, metrics[m]) for m in section.metrics if m in metrics],
        "references": [
            {
                "label": r.label,
                "metric": r.metric,
                "ours": metrics.get(r.metric),
                "value": r.value,
                "source": r.source,
            }
            for r in section.references
        ],
        "config": config_summary(run.data.params, list(section.config_keys)),
        "config_yaml": config_text.decode() if config_text else None,
        "folds": fold_table(children, cfg.max_folds_columns, list(cfg.skip_metrics)),
        "roc": roc,
        "curves": curves_png(histories, cfg.max_curves),
        "recall": recall_png(metrics, section.recall_prefix) if section.recall_prefix else None,
        "images": images,
        "captions": captions,
    }


# --- the page -----------------------------------------------------------------------------------

_EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//)|(?:url\(\s*["']?\s*(?:https?:)?//)|(?:@import)""",
    re.I,
)


def external_refs(page: str) -> list[str]:
    """Every place the page would fetch something from elsewhere (src/href/url() to a host)."""
    return [page[max(0, m.start() - 20) : m.end() + 40] for m in _EXTERNAL.finditer(page)]


def render(cfg: PortfolioConfig, sections: list[dict[str, Any]]) -> str:
    """The HTML page (Jinja2, autoescaped); refuses a page that links outside itself."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v, d=4: "–" if v is None else f"{v:.{d}f}"
    sha, dirty = git_state()
    page = env.get_template(TEMPLATE).render(
        title=cfg.title,
        sections=sections,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        store=re.sub(r"//[^/@]*@", "//", tracking_uri()),  # no user:password in a mailed page
        repo_sha=sha,
        repo_dirty=dirty,
    )
    bad = external_refs(page)
    if bad:
        raise RuntimeError(f"the report would load external resources: {bad[:3]}")
    return page


def build_report(cfg: PortfolioConfig, output: str | Path | None = None) -> Path:
    """Write the page to `output` (default: the config's, relative to the repo root)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow = get_mlflow()
    sections = [build_section(mlflow, s, cfg) for s in cfg.sections]
    path = Path(output or cfg.output)
    if not path.is_absolute():
        path = REPO_ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(cfg, sections), encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a page
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG_FILE), help="report YAML")
    parser.add_argument("--output", default=None, help="HTML file (default: the config's)")
    args = parser.parse_args(argv)
    with expected_errors():
        cfg = load_config(args.config)
        path = build_report(cfg, args.output)
    print(f"report: {path} (store {tracking_uri()})", flush=True)


if __name__ == "__main__":
    main()
