"""`shared.rows.Row`: what a public-format value means to every pyfunc's input row."""

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from projects.retrieval_qa.pyfunc import Question
from shared.rows import Row


class _R(Row):
    id: str
    x: float | None = None


def test_numbers_read_from_a_text_column_are_taken_as_text():
    # pd.read_csv reads Kaggle's `id` column (0..199) as int64
    frame = pd.DataFrame({"id": [0, 7], "prompt": ["q", "r"], **{c: ["a", "b"] for c in "ABCDE"}})
    rows = [Question(**r) for r in frame.to_dict(orient="records")]
    assert [r.id for r in rows] == ["0", "7"]


def test_nan_and_null_both_mean_missing_but_text_is_not_a_number():
    assert _R(id="a", x=math.nan).x is None and _R(id="a", x=None).x is None
    with pytest.raises(ValidationError, match="x"):
        _R(id="a", x="sixty")
