"""What the report says *about* a champion, derived from what its run logged: the heading from
its resolved config, numbers formatted by kind, its own baselines (every run) and the public
references (full-data runs only), the stacked-vs-plain comparison, the per-seed spread, the
model's size, parameter count and CPU latency, and its model card. `tools.portfolio` reads the
store; the functions here turn that into values the template prints as they are.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.model_card import weight_params
from tools.portfolio_parts import Missing, artifact_bytes

_FALSY = {"", "none", "null", "false", "0"}
_FIELD = re.compile(r"\{(?P<key>[A-Za-z0-9_.]+)(?:\?(?P<yes>[^|{}]*)\|(?P<no>[^{}]*))?\}")


def show_value(value: Any) -> str:
    """A logged param as a reader should see it: MLflow stores a null as the string 'None'."""
    return "null" if value is None or str(value) in {"None", "null"} else str(value)


def fill(template: str, params: dict[str, str], tags: dict[str, str] | None = None) -> str:
    """`template` with `{key}` replaced by the run's param (or `{tag.name}` by its tag) and
    `{key?yes|no}` by `yes` (an `@` in it: the value) when the value is set and true, else
    `no`. A key the run did not log reads `?`: the heading never claims what was not run."""
    lookup = {**params, **{f"tag.{k}": v for k, v in (tags or {}).items()}}

    def one(m: re.Match) -> str:
        value = lookup.get(m["key"])
        if m["yes"] is None:
            return "?" if value is None else show_value(value)
        if value is None:
            return "?"
        return m["yes"].replace("@", str(value)) if value.lower() not in _FALSY else m["no"]

    return _FIELD.sub(one, template)


def is_integer_metric(name: str, patterns: list[str]) -> bool:
    """Counts and epochs (`n_train`, `chosen_epoch`) print without decimals."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def fmt_metric(name: str, value: float | None, patterns: list[str], digits: int = 4) -> str:
    """A metric value: an integer for counts and epochs, else `digits` decimals; '–' if none."""
    if value is None:
        return "–"
    if is_integer_metric(name, patterns) and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def baseline_rows(section: Any, metrics: dict, params: dict, tags: dict) -> list[dict]:
    """Our metric beside the same run's own baselines (most-common caption, no-context reader,
    best single feature, the generator's oracle): only those the run logged."""
    return [
        {
            "label": fill(b.label, params, tags),
            "metric": b.metric,
            "ours": metrics[b.metric],
            "baseline": b.baseline,
            "value": metrics[b.baseline],
            "split": b.split,
        }
        for b in section.baselines
        if b.metric in metrics and b.baseline in metrics
    ]


def reference_rows(section: Any, data: str, metrics: dict) -> list[dict]:
    """Public references beside our number, for full-data runs only: a smoke run on generated
    data measured beside a leaderboard reads as a bug or as bragging."""
    if data != "full":
        return []
    return [
        {
            "label": r.label,
            "metric": r.metric,
            "ours": metrics.get(r.metric),
            "value": r.value,
            "dataset": r.dataset,
            "split": r.split,
            "source": r.source,
        }
        for r in section.references
    ]


def compare(this: dict, other: dict, feature: str) -> dict | None:
    """The stacked champion against the plain one, on the plain one's headline: which is higher
    and by how much, and what `feature` adds on these data; None when either has no value."""
    if this.get("status") not in {"ok", "broken"} or other.get("status") not in {"ok", "broken"}:
        return None
    metric = other.get("headline")
    ours, theirs = this["all_metrics"].get(metric), other["all_metrics"].get(metric)
    if ours is None or theirs is None:
        return None
    diff = ours - theirs
    same_data = this["data_name"] == other["data_name"]
    if abs(diff) < 5e-5:
        verdict = f"ties with the plain model: {feature} adds nothing measurable"
    elif diff > 0:
        verdict = f"scores {diff:.4f} higher than the plain model: {feature} adds {diff:+.4f}"
    else:
        verdict = (
            f"scores {-diff:.4f} lower than the plain model: {feature} does not help "
            f"({diff:+.4f}); the stacked model is shown because it is registered, not because "
            "it wins"
        )
    return {
        "metric": metric,
        "ours": ours,
        "theirs": theirs,
        "diff": diff,
        "other": other["key"],
        "higher": "this" if diff > 0 else "other" if diff < 0 else "tie",
        "text": verdict + (" on these data" if same_data else ""),
        "same_data": same_data,
        "data": (this["data_name"], other["data_name"]),
    }


def seed_spread(mlflow: Any, run: Any, metrics: list[str], ignore: list[str]) -> dict | None:
    """Mean ± std of `metrics` over one run per seed (the latest): the finished top-level runs
    of the same experiment and commit whose params equal this run's except those matching
    `ignore` (the seed, the run name, paths); None when only this seed ran."""
    mine = run.data.params

    def key(params: dict) -> dict:
        return {
            k: v for k, v in params.items() if not any(fnmatch.fnmatchcase(k, p) for p in ignore)
        }

    runs = mlflow.search_runs(
        [run.info.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        output_format="list",
        max_results=1000,
    )
    sha = run.data.tags.get("git_sha")
    latest: dict[str, Any] = {}  # seed -> its latest run: a rerun of one seed is no new seed
    for r in sorted(runs, key=lambda r: r.info.start_time or 0):
        tags = r.data.tags
        if "mlflow.parentRunId" in tags or tags.get("git_sha") != sha:
            continue
        if key(r.data.params) == key(mine):
            latest[r.data.params.get("seed", "?")] = r
    latest[mine.get("seed", "?")] = run
    same, seeds = list(latest.values()), sorted(latest)
    if len(seeds) < 2:
        return None
    rows = []
    for m in metrics:
        vals = [r.data.metrics[m] for r in same if m in r.data.metrics]
        if len(vals) >= 2:
            rows.append((m, statistics.mean(vals), statistics.stdev(vals), len(vals)))
    return {"seeds": seeds, "n_runs": len(same), "rows": rows}


def _artifact_files(repo: Any, path: str | None = None) -> list[Any]:
    out = []
    for f in repo.list_artifacts(path):
        out.extend(_artifact_files(repo, f.path) if f.is_dir else [f])
    return out


def model_footprint(client: Any, name: str, version: str, count_params: bool) -> dict:
    """Size on disk of the registered model's files and, when `count_params`, the parameters
    in its weight files (`*.safetensors` headers, `*.pt` / `*.pth` state dicts)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(client.get_model_version_download_uri(name, version))
    files = _artifact_files(repo)
    out: dict[str, Any] = {"bytes": sum(f.file_size or 0 for f in files), "n_files": len(files)}
    weights = [f.path for f in files if f.path.endswith((".safetensors", ".pt", ".pth"))]
    out["weight_files"], out["params"], out["params_total"] = weights, [], 0
    if count_params and weights:
        counted = []
        with tempfile.TemporaryDirectory() as tmp:
            for rel in weights:
                local = Path(repo.download_artifacts(rel, tmp))
                n = weight_params(local)
                if n is not None:
                    counted.append((rel, n))
        out["params"], out["params_total"] = counted, sum(n for _, n in counted)
    return out


def machine() -> str:
    """This CPU, for the latency column: model name and core count."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        name = found[1].strip() if found else name
    return f"{name}, {os.cpu_count()} cores"


def latency(model_uri: str, calls: int) -> dict:
    """Median seconds of `predict` on the model's logged input example (one warm-up call
    first), measured here on the CPU; `error` says why not when it cannot be."""
    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(model_uri)
        example = model.input_example
        if example is None:
            return {"error": "the model logged no input example"}
        model.predict(example)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            model.predict(example)
            times.append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a model that cannot run: said on the page
        return {"error": f"{type(exc).__name__}: {str(exc).strip()[:200]}"}
    rows = len(example) if isinstance(example, list) or hasattr(example, "columns") else 1
    return {"median_s": statistics.median(times), "calls": calls, "rows": rows}


def logged_card(client: Any, run_id: str, metrics: dict, problems: list) -> dict | None:
    """The model card logged with the model at publish time (`shared.model_card`), or None
    for a run from before cards were logged. A run that logged `model_bytes` (every publish
    since) must have its card: its absence is then named among the missing pieces."""
    expected = "model_bytes" in metrics
    text = artifact_bytes(client, run_id, "model_card.json", problems if expected else None)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        problems.append(Missing("artifact model_card.json", f"run {run_id}", "not JSON"))
        return None
