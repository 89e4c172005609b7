"""Joining the image model's scores: one per lesion, at train time (OOF) and at predict time."""

import pandas as pd
import pytest

from projects.tabular_gbm.data import IMAGE_SCORE, join_image_oof, join_image_scores
from shared.errors import InputError


@pytest.fixture
def frame():
    ids = [f"ISIC_{i:03d}" for i in range(10)]
    return pd.DataFrame({"isic_id": ids, "fold": [i % 2 for i in range(10)], "age": 1.0})


def _write(df, path):
    df.to_csv(path, index=False)
    return path


def _oof(frame):
    return frame[["isic_id", "fold"]].assign(score=[i / 10 for i in range(10)])


def test_oof_scores_become_the_percentile_within_their_fold(frame, tmp_path):
    """The definition: share of the fold's OOF scores below the lesion's, ties counted half
    (itself included) -- the same percentile the image pyfunc takes against each fold model's
    stored OOF scores."""
    oof = _oof(frame)
    oof.loc[[0, 2], "score"] = 0.3  # a tie in fold 0
    out = join_image_oof(frame, _write(oof.sample(frac=1, random_state=0), tmp_path / "o.csv"))
    assert len(out) == len(frame) and out["isic_id"].tolist() == frame["isic_id"].tolist()
    for k in (0, 1):
        scores = oof.loc[oof.fold == k, "score"].to_numpy()
        expected = [((scores < s).sum() + (scores <= s).sum()) / (2 * len(scores)) for s in scores]
        assert out.loc[out.fold == k, IMAGE_SCORE].tolist() == pytest.approx(expected)
    assert out.loc[out.fold == 0, IMAGE_SCORE].tolist() == pytest.approx([0.2, 0.2, 0.5, 0.7, 0.9])


def test_a_lesion_scored_twice_fails_naming_it(frame, tmp_path):
    oof = _oof(frame)
    twice = pd.concat([oof, oof.iloc[[4]].assign(score=0.9)])
    with pytest.raises(InputError, match=r"more than once.*ISIC_004"):
        join_image_oof(frame, _write(twice, tmp_path / "oof.csv"))


def test_a_lesion_without_a_score_fails_naming_it(frame, tmp_path):
    oof = _oof(frame)
    with pytest.raises(InputError, match=r"no score for 2 of 10 lesions.*ISIC_003.*ISIC_007"):
        join_image_oof(frame, _write(oof.drop(index=[3, 7]), tmp_path / "oof.csv"))
    oof.loc[5, "score"] = None  # a row without a value is no score either
    with pytest.raises(InputError, match=r"no score for 1 of 10 lesions.*ISIC_005"):
        join_image_oof(frame, _write(oof, tmp_path / "oof.csv"))


def test_oof_scores_from_other_folds_fail(frame, tmp_path):
    oof = _oof(frame).assign(fold=lambda d: 1 - d.fold)
    with pytest.raises(InputError, match="disagree"):
        join_image_oof(frame, _write(oof, tmp_path / "oof.csv"))


def test_predict_time_scores_join_one_to_one_and_fail_by_id(frame, tmp_path):
    meta = frame.drop(columns=["fold"])
    scores = pd.DataFrame({"isic_id": meta.isic_id[::-1], IMAGE_SCORE: [i / 20 for i in range(10)]})
    out = join_image_scores(meta, _write(scores, tmp_path / "s.csv"))
    assert out["isic_id"].tolist() == meta["isic_id"].tolist()
    assert out[IMAGE_SCORE].tolist() == pytest.approx([(9 - i) / 20 for i in range(10)])
    with pytest.raises(InputError, match=r"no score for 1 of 10 lesions.*ISIC_009"):
        join_image_scores(meta, _write(scores.iloc[1:], tmp_path / "s.csv"))
    twice = pd.concat([scores, scores.head(1)])
    with pytest.raises(InputError, match=r"more than once.*ISIC_009"):
        join_image_scores(meta, _write(twice, tmp_path / "s.csv"))


def test_predict_time_feature_is_taken_as_given_never_ranked_within_the_batch(frame, tmp_path):
    meta = frame.drop(columns=["fold"])
    scores = pd.DataFrame({"isic_id": meta.isic_id, IMAGE_SCORE: [0.9, 0.1, *[0.5] * 8]})
    path = _write(scores, tmp_path / "s.csv")
    alone = join_image_scores(meta.iloc[[1]], path)
    together = join_image_scores(meta.sample(frac=1, random_state=1), path).set_index("isic_id")
    assert alone[IMAGE_SCORE].tolist() == [0.1]
    assert together.loc[meta.isic_id[1], IMAGE_SCORE] == 0.1
    with pytest.raises(InputError, match="image_score"):  # a raw-score file from before
        join_image_scores(meta, _write(scores.rename(columns={IMAGE_SCORE: "score"}), path))
