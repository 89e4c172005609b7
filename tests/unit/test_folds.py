import numpy as np
import pandas as pd
import pytest

from shared.errors import InputError
from shared.folds import (
    FoldLeakageError,
    assign_folds,
    attach_folds,
    check_no_group_leakage,
    load_or_create_folds,
)


def _frame(n_groups=40, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, n_groups)
    groups = np.repeat([f"IP_{g}" for g in range(n_groups)], sizes)
    return pd.DataFrame(
        {
            "isic_id": [f"ISIC_{i}" for i in range(len(groups))],
            "patient_id": groups,
            "target": (rng.random(len(groups)) < 0.1).astype(int),
        }
    )


KW = dict(id_col="isic_id", group_col="patient_id", target_col="target", n_splits=5)


def test_folds_never_split_a_patient():
    folds = assign_folds(_frame(), seed=1, **KW)
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1
    assert set(folds["fold"]) == set(range(5))


def test_folds_are_deterministic_for_a_seed():
    df = _frame()
    a, b = assign_folds(df, seed=3, **KW), assign_folds(df, seed=3, **KW)
    c = assign_folds(df, seed=4, **KW)
    assert a.equals(b)
    assert not a["fold"].equals(c["fold"])


def test_folds_spread_positives_over_folds():
    df = _frame(200)
    folds = attach_folds(df, assign_folds(df, seed=0, **KW), "isic_id")
    per_fold = folds.groupby("fold")["target"].sum()
    assert per_fold.min() > 0


def test_leakage_check_raises_naming_the_group():
    bad = pd.DataFrame({"isic_id": ["a", "b"], "patient_id": ["IP_1", "IP_1"], "fold": [0, 1]})
    with pytest.raises(FoldLeakageError, match="IP_1"):
        check_no_group_leakage(bad, "patient_id")


def test_fold_file_is_written_once_and_reused(tmp_path):
    df = _frame()
    path = tmp_path / "folds.csv"
    first = load_or_create_folds(df, path, seed=0, **KW)
    mtime = path.stat().st_mtime_ns
    second = load_or_create_folds(df, path, seed=99, **KW)  # seed ignored: file wins
    assert path.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second)


def test_fold_file_of_another_data_set_is_refused_naming_the_ids(tmp_path):
    path = tmp_path / "folds.csv"
    load_or_create_folds(_frame(seed=0), path, seed=0, **KW)
    other = _frame(seed=0)
    other.loc[other.index[:2], "isic_id"] = ["ISIC_new_1", "ISIC_new_2"]
    with pytest.raises(InputError, match=r"lacks 2 ids.*ISIC_new_1, ISIC_new_2"):
        load_or_create_folds(other, path, seed=0, **KW)


def test_fold_file_with_ids_the_data_lacks_is_refused(tmp_path):
    """A data set that lost rows is another data set: its folds must be re-made, not reused."""
    path = tmp_path / "folds.csv"
    df = _frame(seed=0)
    load_or_create_folds(df, path, seed=0, **KW)
    with pytest.raises(InputError, match=r"3 ids this data set lacks: ISIC_0, ISIC_1, ISIC_2"):
        load_or_create_folds(df.iloc[3:], path, seed=0, **KW)


def test_fold_file_is_checked_against_the_data_as_it_is_grouped_now(tmp_path):
    """Same ids, but two patients merged into one since the file was made: that patient now
    sits in two folds, so the file's folds would leak."""
    path = tmp_path / "folds.csv"
    df = _frame(seed=0)
    folds = load_or_create_folds(df, path, seed=0, **KW)
    fold_of = folds.groupby("patient_id")["fold"].first()
    a = fold_of[fold_of == 0].index[0]
    b = fold_of[fold_of == 1].index[0]
    regrouped = df.assign(patient_id=df["patient_id"].replace({b: a}))
    with pytest.raises(FoldLeakageError, match=rf"{a} in fold 0: .* / fold 1: ") as err:
        load_or_create_folds(regrouped, path, seed=0, **KW)
    first_id_of_b = df.loc[df["patient_id"] == b, "isic_id"].sort_values().iloc[0]
    assert first_id_of_b in str(err.value)
    assert isinstance(err.value, InputError)


def test_fold_file_listing_an_id_twice_is_refused(tmp_path):
    path = tmp_path / "folds.csv"
    df = _frame(seed=0)
    folds = load_or_create_folds(df, path, seed=0, **KW)
    pd.concat([folds, folds.head(1)]).to_csv(path, index=False)
    with pytest.raises(InputError, match="more than once: ISIC_0"):
        load_or_create_folds(df, path, seed=0, **KW)


def test_too_few_groups_for_the_folds():
    with pytest.raises(InputError, match="cannot fill"):
        assign_folds(_frame(3), seed=0, **KW)


def test_scored_folds_all_but_the_holdout_and_bad_choices_fail_naming_the_key():
    from shared.config import ConfigError
    from shared.folds import scored_folds

    assert scored_folds(5, None, None) == [0, 1, 2, 3, 4]
    assert scored_folds(5, None, 2) == [0, 1, 3, 4]
    assert scored_folds(5, [3, 1], None) == [1, 3]
    for requested, holdout, key in (
        ([7], None, "cv.folds"),  # once trained a "fold" on all the data
        ([], None, "cv.folds"),
        ([1, 1], None, "cv.folds"),
        ([-1], None, "cv.folds"),
        ([0], 0, "cv.folds"),
        (None, 5, "data.holdout_fold"),
    ):
        with pytest.raises(ConfigError, match=key):
            scored_folds(5, requested, holdout)


@pytest.mark.parametrize("n_pos", [0, 1, 4])
def test_too_few_positives_for_the_folds_fail_before_a_fold_file_is_written(tmp_path, n_pos):
    df = _frame().assign(target=0)
    df.loc[df.index[:n_pos], "target"] = 1
    path = tmp_path / "folds.csv"
    with pytest.raises(InputError, match=f"{n_pos} positive rows"):
        load_or_create_folds(df, path, seed=0, **KW)
    assert not path.exists()


def test_two_processes_creating_one_smoke_data_set_generate_it_once(tmp_path):
    """Started together, both runs get the complete data set; the generator ran once."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    out = tmp_path / "smoke"
    procs = [ctx.Process(target=_generate_after, args=(barrier, out, tmp_path)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(list(tmp_path.glob("wrote-*"))) == 1
    assert (out / "data.txt").read_text() == "x" * 100_000


def _slow_writer(out, n):
    import os
    import time

    (out.parent / f"wrote-{os.getpid()}").touch()
    with open(out / "data.txt", "w") as f:
        for _ in range(n // 1000):
            f.write("x" * 1000)
            time.sleep(0.001)


def _generate_after(barrier, out, tmp_path):
    from shared.synthetic import ensure_generated

    barrier.wait()
    got = ensure_generated(out, _slow_writer, n=100_000)
    assert (got / "data.txt").read_text() == "x" * 100_000  # never half a data set
