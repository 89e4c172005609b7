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


class _Patient(Row):
    IGNORED = ("copyright_license",)
    isic_id: str
    patient_id: str
    age_approx: float | None = None


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"isic_id": "a", "age_approx": 1}], "row 0: missing field 'patient_id'"),
        (
            [{"isic_id": "a", "patient_id": "p"}, {"isic_id": "b", "patient_id": "p", "age": 3}],
            "row 1: unexpected field 'age' (did you mean 'age_approx'?)",
        ),
        (
            [{"isic_id": "a", "patient": "p"}],
            "row 0: unexpected field 'patient' (did you mean 'patient_id'?); "
            "missing field 'patient_id'",
        ),
        ([{"isic_id": "a", "patient_id": "p", "colour": 1}], "row 0: unexpected field 'colour'"),
        (
            [{"isic_id": "a", "patient_id": "p", "age_approx": "sixty"}],
            "row 0, field 'age_approx': Input should be a valid number",
        ),
        ([], "no rows: send at least one _Patient object"),
        ({"isic_id": "a"}, "expected a JSON list of rows"),
        (["a"], "expected a JSON list of rows"),
    ],
)
def test_check_records_names_the_row_and_field_in_one_line(records, message):
    from shared.rows import RowError, check_records

    with pytest.raises(RowError) as info:
        check_records(records, _Patient)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_check_records_drops_ignored_columns_and_keeps_nulls():
    from shared.rows import check_records

    rows = [{"isic_id": "a", "patient_id": "p", "age_approx": None, "copyright_license": "CC"}]
    assert check_records(rows, _Patient) == [
        {"isic_id": "a", "patient_id": "p", "age_approx": None}
    ]


def test_request_shapes_give_the_same_records():
    from shared.rows import RowError
    from tools.serve import records_of

    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    split = {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}
    assert records_of({"inputs": rows}) == rows
    assert records_of({"dataframe_records": rows}) == rows
    assert records_of({"dataframe_split": split}) == rows
    for body in ({"rows": rows}, {"inputs": rows, "dataframe_records": rows}, [rows]):
        with pytest.raises(RowError, match="one of inputs, dataframe_split, dataframe_records"):
            records_of(body)
    with pytest.raises(RowError, match="every data row must list 2 values"):
        records_of({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}})
