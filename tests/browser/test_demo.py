"""`make demo` in a real browser: the four tiny pipelines register their models in a temporary
store, the app starts on a free loopback port, headless Chromium uses each tab once and checks
what it shows; a second app on an empty store shows each project's `make` target instead.

Screenshots go to the test's temporary folder, or to $DEMO_SCREENSHOTS when set; the README's
pictures come from `make demo-screenshots` (the same steps on the smoke champions).
"""

from __future__ import annotations

import math
import os
import re
import signal
from pathlib import Path

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import demo_driver as dd
from tools.registry import ML_PROJECTS

MAKE_TARGETS = {p: f"make {p.replace('_', '-')}-smoke" for p in ML_PROJECTS}


def _serve(tmp_path: Path, name: str, env: dict[str, str] | None = None):
    port, log = dd.free_port(), tmp_path / f"{name}.log"
    proc = dd.start_app(port, log, env)
    proc.log = log
    url = f"http://127.0.0.1:{port}/"
    try:
        dd.wait_ready(url, proc, log)
    except BaseException:
        _stop(proc)
        raise
    return url, proc


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _temp_folder(proc) -> Path:
    """The app's upload temp folder, as its log names it."""
    found = re.search(r"(/\S*/demo-[A-Za-z0-9_]{8})\b", proc.log.read_text())
    assert found, proc.log.read_text()[-2000:]
    return Path(found.group(1))


def _no_reprs(chrome) -> None:
    body = chrome.find_element(By.TAG_NAME, "body").text
    assert "object at 0x" not in body and "Traceback" not in body, body[-2000:]


@pytest.fixture(scope="module")
def demo_url(tiny, tmp_path_factory):
    """Every project's tiny pipeline registered in the temporary store, then the app on it."""
    for project in ML_PROJECTS:
        module = __import__(f"projects.{project}.train", fromlist=["run"])
        # debug=tiny makes image_classifier partial (never registered): score every fold
        extra = ("cv.folds=null", "partial=false") if project == "image_classifier" else ()
        module.run(tiny(project, *extra))
    url, proc = _serve(tmp_path_factory.mktemp("demo"), "demo")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("DEMO_SCREENSHOTS")
    return Path(where) if where else tmp_path_factory.mktemp("screenshots")


def _load(chrome, url: str, project: str) -> None:
    chrome.get(url)
    dd.open_tab(chrome, project)
    model = dd.text_of(chrome, f"{project}-model")
    assert "@champion" in model and "-smoke" in model and "run" in model, model


def test_image_tab_scores_an_example_with_grad_cam(chrome, demo_url, shots, tmp_path):
    _load(chrome, demo_url, "image_classifier")
    assert "image_classifier-isic2024-smoke" in dd.text_of(chrome, "image_classifier-model")
    text = dd.use_image_tab(chrome)
    assert 0.0 <= float(re.search(r"Malignancy score: ([0-9.]+)", text).group(1)) <= 1.0
    cam = chrome.find_element(By.CSS_SELECTOR, "#image_classifier-cam img")
    assert cam.get_attribute("src")
    dd.screenshot(chrome, shots, "image_classifier")
    # a text file renamed .jpg is refused with a message, not a traceback or an object repr
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    dd.upload(chrome, "image_classifier-upload", fake)
    dd.wait_text(chrome, "image_classifier-upload", "notes", timeout=120)  # name in 2 spans
    dd.click(chrome, "image_classifier-run")
    status = dd.wait_text(chrome, "image_classifier-status", "'notes.jpg' is not an image we")
    assert "not in an image format" in status
    _no_reprs(chrome)


def test_an_oversized_upload_is_named_and_nothing_is_scored(chrome, demo_url, tmp_path):
    _load(chrome, demo_url, "image_classifier")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + bytes(11 * 2**20))  # 11 MiB, over the 10 MiB limit
    dd.upload(chrome, "image_classifier-upload", big)
    status = dd.wait_text(chrome, "image_classifier-status", "'big.jpg' is 11 MiB")
    assert "over the 10 MiB upload limit" in status and "Mb" not in status, status
    dd.click(chrome, "image_classifier-run")  # must not fall back to the example
    dd.wait_text(chrome, "image_classifier-status", "Nothing was scored")
    assert "Malignancy score" not in dd.text_of(chrome, "image_classifier-score")
    assert not chrome.find_elements(By.CSS_SELECTOR, "#image_classifier-cam img")
    # a valid upload lifts the refusal: it is scored, and said to be the upload
    Image.new("RGB", (64, 48), (180, 120, 100)).save(tmp_path / "valid-lesion.png")
    dd.upload(chrome, "image_classifier-upload", tmp_path / "valid-lesion.png")
    dd.wait_text(chrome, "image_classifier-upload", "valid-lesion", timeout=120)  # 2 spans
    dd.wait_until(chrome, lambda d: "Refused" not in dd.text_of(d, "image_classifier-status"))
    dd.click(chrome, "image_classifier-run")
    score = dd.wait_text(chrome, "image_classifier-score", "Malignancy score:")
    assert "(upload 'valid-lesion.png')" in score, score
    _no_reprs(chrome)


def test_tabular_tab_predicts_with_base_value_and_contributions(chrome, demo_url, shots):
    _load(chrome, demo_url, "tabular_gbm")
    button = chrome.find_element(By.ID, "tabular_gbm-run")  # visible without scrolling
    assert chrome.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.bottom <= window.innerHeight;",
        button,
    )
    size = chrome.find_element(By.ID, "tabular_gbm-field-clin_size_long_diam_mm")
    assert "Lesion diameter, long axis (mm)" in size.text
    shown = size.find_element(By.TAG_NAME, "input").get_attribute("value")
    assert len(shown.partition(".")[2]) <= 2, shown  # rounded, not 13.241027675470269
    text = dd.use_tabular_tab(chrome)
    assert "lightgbm" in text and "catboost" in text
    steps = dd.waterfall_values(chrome)
    assert set(steps) == {"lightgbm", "catboost"}
    for model, rows in steps.items():
        terms = [t for t, _ in rows]
        assert terms[0].startswith("base value") and terms[-1].startswith("log-odds"), terms
        values = [v for _, v in rows]
        assert abs(sum(values[:-1]) - values[-1]) <= 1e-6, (model, rows)
        # debug=tiny has one bag: the sigmoid of the log-odds is the probability shown
        prob = float(re.search(rf"{model}: ([0-9.]+)", text).group(1))
        assert abs(1 / (1 + math.exp(-values[-1])) - prob) <= 1e-4, (model, values[-1], text)
    assert chrome.find_element(By.CSS_SELECTOR, "#tabular_gbm-waterfall-plot img").get_attribute(
        "src"
    )
    _no_reprs(chrome)
    dd.screenshot(chrome, shots, "tabular_gbm")


def test_retrieval_tab_ranks_options_and_highlights_passages(chrome, demo_url, shots):
    _load(chrome, demo_url, "retrieval_qa")
    ranked = dd.use_retrieval_tab(chrome)
    assert all(letter in ranked.split() for letter in "ABCDE")
    marks = chrome.find_elements(By.CSS_SELECTOR, "#retrieval_qa-passages mark")
    question = chrome.find_element(By.CSS_SELECTOR, "#retrieval_qa-prompt textarea")
    words = question.get_attribute("value").lower()
    assert marks and all(m.text.lower() in words for m in marks)
    assert "Passages the reader saw" in chrome.find_element(By.TAG_NAME, "body").text
    dd.screenshot(chrome, shots, "retrieval_qa")
    question.send_keys(Keys.CONTROL, "a")
    question.send_keys(Keys.DELETE)
    dd.click(chrome, "retrieval_qa-run")
    dd.wait_text(chrome, "retrieval_qa-status", "the question is empty: type a question")
    _no_reprs(chrome)


def test_captioning_tab_shows_the_image_then_beams_as_coloured_tokens(chrome, demo_url, shots):
    _load(chrome, demo_url, "captioning")
    image = chrome.find_element(By.CSS_SELECTOR, "#captioning-image img")  # before captioning
    assert image.get_attribute("src")
    dd.use_captioning_tab(chrome)
    beams = dd.wait_text(chrome, "captioning-beams", "score")
    assert "caption" in beams
    rows = chrome.find_elements(By.CSS_SELECTOR, "#captioning-tokens .beam")
    assert [r.get_attribute("data-beam") for r in rows] == [str(i) for i in range(1, len(rows) + 1)]
    for row in rows:
        tokens = row.find_elements(By.CSS_SELECTOR, ".tok")
        assert all(0 <= float(t.get_attribute("data-p")) <= 1 for t in tokens)
        # a beam that ended closes with EOS; one cut off at decoding.max_len (20) has 20 tokens
        assert tokens[-1].text.startswith("</s>") or len(tokens) == 20, row.text
    _no_reprs(chrome)
    dd.screenshot(chrome, shots, "captioning")


def test_projects_without_a_model_show_their_make_target(chrome, tmp_path):
    empty = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
    url, proc = _serve(tmp_path, "empty", empty)
    try:
        assert _temp_folder(proc).is_dir()
        chrome.get(url)
        for project, target in MAKE_TARGETS.items():
            dd.open_tab(chrome, project)
            text = dd.text_of(chrome, f"{project}-model")
            assert "No registered model" in text and target in text, text
    finally:
        _stop(proc)
    assert proc.returncode is not None and not _temp_folder(proc).exists()  # SIGTERM cleans up
