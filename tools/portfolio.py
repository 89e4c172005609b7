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
import html
import io
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import REPO_ROOT
from shared.cli import expected_errors
from shared.config import ConfigError, load_yaml
from shared.provenance import git_state
from shared.tracking import find_champion, get_mlflow, tracking_uri
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


def _artifact_bytes(client: Any, run_id: str, path: str) -> bytes | None:
    """The run's artifact at `path`, or None when the run did not log it."""
    parent = str(Path(path).parent) if "/" in path else None
    if path not in {a.path for a in client.list_artifacts(run_id, parent)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


def _child_runs(mlflow: Any, run: Any) -> list[Any]:
    """The run's nested runs (folds), in run-name order."""
    runs = mlflow.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        output_format="list",
        max_results=1000,
    )
    return sorted(runs, key=lambda r: r.info.run_name or "")


# --- pieces of a section ----------------------------------------------------------------------


def _png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def config_summary(params: dict[str, str], prefixes: list[str]) -> list[tuple[str, str]]:
    """The run's params whose key is one of `prefixes` or lies under one, sorted by key."""
    keep = [
        (k, v) for k, v in params.items() if any(k == p or k.startswith(f"{p}.") for p in prefixes)
    ]
    return sorted(keep)


def fold_table(
    children: list[Any], max_columns: int, skip: list[str] = ()
) -> dict[str, Any] | None:
    """Per-fold final metrics (one row per nested run) plus their mean and std, or None."""
    import numpy as np

    if not children:
        return None
    columns = sorted({m for r in children for m in r.data.metrics} - set(skip))[:max_columns]
    rows = [(r.info.run_name, [r.data.metrics.get(c) for c in columns]) for r in children]
    stats = []
    for j in range(len(columns)):
        vals = [v[j] for _, v in rows if v[j] is not None]
        stats.append((float(np.mean(vals)), float(np.std(vals))) if vals else (None, None))
    mean, std = [m for m, _ in stats], [s for _, s in stats]
    return {"columns": columns, "rows": rows, "mean": mean, "std": std}


def roc_png(client: Any, run: Any, spec: RocSpec) -> tuple[str, str] | None:
    """(base64 PNG, where it came from): redrawn from the OOF artifact with the scored TPR band
    when it holds the labels, else the run's own logged ROC figure, else None."""
    import pandas as pd

    from shared.plots import roc_figure

    data = _artifact_bytes(client, run.info.run_id, spec.artifact) if spec.artifact else None
    if data is not None:
        oof = pd.read_csv(io.BytesIO(data))
        oof = oof if spec.target in oof else pd.DataFrame()  # no labels: nothing to redraw
        curves = {c: (oof[spec.target], oof[c]) for c in spec.scores if c in oof}
        if curves:
            min_tpr = float(run.data.params.get(spec.min_tpr_param, 0.8))
            return _png(roc_figure(curves, min_tpr)), f"redrawn from the run's {spec.artifact}"
    if spec.logged_png:
        png = _artifact_bytes(client, run.info.run_id, spec.logged_png)
        if png is not None:
            return base64.b64encode(png).decode(), f"the run's {spec.logged_png}"
    return None


def _order(h: Any) -> tuple[int, int]:
    return h.timestamp, h.step


def metric_histories(
    client: Any, runs: list[tuple[str, Any]], skip: list[str] = ()
) -> dict[str, dict[str, list]]:
    """{metric: {run label: [(step, value), ...]}} for every metric logged at more than one step
    (except those named in `skip`)."""
    out: dict[str, dict[str, list]] = {}
    for label, run in runs:
        for metric in sorted(set(run.data.metrics) - set(skip)):
            by_step = {}  # a value logged twice at one step (a final summary): the later
            for h in sorted(client.get_metric_history(run.info.run_id, metric), key=_order):
                by_step[h.step] = h.value
            if len(by_step) > 1:
                out.setdefault(metric, {})[label] = sorted(by_step.items())
    return out


def curves_png(histories: dict[str, dict[str, list]], max_panels: int) -> str | None:
    """One panel per metric (a line per run or fold) against the epoch, or None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(histories)[:max_panels]
    if not names:
        return None
    cols = min(len(names), 3)
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        for label, points in histories[name].items():
            steps, values = zip(*points)
            ax.plot(steps, values, marker=".", lw=1.2, label=label)
        ax.set(title=name, xlabel="epoch (step)")
        if len(histories[name]) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


_RECALL = re.compile(r"^(?P<k>\d+)_(?P<method>.+)$")


def recall_png(metrics: dict[str, float], prefix: str) -> str | None:
    """Grouped bars of `<prefix><k>_<method>` metrics: recall@k by retrieval method, or None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table: dict[str, dict[int, float]] = {}
    for name, value in metrics.items():
        m = _RECALL.match(name[len(prefix) :]) if name.startswith(prefix) else None
        if m:
            table.setdefault(m["method"], {})[int(m["k"])] = value
    if not table:
        return None
    ks = sorted({k for by_k in table.values() for k in by_k})
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(table)
    for i, (method, by_k) in enumerate(sorted(table.items())):
        x = np.arange(len(ks)) + i * width
        ax.bar(x, [by_k.get(k, 0.0) for k in ks], width, label=method)
    ax.set_xticks(np.arange(len(ks)) + width * (len(table) - 1) / 2, [f"@{k}" for k in ks])
    ax.set(ylabel="recall (gold passage retrieved)", ylim=(0, 1.05), title="Retrieval recall@k")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


_CAPTION_CELL = re.compile(
    r"<img src='data:image/(?P<fmt>[a-z]+);base64,(?P<b64>[A-Za-z0-9+/=]+)'>"
    r"<p><b>beam:</b> (?P<beam>.*?)<br><b>greedy:</b> (?P<greedy>.*?)</p><ul>(?P<refs>.*?)</ul>",
    re.S,
)


def caption_examples(page: str, n: int) -> list[dict[str, Any]]:
    """The first `n` examples of captioning's `captions.html` (image, beam, greedy, references),
    unescaped here: the template escapes them again."""
    out = []
    for m in _CAPTION_CELL.finditer(page):
        refs = re.findall(r"<li>(.*?)</li>", m["refs"], re.S)
        out.append(
            {
                "mime": f"image/{m['fmt']}",
                "b64": m["b64"],
                "beam": html.unescape(m["beam"]),
                "greedy": html.unescape(m["greedy"]),
                "refs": [html.unescape(r) for r in refs],
            }
        )
        if len(out) == n:
            break
    return out


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
    config_text = _artifact_bytes(client, run.info.run_id, "config.yaml")
    roc = roc_png(client, run, section.roc) if section.roc else None
    images = []
    for name in section.images:
        png = _artifact_bytes(client, run.info.run_id, name)
        if png is not None:
            images.append({"name": name, "b64": base64.b64encode(png).decode()})
    captions = []
    if section.captions:
        page = _artifact_bytes(client, run.info.run_id, "captions.html")
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
