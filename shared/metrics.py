"""Every metric the projects report, defined once.

- `pauc_above_tpr`: ISIC 2024's partial ROC area above a TPR floor (not standardised).
- `roc_auc`: plain ROC-AUC with the same input checks.
- `map_at_k`: LLM Science Exam MAP@k.
- `reference_percentile`: where a score falls within a model's own out-of-fold scores (the
  batch-independent form of ISIC's image feature).
- `caption_scores`: BLEU-1..4 and CIDEr-D with pycocoevalcap's own scorers, on tokens equal to
  what coco-caption's Java PTBTokenizer gives (`shared.ptb_tokenizer`, pure Python).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

from shared.ptb_tokenizer import ptb_tokenize, ptb_tokenize_batch


def _check_binary(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(float).ravel()
    y_score = np.asarray(y_score).astype(float).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_score has {y_score.size}")
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if np.unique(y_true).size < 2:
        only = int(y_true[0]) if y_true.size else "nothing"
        raise ValueError(f"ROC metrics need both classes; y_true holds only {only}")
    if not np.isfinite(y_score).all():
        raise ValueError("y_score holds NaN or infinite values")
    return y_true, y_score


def pauc_above_tpr(
    y_true: Sequence[float], y_score: Sequence[float], min_tpr: float = 0.8
) -> float:
    """Partial ROC area where TPR >= min_tpr, as the ISIC 2024 challenge scored it.

    Labels and scores are flipped so the high-TPR band becomes a low-FPR band, whose area is
    taken for FPR in [0, 1 - min_tpr] with linear interpolation at the edge. Not standardised:
    a perfect ranking scores 1 - min_tpr (0.2 at the default).
    """
    y, s = _check_binary(np.asarray(y_true), np.asarray(y_score))
    if not 0.0 <= min_tpr < 1.0:
        raise ValueError(f"min_tpr must be in [0, 1), got {min_tpr}")
    max_fpr = 1.0 - min_tpr
    fpr, tpr, _ = roc_curve(1.0 - y, -s)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x_interp = [fpr[stop - 1], fpr[min(stop, fpr.size - 1)]]
    y_interp = [tpr[stop - 1], tpr[min(stop, tpr.size - 1)]]
    tpr_cut = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr_cut = np.append(fpr[:stop], max_fpr)
    return float(auc(fpr_cut, tpr_cut))


def roc_auc(y_true: Sequence[float], y_score: Sequence[float]) -> float:
    """Area under the full ROC curve (ties count half)."""
    y, s = _check_binary(np.asarray(y_true), np.asarray(y_score))
    return float(roc_auc_score(y, s))


def reference_percentile(reference: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Mid-rank percentile of each value within `reference`: P(ref < v) + P(ref == v) / 2.

    Depends on the value and the stored reference only, never on the other values scored with
    it, so a row gets the same percentile alone and in any batch. A value of the reference
    itself gets its average rank within it minus one half, over n (ties share one value).
    """
    ref = np.sort(np.asarray(reference, dtype=float).ravel())
    if ref.size == 0:
        raise ValueError("reference_percentile needs a non-empty reference distribution")
    v = np.asarray(values, dtype=float)
    if np.isnan(ref).any() or np.isnan(v).any():
        raise ValueError("reference_percentile: scores must not be NaN")
    below = np.searchsorted(ref, v, side="left")
    at_or_below = np.searchsorted(ref, v, side="right")
    return (below + at_or_below) / (2.0 * ref.size)


def map_at_k(
    labels: Sequence[str], ranked_predictions: Sequence[Sequence[str]], k: int = 3
) -> float:
    """Mean average precision at k with one correct label per item (LLM Science Exam).

    Each item scores 1/rank of its label among the first k predictions, else 0. A label that
    appears twice in a prediction list counts at its first position only.
    """
    if len(labels) != len(ranked_predictions):
        raise ValueError(f"{len(labels)} labels but {len(ranked_predictions)} prediction lists")
    if len(labels) == 0:
        raise ValueError("map_at_k needs at least one item")
    total = 0.0
    for label, preds in zip(labels, ranked_predictions):
        for rank, pred in enumerate(list(preds)[:k], start=1):
            if pred == label:
                total += 1.0 / rank
                break
    return total / len(labels)


def tokenize_caption(text: str) -> str:
    """One caption as coco-caption tokenises it: PTB tokens, lower-cased, punctuation dropped."""
    return ptb_tokenize(text)


def caption_scores(
    references: Mapping[object, Sequence[str]], candidates: Mapping[object, str]
) -> dict[str, float]:
    """Corpus BLEU-1..4 and CIDEr-D exactly as coco-caption computes them.

    `references` maps an image id to its reference captions, `candidates` the same ids to one
    generated caption each. As in coco-caption, all references are PTB-tokenised as one batch
    and all candidates as another, both in the order of `references` (a caption's last token
    can depend on how the next one starts), then scored by pycocoevalcap's Bleu(4) and Cider
    (which is CIDEr-D: sigma 6 length penalty, clipped counts, document frequencies from the
    references).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if set(references) != set(candidates):
        missing = sorted(map(str, set(references) ^ set(candidates)))[:5]
        raise ValueError(f"references and candidates cover different ids, e.g. {missing}")
    if not candidates:
        raise ValueError("caption_scores needs at least one image")
    ids = list(references)
    ref_lists = [list(references[k]) for k in ids]
    for k, v in zip(ids, ref_lists):
        if not v:
            raise ValueError(f"image {k!r} has no reference caption")
    flat = iter(ptb_tokenize_batch([r for v in ref_lists for r in v]))
    refs = {k: [next(flat) for _ in v] for k, v in zip(ids, ref_lists)}
    cands = {k: [c] for k, c in zip(ids, ptb_tokenize_batch([candidates[k] for k in ids]))}
    bleu, _ = Bleu(4).compute_score(refs, cands, verbose=0)
    cider, _ = Cider().compute_score(refs, cands)
    scores = {f"bleu_{i + 1}": float(b) for i, b in enumerate(bleu)}
    scores["cider_d"] = float(cider)
    return scores
