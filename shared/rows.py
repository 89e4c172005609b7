"""The base of every registered model's input row (the pydantic type hint of `predict`), and
the one check a request's rows go through before a model sees them.

One place decides what a public-format value means to every pyfunc: NaN (a DataFrame's missing
value) and null (JSON's) both mean missing, and a text field read as a number by pandas (the
Kaggle `id` column 0..199, a numeric-looking `patient_id`) is taken as its text.
"""

from __future__ import annotations

import difflib
import math
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from shared.errors import InputError


class Row(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)
    # Columns of the public format that the model does not read: accepted, then dropped.
    IGNORED: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _nan_is_missing(cls, v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v


class RowError(InputError, ValueError):
    """A request's rows do not fit the model's row: one line naming the row and the field."""


def row_type(python_model: Any) -> type[Row]:
    """The pydantic row of a pyfunc's `predict(context, model_input: list[RowType])`."""
    hints = typing.get_type_hints(type(python_model).predict)
    (row,) = typing.get_args(hints["model_input"])
    return row


def check_records(records: Any, row: type[Row]) -> list[dict[str, Any]]:
    """The rows as `row` reads them, or a RowError naming the first problem in one line: not a
    list of objects, no rows, a missing or unexpected field (a renamed one comes with the
    likely original), a value of the wrong type. Ignored public-format columns are dropped."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise RowError("expected a JSON list of rows, each an object {field: value}")
    if not records:
        raise RowError(f"no rows: send at least one {row.__name__} object")
    fields = row.model_fields
    required = [name for name, f in fields.items() if f.is_required()]
    out = []
    for i, record in enumerate(records):
        unexpected = [k for k in record if k not in fields and k not in row.IGNORED]
        missing = [k for k in required if k not in record]
        problems = []
        for name in unexpected:
            near = _likely_original(name, [f for f in fields if f not in record])
            hint = f" (did you mean '{near}'?)" if near else ""
            problems.append(f"unexpected field '{name}'{hint}")
        problems += [f"missing field '{name}'" for name in missing]
        if problems:
            raise RowError(f"row {i}: " + "; ".join(problems))
        kept = {k: v for k, v in record.items() if k in fields}
        try:
            row.model_validate(kept)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RowError(f"row {i}, field '{where}': {err['msg']}") from None
        out.append(kept)
    return out


def _likely_original(name: str, candidates: list[str]) -> str | None:
    """The field a renamed one most likely was: a close spelling, or one containing it."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    low = name.lower()
    containing = [c for c in candidates if low in c.lower() or c.lower() in low]
    return min(containing, key=len) if containing else None
