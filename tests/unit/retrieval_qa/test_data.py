"""Question inputs: extra training files, and options that must never be ranked."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from projects.retrieval_qa.data import LETTERS, BadQuestionError, load_splits
from projects.retrieval_qa.pipeline import QAPipeline
from projects.retrieval_qa.pyfunc import RetrievalQAModel
from shared.errors import InputError


def _write(path, ids, answer="A"):
    rows = [
        {"id": i, "prompt": f"Q{i}?", **{c: f"{c}{i}" for c in LETTERS}, "answer": answer}
        for i in ids
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path.name


def _data(tmp_path, extra):
    return SimpleNamespace(
        dir=str(tmp_path),
        train_file=_write(tmp_path / "train.csv", [f"t{i}" for i in range(20)]),
        test_file=_write(tmp_path / "test.csv", [f"s{i}" for i in range(5)]),
        extra_train=extra,
        val_fraction=0.25,
    )


def test_extra_training_files_join_training_only(tmp_path):
    plain, dropped = load_splits(_data(tmp_path, []), seed=42)
    assert dropped == 0
    _write(tmp_path / "more.csv", [f"x{i}" for i in range(7)], answer="C")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _write(outside / "most.csv", ["y0", "y1"], answer="E")
    splits, _ = load_splits(_data(tmp_path, ["more.csv", str(outside / "most.csv")]), seed=42)
    assert len(splits["train"]) == len(plain["train"]) + 9
    assert {f"x{i}" for i in range(7)} | {"y0", "y1"} <= set(splits["train"]["id"])
    pd.testing.assert_frame_equal(splits["val"], plain["val"])  # validation is unchanged
    assert splits["train"]["answer"].isin(LETTERS).all()


def test_extra_questions_seen_in_val_or_test_are_dropped(tmp_path):
    """Compared on normalised text: case, spacing and punctuation do not hide a duplicate."""
    data = _data(tmp_path, ["more.csv"])
    plain, _ = load_splits(_data(tmp_path, []), seed=42)
    val_prompt, test_prompt = plain["val"]["prompt"].iloc[0], plain["test"]["prompt"].iloc[1]
    rows = pd.read_csv(tmp_path / data.train_file).head(3).assign(id=["x0", "x1", "x2"])
    rows["prompt"] = [f"  {val_prompt.upper()} ", test_prompt.rstrip("?") + " ?!", "A new one?"]
    rows.to_csv(tmp_path / "more.csv", index=False)
    splits, dropped = load_splits(data, seed=42)
    assert dropped == 2
    assert set(splits["train"]["id"]) == set(plain["train"]["id"]) | {"x2"}


def test_extra_train_is_in_the_config_and_defaults_to_none(project_config):
    from projects.retrieval_qa.config import RetrievalQAConfig
    from shared.config import validate

    assert list(validate(project_config("retrieval_qa"), RetrievalQAConfig).data.extra_train) == []
    cfg = validate(project_config("retrieval_qa", "data.extra_train=[a.csv]"), RetrievalQAConfig)
    assert list(cfg.data.extra_train) == ["a.csv"]


def _input(**row1):
    rows = [{"id": "a", "prompt": "Q?", **{c: c.lower() for c in LETTERS}}]
    rows.append({**rows[0], "id": "b", **row1})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("bad", ["", "  ", None, np.nan])
def test_registered_model_refuses_an_empty_or_missing_option_naming_the_row(bad):
    model = RetrievalQAModel()
    model.pipeline = QAPipeline(None, None, None, 2, 64)  # refused before any retrieval
    with pytest.raises(InputError, match=r"input row 1 \(id b\): empty C"):
        model.predict(None, _input(C=bad))


def test_registered_model_refuses_a_question_without_option_e():
    model = RetrievalQAModel()
    model.pipeline = QAPipeline(None, None, None, 2, 64)
    with pytest.raises(BadQuestionError, match="five options"):
        model.predict(None, _input().drop(columns=["E"]))


def test_a_question_file_with_options_beyond_e_is_refused_naming_them(tmp_path):
    """The public format has five options; columns F, G were left unread and the question
    answered from A-E."""
    data = _data(tmp_path, ["more.csv"])
    _write(tmp_path / "more.csv", ["x0", "x1"])
    more = pd.read_csv(tmp_path / "more.csv").assign(F="f", G="g")
    more.to_csv(tmp_path / "more.csv", index=False)
    with pytest.raises(BadQuestionError, match=r"more.csv has option column\(s\) F, G beyond A-E"):
        load_splits(data, seed=42)


def test_a_header_only_question_file_says_it_has_no_rows(tmp_path):
    data = _data(tmp_path, [])
    pd.read_csv(tmp_path / data.test_file).head(0).to_csv(tmp_path / data.test_file, index=False)
    with pytest.raises(
        BadQuestionError, match=r"test.csv has a header \(id, prompt, .*\) but no rows"
    ):
        load_splits(data, seed=42)
    (tmp_path / data.test_file).write_text("")
    with pytest.raises(BadQuestionError, match=r"test.csv is empty"):
        load_splits(data, seed=42)
