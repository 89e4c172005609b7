"""The pieces of a report section, each from data to HTML-ready values: the config summary,
the per-fold table, the ROC / learning-curve / recall@k figures (base64 PNG) and the caption
examples. `tools.portfolio` reads the store and assembles the page from these.
"""

from __future__ import annotations

import base64
import html
import io
import re
import tempfile
from pathlib import Path
from typing import Any


def artifact_bytes(client: Any, run_id: str, path: str) -> bytes | None:
    """The run's artifact at `path`, or None when the run did not log it."""
    parent = str(Path(path).parent) if "/" in path else None
    if path not in {a.path for a in client.list_artifacts(run_id, parent)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


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


def roc_png(client: Any, run: Any, spec: Any) -> tuple[str, str] | None:
    """(base64 PNG, where it came from): redrawn from the OOF artifact with the scored TPR band
    when it holds the labels, else the run's own logged ROC figure, else None."""
    import pandas as pd

    from shared.plots import roc_figure

    data = artifact_bytes(client, run.info.run_id, spec.artifact) if spec.artifact else None
    if data is not None:
        oof = pd.read_csv(io.BytesIO(data))
        oof = oof if spec.target in oof else pd.DataFrame()  # no labels: nothing to redraw
        curves = {c: (oof[spec.target], oof[c]) for c in spec.scores if c in oof}
        if curves:
            min_tpr = float(run.data.params.get(spec.min_tpr_param, 0.8))
            return _png(roc_figure(curves, min_tpr)), f"redrawn from the run's {spec.artifact}"
    if spec.logged_png:
        png = artifact_bytes(client, run.info.run_id, spec.logged_png)
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
