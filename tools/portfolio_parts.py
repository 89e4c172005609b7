"""The pieces of a report section, each from data to HTML-ready values: the config summary,
the per-fold table, the ROC / learning-curve / recall@k figures (base64 PNG) and the caption
examples, plus the record of every artifact or model a section needed and could not read
(`Missing`). `tools.portfolio` reads the store and assembles the page from these.
"""

from __future__ import annotations

import base64
import html
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Missing:
    """One piece a section could not show: which artifact of which run or model version, and
    why, in one line (the page's warning box and the report's stderr both print it)."""

    what: str  # "artifact oof.csv", "model"
    owner: str  # "run <id>", "<registered model> v<version>"
    reason: str  # "file missing", "cannot be read: ...", "cannot be loaded: ..."

    def line(self) -> str:
        return f"{self.what} of {self.owner}: {self.reason}"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def artifact_bytes(
    client: Any, run_id: str, path: str, problems: list[Missing] | None = None
) -> bytes | None:
    """The run's artifact at `path`, or None when it is not there or cannot be read; then, when
    `problems` is given, a `Missing` is added to it: the page needs the file, so its absence is
    a fault to name, not a section to shrink silently."""
    from mlflow.exceptions import MlflowException

    parent = str(Path(path).parent) if "/" in path else None
    try:
        if path not in {a.path for a in client.list_artifacts(run_id, parent)}:
            reason = "file missing"
        else:
            with tempfile.TemporaryDirectory() as tmp:
                return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
    except (MlflowException, OSError) as exc:
        reason = f"cannot be read: {_first_line(exc)}"
    if problems is not None:
        problems.append(Missing(f"artifact {path}", f"run {run_id}", reason))
    return None


def model_problem(client: Any, name: str, version: str) -> str | None:
    """Why registered `name` v`version` cannot be loaded (one line), or None when its MLmodel
    reads and every file its python_function flavor names is there. Nothing is unpickled: a
    full-data model takes minutes and gigabytes to load, and a page of metrics needs neither."""
    import yaml
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        root = client.get_model_version_download_uri(name, version)
        repo = get_artifact_repository(root)
        shown = re.sub(r"//[^/@]*@", "//", root)  # no user:password on a mailed page
        if "MLmodel" not in {f.path for f in repo.list_artifacts()}:
            return f"cannot be loaded: its MLmodel file is missing ({shown})"
        with tempfile.TemporaryDirectory() as tmp:
            mlmodel = yaml.safe_load(Path(repo.download_artifacts("MLmodel", tmp)).read_text())
        if not isinstance(mlmodel, dict):
            return "cannot be loaded: its MLmodel is not a YAML mapping"
        flavor = (mlmodel.get("flavors") or {}).get("python_function")
        if flavor is None:
            return "cannot be loaded: its MLmodel has no python_function flavor"
        needed = [flavor.get(k) for k in ("python_model", "data", "code")]
        needed += [a.get("path") for a in (flavor.get("artifacts") or {}).values()]
        for path in filter(None, needed):
            parent = path.rsplit("/", 1)[0] if "/" in path else None
            if path not in {f.path for f in repo.list_artifacts(parent)}:
                return f"cannot be loaded: {path} is missing ({shown})"
    except (MlflowException, OSError, yaml.YAMLError) as exc:
        return f"cannot be loaded: {_first_line(exc)}"
    return None


def _png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def config_summary(params: dict[str, str], prefixes: list[str]) -> list[tuple[str, str]]:
    """The run's params whose key is one of `prefixes` or lies under one, sorted by key (a
    null reads `null`, as in config.yaml, not Python's `None`)."""
    keep = [
        (k, "null" if v in {"None", None} else v)
        for k, v in params.items()
        if any(k == p or k.startswith(f"{p}.") for p in prefixes)
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


def roc_png(
    client: Any, run: Any, spec: Any, problems: list[Missing] | None = None
) -> tuple[str, str] | None:
    """(base64 PNG, where it came from): redrawn from the OOF artifact with the scored TPR band
    when it holds the labels, else the run's own logged ROC figure, else None. With `problems`,
    each file it needed and could not use is added there (an OOF file that is missing, does not
    parse or lacks the labels, then a missing figure), even when the fallback filled in."""
    import pandas as pd

    from shared.plots import roc_figure

    run_id = run.info.run_id
    data = artifact_bytes(client, run_id, spec.artifact, problems) if spec.artifact else None
    if data is not None:
        try:
            oof = pd.read_csv(io.BytesIO(data))
        except ValueError as exc:  # pandas' parser errors and a bad encoding both are
            oof, why = pd.DataFrame(), f"cannot be read: {_first_line(exc)}"
        else:
            why = f"has no '{spec.target}' column or none of {', '.join(spec.scores)}"
        oof = oof if spec.target in oof else pd.DataFrame()  # no labels: nothing to redraw
        curves = {c: (oof[spec.target], oof[c]) for c in spec.scores if c in oof}
        if curves:
            min_tpr = float(run.data.params.get(spec.min_tpr_param, 0.8))
            return _png(roc_figure(curves, min_tpr)), f"redrawn from the run's {spec.artifact}"
        if problems is not None:
            problems.append(Missing(f"artifact {spec.artifact}", f"run {run_id}", why))
    if spec.logged_png:
        png = artifact_bytes(client, run_id, spec.logged_png, problems)
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


def bars_png(
    client: Any, run_id: str, spec: Any, problems: list[Missing] | None = None
) -> tuple[str, str] | None:
    """(base64 PNG, where it came from) of a PNG section image: redrawn from the run's table
    (`spec.table`, top `spec.top` rows of `spec.column`) when the run logged one, so the title
    is the page's and no label is cut off, else the run's own `spec.artifact` (named in
    `problems` when missing); a table that cannot be read is named too."""
    import pandas as pd

    if spec.table:
        listed = {a.path for a in client.list_artifacts(run_id)}
        data = (
            artifact_bytes(client, run_id, spec.table, problems) if spec.table in listed else None
        )
        if data is not None:
            try:
                frame = pd.read_csv(io.BytesIO(data))
                head = frame.nlargest(spec.top, spec.column)
                labels, values = head.iloc[:, 0].astype(str).tolist(), head[spec.column].tolist()
            except (ValueError, KeyError) as exc:
                why = f"cannot be read: {_first_line(exc)}"
                if problems is not None:
                    problems.append(Missing(f"artifact {spec.table}", f"run {run_id}", why))
            else:
                return _png(
                    _barh(labels, values, spec.column)
                ), f"redrawn from the run's {spec.table}"
    png = artifact_bytes(client, run_id, spec.artifact, problems)
    return None if png is None else (base64.b64encode(png).decode(), f"the run's {spec.artifact}")


def _barh(labels: list[str], values: list[float], xlabel: str) -> Any:
    """Horizontal bars, largest on top; no title (the page's heading is the title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.25 * len(labels) + 1))
    ax.barh(labels[::-1], values[::-1])
    ax.set(xlabel=xlabel)
    fig.tight_layout()
    return fig


_RECALL = re.compile(r"^(?P<k>\d+)_(?P<method>.+)$")


def recall_png(metrics: dict[str, float], prefix: str) -> str | None:
    """Grouped bars of `<prefix><k>_<method>` metrics: recall@k by retrieval method, or None."""
    fig = recall_figure(metrics, prefix)
    return None if fig is None else _png(fig)


def recall_figure(metrics: dict[str, float], prefix: str) -> Any:
    """`recall_png`'s figure (open): the legend sits right of the axes, over no bar."""
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
    fig, ax = plt.subplots(figsize=(7.2, 3.2))
    width = 0.8 / len(table)
    for i, (method, by_k) in enumerate(sorted(table.items())):
        x = np.arange(len(ks)) + i * width
        ax.bar(x, [by_k.get(k, 0.0) for k in ks], width, label=method)
    ax.set_xticks(np.arange(len(ks)) + width * (len(table) - 1) / 2, [f"@{k}" for k in ks])
    ax.set(ylabel="recall (gold passage retrieved)", ylim=(0, 1.05), title="Retrieval recall@k")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


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
