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
