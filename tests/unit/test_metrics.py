import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from shared.metrics import caption_scores, map_at_k, pauc_above_tpr, roc_auc, tokenize_caption


def _pauc_from_sklearn(y, s, min_tpr=0.8):
    """Independent reference: undo sklearn's McClish standardisation of the flipped problem."""
    max_fpr = 1 - min_tpr
    std = roc_auc_score(1 - np.asarray(y), -np.asarray(s), max_fpr=max_fpr)
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return min_area + (2 * std - 1) * (max_area - min_area)


def test_pauc_max_is_point_two():
    y = np.array([0, 0, 0, 1, 1])
    assert pauc_above_tpr(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(0.2)


def test_pauc_reversed_ranking_is_zero():
    y = np.array([0, 0, 0, 1, 1])
    assert pauc_above_tpr(y, [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.0)


def test_pauc_hand_computed_case():
    # Positives at scores 0.9 and 0.4; negatives at 0.8, 0.5, 0.3, 0.1.
    # Flipped: TPR>=0.8 needs both positives found, i.e. threshold below 0.4: then FPR(orig)
    # = 2/4 negatives above. Flipped curve: fpr' = fraction of positives (orig) below threshold.
    # Area over fpr' in [0, 0.2] where tpr' (orig negatives below) = 0.5 -> 0.2 * 0.5 = 0.1.
    y = [1, 0, 0, 1, 0, 0]
    s = [0.9, 0.8, 0.5, 0.4, 0.3, 0.1]
    assert pauc_above_tpr(y, s) == pytest.approx(0.1)


def test_pauc_agrees_with_sklearn_reference():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = (rng.random(300) < 0.1).astype(int)
        y[:2] = [0, 1]
        s = rng.normal(size=300) + 1.5 * y
        assert pauc_above_tpr(y, s) == pytest.approx(_pauc_from_sklearn(y, s), abs=1e-9)


def test_pauc_of_random_scores_is_near_chance():
    rng = np.random.default_rng(1)
    y = (rng.random(200_000) < 0.5).astype(int)
    # Chance: TPR = FPR, area of the band above 0.8 = 0.2 * 0.8 + 0.2**2 / 2 = 0.02
    assert pauc_above_tpr(y, rng.random(y.size)) == pytest.approx(0.02, abs=0.002)


def test_pauc_ties_count_as_interpolation():
    # All scores tied: the ROC is the diagonal, same as chance.
    y = [0, 1, 0, 1]
    assert pauc_above_tpr(y, [0.5] * 4) == pytest.approx(0.02)
    assert roc_auc(y, [0.5] * 4) == pytest.approx(0.5)


def test_pauc_other_tpr_floor_has_its_own_max():
    assert pauc_above_tpr([0, 1], [0.0, 1.0], min_tpr=0.5) == pytest.approx(0.5)


@pytest.mark.parametrize("fn", [pauc_above_tpr, roc_auc])
def test_one_class_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="both classes"):
        fn([0, 0, 0], [0.1, 0.2, 0.3])


def test_mismatched_lengths_and_nan_scores_fail():
    with pytest.raises(ValueError, match="3 values"):
        pauc_above_tpr([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])


def test_map_at_3_hand_cases():
    assert map_at_k(["A"], [["A", "B", "C"]]) == 1.0
    assert map_at_k(["B"], [["A", "B", "C"]]) == 0.5
    assert map_at_k(["C"], [["A", "B", "C"]]) == pytest.approx(1 / 3)
    assert map_at_k(["D"], [["A", "B", "C", "D"]]) == 0.0
    assert map_at_k(["A", "B"], [["A", "C", "D"], ["C", "D", "B"]]) == pytest.approx(
        (1 + 1 / 3) / 2
    )


def test_map_counts_a_repeated_label_once():
    assert map_at_k(["A"], [["B", "A", "A"]]) == 0.5


def test_map_rejects_mismatched_input():
    with pytest.raises(ValueError):
        map_at_k(["A"], [])
    with pytest.raises(ValueError):
        map_at_k([], [])


def test_tokenize_caption_drops_punctuation_and_lowercases():
    assert tokenize_caption("A dog, running. Fast!") == "a dog running fast"
    assert tokenize_caption("The dog's ball") == "the dog 's ball"  # PTB splits the clitic


def test_caption_scores_perfect_match_has_bleu_one():
    refs = {1: ["a red circle above a blue square"], 2: ["two green triangles on the left"]}
    cands = {1: "A red circle above a blue square.", 2: "two green triangles on the left"}
    s = caption_scores(refs, cands)
    for n in range(1, 5):
        assert s[f"bleu_{n}"] == pytest.approx(1.0, abs=1e-6)
    assert s["cider_d"] > 0


def test_caption_bleu_hand_computed():
    # Candidate "the cat sat" vs reference "the cat sat on the mat": precisions 1, 1, 1;
    # brevity penalty exp(1 - 6/3) = e^-1 for every BLEU-n.
    s = caption_scores({0: ["the cat sat on the mat"]}, {0: "the cat sat"})
    assert s["bleu_1"] == pytest.approx(np.exp(-1), abs=1e-4)
    assert s["bleu_3"] == pytest.approx(np.exp(-1), abs=1e-4)


def test_cider_prefers_the_right_caption():
    refs = {i: [f"a {c} circle", f"one {c} circle"] for i, c in enumerate(["red", "blue", "green"])}
    good = caption_scores(refs, {0: "a red circle", 1: "a blue circle", 2: "a green circle"})
    bad = caption_scores(refs, {0: "a blue circle", 1: "a green circle", 2: "a red circle"})
    assert good["cider_d"] > bad["cider_d"]


def test_caption_scores_need_matching_ids():
    """The error names the ids only one side has, so the missing captions can be found."""
    with pytest.raises(ValueError, match=r"different ids, e\.g\. \['1', '2'\]"):
        caption_scores({1: ["x"]}, {2: "x"})


def test_caption_scores_refuse_no_images_and_an_image_without_references():
    """No image, or an image with no reference caption, has no BLEU/CIDEr-D to report: both
    raise instead of scoring a corpus that is not there."""
    with pytest.raises(ValueError, match="at least one image"):
        caption_scores({}, {})
    with pytest.raises(ValueError, match="image 0 has no reference caption"):
        caption_scores({0: []}, {0: "a red circle"})


def test_reference_percentile_is_the_mid_rank_within_the_reference():
    from shared.metrics import reference_percentile

    ref = [0.1, 0.2, 0.2, 0.4]
    got = reference_percentile(ref, [0.0, 0.1, 0.2, 0.3, 0.4, 0.9])
    assert got.tolist() == pytest.approx([0.0, 0.125, 0.5, 0.75, 0.875, 1.0])
    # one value scored alone equals the same value scored among others
    assert reference_percentile(ref, [0.3])[0] == got[3]
    with pytest.raises(ValueError, match="non-empty"):
        reference_percentile([], [0.5])


@pytest.mark.parametrize(
    "reference, values",
    [([0.1, float("nan"), 0.3], [0.2]), ([0.1, 0.3], [float("nan")]), ([0.1, None], [0.2])],
    ids=["nan-in-reference", "nan-in-values", "missing-in-reference"],
)
def test_reference_percentile_refuses_a_missing_score_on_either_side(reference, values):
    """A NaN (or a null read from a file) in the reference or in the scored values raises
    instead of sorting to an end and passing as a percentile of 0 or 1."""
    from shared.metrics import reference_percentile

    with pytest.raises(ValueError, match="must not be NaN"):
        reference_percentile(reference, values)
    with pytest.raises(ValueError, match="must not be NaN"):
        reference_percentile(values, reference)
