"""Why a model said what it said: the GBMs' own per-feature contributions, per-token
probabilities of caption beams, and shared-word highlighting (Grad-CAM for the lesion CNN is
the image project's own: `projects.image_classifier.gradcam`).

Each function works on the objects inside the registered pyfuncs (fold models, boosters,
decoder), so the demo explains exactly the model it serves.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd


def gbm_contributions(ensemble, X: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per model (`lightgbm`, `catboost`): per-row feature contributions in raw (log-odds)
    space, averaged over the bags, with a `bias` column; each row sums to `gbm_raw_scores`.

    LightGBM's `predict(pred_contrib=True)` and CatBoost's `ShapValues` are both exact
    TreeSHAP values of their own model, so no explainer library is needed.
    """
    from catboost import Pool

    from projects.tabular_gbm.model import _catboost_frame

    columns = [*X.columns, "bias"]
    lgb = np.mean([b.predict(X, pred_contrib=True) for b in ensemble.lightgbm], axis=0)
    Xc, cats = _catboost_frame(X)
    pool = Pool(Xc, cat_features=cats)
    cb = np.mean(
        [c.get_feature_importance(pool, type="ShapValues") for c in ensemble.catboost], axis=0
    )
    return {
        "lightgbm": pd.DataFrame(lgb, columns=columns, index=X.index),
        "catboost": pd.DataFrame(cb, columns=columns, index=X.index),
    }


def gbm_raw_scores(ensemble, X: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each model's raw score (log-odds), averaged over the bags."""
    from projects.tabular_gbm.model import _catboost_frame

    Xc, _ = _catboost_frame(X)
    return {
        "lightgbm": np.mean([b.predict(X, raw_score=True) for b in ensemble.lightgbm], axis=0),
        "catboost": np.mean(
            [c.predict(Xc, prediction_type="RawFormulaVal") for c in ensemble.catboost], axis=0
        ),
    }


def top_contributions(contrib: dict[str, pd.DataFrame], row: int, k: int) -> pd.DataFrame:
    """The `k` features with the largest mean |contribution| over both models for one row."""
    table = pd.DataFrame({m: df.iloc[row].drop("bias") for m, df in contrib.items()})
    order = table.abs().mean(axis=1).sort_values(ascending=False).index[:k]
    out = table.loc[order].reset_index(names="feature")
    return out.round(4)


BASE, OTHERS, TOTAL = "base value", "other features", "log-odds"


def waterfall(contrib: dict[str, pd.DataFrame], row: int, k: int) -> pd.DataFrame:
    """One row's log-odds built up per model, unrounded: the base value (the trees' expected
    score), the top-k features by mean |contribution|, the rest summed, then their total.

    Without the base value, mostly positive contributions would sit beside a tiny probability:
    the base of a rare class is very negative. Rows: `term`, then one column per model.
    """
    top = top_contributions(contrib, row, k)["feature"]
    cols = {}
    for m, df in contrib.items():
        r = df.iloc[row]
        features = r.drop("bias")
        cols[m] = [
            float(r["bias"]),
            *(float(features[f]) for f in top),
            float(features.drop(list(top)).sum()),
            float(r.sum()),
        ]
    others = f"{OTHERS} ({len(contrib[next(iter(contrib))].columns) - 1 - len(top)})"
    return pd.DataFrame({"term": [BASE, *top, others, TOTAL], **cols})


def waterfall_html(table: pd.DataFrame, labels: dict[str, str]) -> str:
    """The waterfall as an HTML table: 4 decimals shown, the exact value in `data-value` (what
    the browser test sums), features labelled with `labels` where known."""
    models = list(table.columns[1:])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    rows = []
    for _, r in table.iterrows():
        term = str(r["term"])
        name = html.escape(labels.get(term, term))
        if term in labels:
            name += f" <code>{html.escape(term)}</code>"
        kind = "base" if term == BASE else "total" if term == TOTAL else "term"
        cells = "".join(
            f"<td data-model='{m}' data-value='{float(r[m])!r}'>{float(r[m]):+.4f}</td>"
            for m in models
        )
        tag = "b" if kind != "term" else "span"
        rows.append(f"<tr class='wf-{kind}'><td><{tag}>{name}</{tag}></td>{cells}</tr>")
    return (
        "<table class='waterfall'><thead><tr><th>log-odds</th>"
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def waterfall_figure(table: pd.DataFrame, labels: dict[str, str]):
    """A waterfall plot per model (a matplotlib Figure): each bar starts where the previous
    ended, from the base value to the log-odds (red raises the risk, blue lowers it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(table.columns[1:])
    terms = [labels.get(t, t) for t in table["term"]]
    fig, axes = plt.subplots(
        len(models), 1, figsize=(7.5, len(models) * (0.3 * len(terms) + 0.9)), squeeze=False
    )
    for ax, m in zip(axes[:, 0], models, strict=True):
        values = table[m].to_numpy()
        ends = np.cumsum(values[:-1])  # running log-odds after each term
        left = np.r_[0.0, ends[:-1], 0.0]  # base and total are drawn from 0
        colours = ["#555555", *("#d62728" if v > 0 else "#1f77b4" for v in values[1:-1])]
        colours.append("#555555")
        width = values
        y = np.arange(len(values))[::-1]
        ax.barh(y, width, left=left, color=colours, height=0.7)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_yticks(y, terms, fontsize=8)
        ax.set_title(
            f"{m}: base {values[0]:+.3f} + contributions = log-odds {values[-1]:+.3f}",
            fontsize=9,
            loc="left",
        )
        ax.set_xlabel("log-odds", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


_TOKEN_STYLE = (
    "display:inline-block;margin:2px;padding:2px 5px;border-radius:4px;text-align:center;"
    "color:#111;line-height:1.2"
)


def token_rows_html(tokens: pd.DataFrame) -> str:
    """One row per beam: its tokens coloured by the decoder's probability (green sure, red
    unsure), the probability under each token and in its tooltip (`data-p`, unrounded)."""
    if tokens.empty:
        return "<p>No beam.</p>"
    rows = []
    for beam, group in tokens.groupby("beam", sort=True):
        cells = []
        for _, t in group.iterrows():
            p = float(t["probability"])
            colour = f"hsl({round(120 * p)}, 70%, 82%)"
            cells.append(
                f"<span class='tok' style='background:{colour};{_TOKEN_STYLE}' data-p='{p!r}' "
                f"title='p = {p:.4f}'>{html.escape(str(t['token']))}"
                f"<small style='display:block;font-size:70%'>{p:.2f}</small></span>"
            )
        rows.append(
            f"<div class='beam' data-beam='{beam}' style='margin:4px 0'><b>beam {beam}</b> "
            f"{''.join(cells)}</div>"
        )
    return "\n".join(rows)


_WORD = re.compile(r"[A-Za-z0-9]+")


def content_words(text: str, min_chars: int, stopwords: Sequence[str]) -> set[str]:
    """Lower-cased words of `text` worth highlighting (long enough, not stop words)."""
    stop = {w.lower() for w in stopwords}
    return {w.lower() for w in _WORD.findall(text) if len(w) >= min_chars and w.lower() not in stop}


def highlight(text: str, words: set[str]) -> str:
    """HTML of `text` with each word in `words` (case-insensitive) wrapped in <mark>."""
    out, last = [], 0
    for m in _WORD.finditer(text):
        if m.group().lower() in words:
            out += [html.escape(text[last : m.start()]), f"<mark>{html.escape(m.group())}</mark>"]
            last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)
