"""The tabs' own logic without a browser: which image is scored (never the example after a
refused upload), refusals of empty questions, one-line messages, the beams' token rows and
the metadata form's rounding and labels."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from shared.errors import InputError
from tools.demo import explain, tabs
from tools.demo.config import load
from tools.demo.uploads import UploadError

CFG = load()
EXAMPLES = {"ISIC_1: benign": Image.new("RGB", (8, 8))}


def test_a_refused_upload_blocks_scoring_instead_of_falling_back_to_the_example():
    refusal = "'big.jpg' is 30 MiB (31,457,280 bytes), over the 10 MiB upload limit"
    with pytest.raises(UploadError, match=r"'big.jpg' is 30 MiB.*Nothing was scored"):
        tabs.image_source(None, refusal, "ISIC_1: benign", EXAMPLES, CFG)
    img, what = tabs.image_source(None, "", "ISIC_1: benign", EXAMPLES, CFG)
    assert img is EXAMPLES["ISIC_1: benign"] and what == "ISIC_1: benign"


def test_an_uploaded_image_is_named_as_what_was_scored(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "mine.png")
    img, what = tabs.image_source(str(tmp_path / "mine.png"), "", "ISIC_1: benign", EXAMPLES, CFG)
    assert img.size == (20, 10) and what == "upload 'mine.png'"


def test_an_empty_question_or_option_is_refused_by_name():
    options = ["a", "b", "c", "d", "e"]
    with pytest.raises(InputError, match="the question is empty"):
        tabs.check_question("  ", options)
    with pytest.raises(InputError, match="option B, E is empty"):
        tabs.check_question("Why?", ["a", "", "c", "d", " "])
    tabs.check_question("Why?", options)


def test_messages_are_one_line_without_object_reprs():
    shown = tabs.message(ValueError("cannot identify <_io.BytesIO object at 0x7f3a2c>\nTraceback"))
    assert shown == "**Failed:** ValueError: cannot identify"
    assert tabs.message(InputError("no image")) == "**Refused:** no image"


def test_token_rows_are_one_coloured_row_per_beam():
    tokens = pd.DataFrame(
        {
            "beam": [1, 1, 1, 2, 2],
            "position": [0, 1, 2, 0, 1],
            "token": ["a", "<dog>", "</s>", "a", "cat"],
            "probability": [0.9, 0.123456789, 0.5, 0.8, 0.05],
        }
    )
    page = explain.token_rows_html(tokens)
    assert page.count("class='beam'") == 2 and page.count("class='tok'") == 5
    assert "&lt;dog&gt;" in page and "data-p='0.123456789'" in page
    assert "hsl(108," in page and "hsl(6," in page  # green sure, red unsure


def test_form_numbers_are_rounded_and_labelled():
    from tools.demo.tabular import _field

    example = pd.DataFrame({"size_mm": [13.241027675470269], "age": [45.0], "site": ["leg"]})
    size = _field("size_mm", "Diameter (mm)", example, {})
    assert size.value == 13.24 and size.label == "Diameter (mm)" and size.precision == 2
    assert _field("age", "Age (years)", example, {}).value == 45
    site = _field("site", "Body site", example, {"site": ["arm", "leg"]})
    assert site.value == "leg" and site.label == "Body site"
    assert all(label != f for f, label in CFG.tabular.form_fields.items())  # no raw names
