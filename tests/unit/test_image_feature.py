"""tabular_gbm's image feature: served images get the distribution the training rows had.

Five fold models whose scores on a lesion are correlated (0.8) through the lesion's true
signal. Training rows: fold k's lesions scored by model k (the one that did not train on
them). Held-out lesions (new to every model): scored by all five, as the registered model does.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from shared.image_feature import pixel_key, serving_feature, training_feature
from shared.metrics import reference_percentile

N_MODELS, PER_FOLD, N_NEW, RHO = 5, 4000, 20000, 0.8


def _scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N_MODELS, n) logits: a shared signal plus each model's own noise (correlation RHO)."""
    signal = rng.normal(size=n)
    noise = rng.normal(size=(N_MODELS, n))
    return np.sqrt(RHO) * signal + np.sqrt(1 - RHO) * noise


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    oof = np.concatenate([_scores(rng, PER_FOLD)[k] for k in range(N_MODELS)])
    folds = np.repeat(np.arange(N_MODELS), PER_FOLD)
    train = training_feature(oof, folds)
    references = [oof[folds == k] for k in range(N_MODELS)]
    new = _scores(rng, N_NEW)
    keys = rng.integers(0, 2**63, N_NEW)  # what pixel_key gives: any 64-bit value
    served = serving_feature(new, references, keys)
    mean_form = np.mean([reference_percentile(r, s) for r, s in zip(references, new)], axis=0)
    return train, served, mean_form


def test_served_and_training_features_have_one_distribution(features):
    train, served, _ = features
    assert ks_2samp(train, served).statistic < 0.02  # n = 20000 each: 1% critical value 0.016
    assert abs(np.mean(served > 0.99) - np.mean(train > 0.99)) < 0.003


def test_the_mean_of_the_models_percentiles_would_not(features):
    """What the feature was before: the same scale, a compressed tail (the KS test fails it)."""
    train, _, mean_form = features
    assert ks_2samp(train, mean_form).statistic > 0.03  # measured 0.043 (served: 0.009)
    assert np.mean(mean_form > 0.99) < 0.6 * np.mean(train > 0.99)


def test_the_model_is_chosen_by_the_image_alone():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    assert pixel_key(a) == pixel_key(a.copy()) != pixel_key(b)
    assert pixel_key(a) != pixel_key(a.reshape(4, 16, 3))  # the shape counts too
    refs = [np.linspace(0, 1, 11), np.linspace(0, 1, 11) + 5]
    scores = np.array([[0.5, 0.5], [5.5, 5.5]])
    # key 0 -> model 0, key 1 -> model 1: each placed within its own model's reference
    np.testing.assert_allclose(serving_feature(scores, refs, [0, 1]), [0.5, 0.5])
    np.testing.assert_allclose(serving_feature(scores, refs, [1, 0]), [0.5, 0.5])
    with pytest.raises(ValueError, match="references"):
        serving_feature(scores, refs[:1], [0, 1])


def test_a_training_lesion_is_ranked_among_its_own_folds_scores_only():
    """Fold models score on different scales: ranking a lesion against another fold's scores
    (a `folds != k` slip) would put all of fold 2 at the top. Three folds, hand-checked."""
    from shared.image_feature import training_feature

    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    folds = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    feature = training_feature(scores, folds)
    for k in range(3):
        np.testing.assert_allclose(feature[folds == k], feature[folds == 0])  # same ranks
    assert feature[0] < feature[1] < feature[2]


def test_each_served_image_is_scored_by_the_model_its_key_names():
    """Model m's score, placed against model m's own OOF scores, for key % n_models == m."""
    from shared.image_feature import serving_feature

    refs = [np.linspace(0, 1, 101), np.linspace(0, 10, 101), np.linspace(0, 100, 101)]
    scores = np.array([[0.5, 0.5, 0.5], [5.0, 5.0, 5.0], [90.0, 90.0, 90.0]])
    keys = [3, 4, 2**63 + 2]  # -> models 0, 1 and (2**63 + 2) % 3 == 1
    got = serving_feature(scores, refs, keys)
    np.testing.assert_allclose(got, [0.5, 0.5, 0.5], atol=0.01)
    assert (2**63 + 2) % 3 == 1
    got = serving_feature(scores, refs, [2, 2, 2])  # model 2: 90 of 100
    np.testing.assert_allclose(got, [0.9, 0.9, 0.9], atol=0.01)


def test_keys_above_two_to_the_53_pick_the_model_an_exact_modulo_names():
    """A key taken through float (an int64 % uint64 promotion) loses its last bits and picks
    another fold model; keys are 64-bit, never wider."""
    from shared.image_feature import pixel_key, serving_feature

    key = 2**60 + 1  # exact: key % 3 == 2; through float64: 2**60 % 3 == 1
    refs = [np.linspace(0, 1, 101), np.linspace(0, 10, 101), np.linspace(0, 100, 101)]
    scores = np.array([[0.2], [2.0], [90.0]])
    np.testing.assert_allclose(serving_feature(scores, refs, [key]), [0.9], atol=0.01)
    image = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    assert 0 <= pixel_key(image) < 2**64
