"""The base of every registered model's input row (the pydantic type hint of `predict`).

One place decides what a public-format value means to every pyfunc: NaN (a DataFrame's missing
value) and null (JSON's) both mean missing, and a text field read as a number by pandas (the
Kaggle `id` column 0..199, a numeric-looking `patient_id`) is taken as its text.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class Row(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    @field_validator("*", mode="before")
    @classmethod
    def _nan_is_missing(cls, v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v
