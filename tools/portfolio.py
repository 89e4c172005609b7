"""`make report`: one self-contained HTML page of every project's registered champion.

Read-only over the MLflow store (`shared.tracking.tracking_uri()`): for each section of
`configs/report/portfolio.yaml` the first registered model that has a `champion` alias (the
full-data model before the smoke one) gives the run whose config, CV table, plots, git SHA and
data fingerprint the page shows, beside the public reference numbers the YAML cites. Every
image is a base64 `data:` URI so the file can be mailed or opened offline; a project without a
registered model gets a section naming the `make` target that creates one. The schema lives in
`tools.portfolio_config`, the tables and figures in `tools.portfolio_parts`, and what the page
says about a champion (heading, baselines, references, size, latency, model card) in
`tools.portfolio_card`.

A piece the page needs and cannot read (an artifact of the champion's run that is missing or
unreadable, a champion model whose files are gone, a run that cannot be read) is not left out
silently: its section gets a warning box naming each one, a champion that cannot be loaded is
marked so (status `broken`), and the command still writes the page but exits with status 3
(`EXIT_MISSING`), after one `error: <section>: <what> of <run or model version>: <why>` line per
piece on stderr. Exit status: 0 the page is complete, 2 bad input (`error:` line, no page),
3 the page is written but names missing pieces.

python -m tools.portfolio [--config PATH] [--output PATH] [--latency]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import REPO_ROOT
from shared.cli import expected_errors
from shared.provenance import git_state
from shared.tracking import find_champion, get_mlflow, tracking_uri
from tools.portfolio_card import (
    baseline_rows,
    compare,
    fill,
    fmt_metric,
    latency,
    logged_card,
    machine,
    model_footprint,
    reference_rows,
    seed_spread,
)
from tools.portfolio_config import (  # noqa: F401 - the schema, re-exported for callers
    CONFIG_FILE,
    DATA_KINDS,
    Baseline,
    Image,
    ModelRef,
    PortfolioConfig,
    Reference,
    RocSpec,
    SectionConfig,
    load_config,
)
from tools.portfolio_parts import (
    Missing,
    artifact_bytes,
    bars_png,
    caption_examples,
    config_summary,
    curves_png,
    fold_table,
    metric_histories,
    model_problem,
    recall_png,
    roc_png,
)
from tools.registry import model_name

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "portfolio.html.j2"
EXIT_MISSING = 3  # the page is written, but some of what it should show could not be read


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


def build_section(
    mlflow: Any, section: SectionConfig, cfg: PortfolioConfig, measure_latency: bool = False
) -> dict[str, Any]:
    """Everything the template shows for one section. `status`: 'ok'; 'missing' (no champion);
    'broken' (the champion's model cannot be loaded: shown, but not as a working model);
    'unreadable' (its run cannot be read). `problems` lists every `Missing` piece.
    `measure_latency` loads the champion and times predict here (slow: `--latency`)."""
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    models = section_models(section)
    found = find_champion(client, models)
    base = {
        "key": section.key,
        "title": section.title,
        "heading": None,
        "readme": section.readme,
        "make_target": section.make_target,
        "comparison": None,
    }
    if found is None:
        return {
            **base,
            "status": "missing",
            "looked_for": list(models),
            "problems": [],
        }
    registered, version = found
    owner = f"{registered} v{version.version}"
    problems: list[Missing] = []
    why_not = model_problem(client, registered, str(version.version))
    if why_not:
        problems.append(Missing("model", owner, why_not))
    run, why = None, "no run id recorded on the version"
    try:
        run = client.get_run(version.run_id) if version.run_id else None
    except MlflowException as exc:
        why = f"cannot be read: {(exc.message or str(exc)).strip().splitlines()[0]}"
    if run is None:  # a run that is gone: the version's record is all there is to show
        problems.append(Missing(f"run {version.run_id}", owner, why))
        return {
            **base,
            "status": "unreadable",
            "model": registered,
            "version": str(version.version),
            "run_id": str(version.run_id),
            "problems": problems,
        }
    run_id = run.info.run_id
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    children = _child_runs(mlflow, run)
    headline = tags.get("headline_metric") or version.tags.get("validation_metric", "")
    config_text = artifact_bytes(client, run_id, "config.yaml", problems)
    roc = roc_png(client, run, section.roc, problems) if section.roc else None
    images = []
    for image in section.images:
        got = bars_png(client, run_id, image, problems)
        if got is not None:
            images.append(
                {"name": image.artifact, "title": image.title, "b64": got[0], "from": got[1]}
            )
    captions = []
    if section.captions:
        page = artifact_bytes(client, run_id, "captions.html", problems)
        if page is not None:
            captions = caption_examples(page.decode(errors="replace"), cfg.caption_examples)
            if not captions:
                why = "cannot be read: no caption examples in it"
                problems.append(Missing("artifact captions.html", f"run {run_id}", why))
    histories = metric_histories(
        client,
        [("run", run), *((c.info.run_name or c.info.run_id, c) for c in children)],
        list(cfg.skip_metrics),
    )
    data = models[registered]
    footprint, timing = None, None
    if not why_not:
        if measure_latency:  # first: loading writes registered_model_meta into the model
            timing = latency(f"models:/{registered}/{version.version}", cfg.latency_calls)
        footprint = model_footprint(client, registered, str(version.version), count_params=True)
    built = {
        **base,
        "heading": fill(section.heading, params, tags),
        "status": "broken" if why_not else "ok",
        "problems": problems,
        "data": data,
        "data_name": params.get("data.name", "?"),
        "data_paths": _json_list(tags.get("data_paths")),
        "model": registered,
        "version": str(version.version),
        "run_id": run_id,
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
        "all_metrics": dict(metrics),
        "baselines": baseline_rows(section, metrics, params, tags),
        "references": reference_rows(section, data, metrics),
        "references_held_back": len(section.references) if data != "full" else 0,
        "footprint": footprint,
        "latency": timing,
        "spread": seed_spread(
            mlflow,
            run,
            list(dict.fromkeys(filter(None, [headline, *section.metrics]))),
            list(cfg.seed_ignore),
        ),
        "config": config_summary(params, list(section.config_keys)),
        "config_yaml": config_text.decode() if config_text else None,
        "folds": fold_table(children, cfg.max_folds_columns, list(cfg.skip_metrics)),
        "roc": roc,
        "curves": curves_png(histories, cfg.max_curves),
        "recall": recall_png(metrics, section.recall_prefix) if section.recall_prefix else None,
        "images": images,
        "captions": captions,
    }
    card = logged_card(client, run_id, metrics, problems)
    if card is not None:  # the page lists the section's metrics; the logged card has them all
        card["n_metrics"] = len(card["metrics"])
        card["metrics"] = [row for row in card["metrics"] if row[0] in section.metrics]
    built["card"] = card
    return built


def _json_list(text: str | None) -> list[str]:
    """A JSON list tag (`data_paths`), or [] when absent or not one."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


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
    patterns = list(cfg.integer_metrics)
    env.filters["metric"] = lambda v, name, d=4: fmt_metric(name, v, patterns, d)
    env.filters["mb"] = lambda n: f"{n / 1e6:,.1f} MB"
    env.filters["millions"] = lambda n: f"{n / 1e6:,.2f} M" if n >= 1e5 else f"{n:,}"
    sha, dirty = git_state()
    page = env.get_template(TEMPLATE).render(
        title=cfg.title,
        sections=sections,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        store=re.sub(r"//[^/@]*@", "//", tracking_uri()),  # no user:password in a mailed page
        repo_sha=sha,
        repo_dirty=dirty,
        missing_total=sum(len(s["problems"]) for s in sections),
        machine=machine(),
    )
    bad = external_refs(page)
    if bad:
        raise RuntimeError(f"the report would load external resources: {bad[:3]}")
    return page


def write_report(
    cfg: PortfolioConfig, output: str | Path | None = None, measure_latency: bool = False
) -> tuple[Path, list[str]]:
    """Write the page to `output` (default: the config's, relative to the repo root); return
    it with one `<section>: <what> of <owner>: <why>` line per piece it could not read."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow = get_mlflow()
    sections = [build_section(mlflow, s, cfg, measure_latency) for s in cfg.sections]
    by_key = {s["key"]: s for s in sections}
    for spec, built in zip(cfg.sections, sections):
        if spec.compare_to:
            built["comparison"] = compare(built, by_key[spec.compare_to], spec.compare_feature)
    path = Path(output or cfg.output)
    if not path.is_absolute():
        path = REPO_ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(cfg, sections), encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a page
    return path, [f"{s['key']}: {p.line()}" for s in sections for p in s["problems"]]


def build_report(
    cfg: PortfolioConfig, output: str | Path | None = None, measure_latency: bool = False
) -> Path:
    """`write_report`'s page alone (callers that read the page, not the exit status)."""
    return write_report(cfg, output, measure_latency)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG_FILE), help="report YAML")
    parser.add_argument("--output", default=None, help="HTML file (default: the config's)")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="load every champion and time predict on its input example here (slow)",
    )
    args = parser.parse_args(argv)
    with expected_errors():
        cfg = load_config(args.config)
        path, missing = write_report(cfg, args.output, args.latency)
    note = f", {len(missing)} missing pieces named on it and on stderr" if missing else ""
    print(f"report: {path} (store {tracking_uri()}{note})", flush=True)
    for line in missing:
        print(f"error: {line}", file=sys.stderr, flush=True)
    if missing:
        raise SystemExit(EXIT_MISSING)


if __name__ == "__main__":
    main()
