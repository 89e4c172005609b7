"""`make demo` in a real browser: the four tiny pipelines register their models in a temporary
store, the app starts on a free loopback port, headless Chromium uses each tab once and checks
what it shows; a second app on an empty store shows each project's `make` target instead.

Screenshots go to the test's temporary folder, or to $DEMO_SCREENSHOTS when set; the README's
pictures come from `make demo-screenshots` (the same steps on the smoke champions).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.browser import demo_driver as dd
from tools.registry import ML_PROJECTS

MAKE_TARGETS = {p: f"make {p.replace('_', '-')}-smoke" for p in ML_PROJECTS}


def _serve(tmp_path: Path, name: str, env: dict[str, str] | None = None):
    port, log = dd.free_port(), tmp_path / f"{name}.log"
    proc = dd.start_app(port, log, env)
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
        proc.wait(timeout=30)


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
    assert 0.0 <= float(text.split(":")[1]) <= 1.0
    cam = chrome.find_element(By.CSS_SELECTOR, "#image_classifier-cam img")
    assert cam.get_attribute("src")
    dd.screenshot(chrome, shots, "image_classifier")
    # a non-image upload is refused with a message, not a traceback
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    dd.upload(chrome, "image_classifier-upload", fake)
    dd.wait_text(chrome, "image_classifier-upload", "notes", timeout=60)  # name in 2 spans
    dd.click(chrome, "image_classifier-run")
    dd.wait_text(chrome, "image_classifier-status", "'notes.png' is not an image we can read")


def test_tabular_tab_predicts_with_contributions(chrome, demo_url, shots):
    _load(chrome, demo_url, "tabular_gbm")
    text = dd.use_tabular_tab(chrome)
    assert "lightgbm" in text and "catboost" in text
    table = dd.wait_text(chrome, "tabular_gbm-contrib", "feature")
    assert "lightgbm" in table and "catboost" in table
    dd.screenshot(chrome, shots, "tabular_gbm")


def test_retrieval_tab_ranks_options_and_highlights_passages(chrome, demo_url, shots):
    _load(chrome, demo_url, "retrieval_qa")
    ranked = dd.use_retrieval_tab(chrome)
    assert all(letter in ranked.split() for letter in "ABCDE")
    marks = chrome.find_elements(By.CSS_SELECTOR, "#retrieval_qa-passages mark")
    question = chrome.find_element(By.CSS_SELECTOR, "#retrieval_qa-prompt textarea")
    words = question.get_attribute("value").lower()
    assert marks and all(m.text.lower() in words for m in marks)
    dd.screenshot(chrome, shots, "retrieval_qa")


def test_captioning_tab_shows_beams_and_token_probabilities(chrome, demo_url, shots):
    _load(chrome, demo_url, "captioning")
    dd.use_captioning_tab(chrome)
    beams = dd.wait_text(chrome, "captioning-beams", "score")
    assert "caption" in beams
    tokens = dd.wait_text(chrome, "captioning-tokens", "probability")
    # A beam that ended shows its closing EOS with its probability; one cut off at the smoke
    # config's decoding.max_len (20) shows its 20 tokens, positions 0-19, and no EOS.
    rows = tokens.split("\n")
    assert "position" in rows and "token" in rows
    assert "</s>" in rows or "19" in rows, tokens[-500:]
    dd.screenshot(chrome, shots, "captioning")


def test_projects_without_a_model_show_their_make_target(chrome, tmp_path):
    empty = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
    url, proc = _serve(tmp_path, "empty", empty)
    try:
        chrome.get(url)
        for project, target in MAKE_TARGETS.items():
            dd.open_tab(chrome, project)
            text = dd.text_of(chrome, f"{project}-model")
            assert "No registered model" in text and target in text, text
    finally:
        _stop(proc)
