"""The image feature tabular_gbm stacks on (`image_score`): one definition for training rows
and served images, so the GBM is served the distribution it learnt its splits on.

Training rows: a lesion's out-of-fold score from the one fold model that did not train on it,
as a percentile of that model's own out-of-fold scores. Every lesion of fold k is new to
model k, so within each fold the feature is (close to) uniform on [0, 1].

A served image is new to every fold model. Averaging their five percentiles would pull the
tails in (at an inter-model correlation of 0.8 the share above 0.99 falls from ~1% to ~0.4%),
and the tail is where the GBM's splits for rare positives sit. So a served image, too, is
scored by one fold model, picked by a hash of its pixels (the same image always gets the same
model, alone or in any batch) and placed against that model's own out-of-fold scores: the same
uniform distribution as training, by construction (tests/unit/test_image_feature.py compares
the two with a Kolmogorov-Smirnov bound). The price is the ensemble's averaging for this one
feature; the served `score` stays the mean over all fold models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from shared.metrics import reference_percentile


def training_feature(scores: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each lesion's OOF score as a percentile of its own fold's OOF scores."""
    out = np.empty(len(scores), dtype=float)
    for k in np.unique(folds):
        rows = folds == k
        out[rows] = reference_percentile(scores[rows], scores[rows])
    return out


def pixel_key(pixels: np.ndarray) -> int:
    """A stable 64-bit key of an image's decoded pixels (shape included)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return int.from_bytes(h.digest(), "little")


def serving_feature(
    per_model_scores: np.ndarray, references: Sequence[np.ndarray], keys: Sequence[int]
) -> np.ndarray:
    """(n_models, n_images) scores -> per image, the score of the fold model `key % n_models`
    as a percentile of that model's OOF scores (`references[m]`)."""
    n_models = len(references)
    if per_model_scores.shape[0] != n_models:
        raise ValueError(f"{per_model_scores.shape[0]} models' scores, {n_models} references")
    chosen = np.asarray(keys, dtype=np.uint64) % np.uint64(n_models)
    out = np.empty(per_model_scores.shape[1], dtype=float)
    for m in range(n_models):
        rows = chosen == m
        if rows.any():
            out[rows] = reference_percentile(references[m], per_model_scores[m, rows])
    return out
