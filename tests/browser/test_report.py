"""`make report` in a real browser: the tiny pipelines of every project train into a temporary
store, `python -m tools.portfolio` writes the page, and headless Chromium opens it from disk:
every section renders with its data label and every embedded image decodes; a smoke champion
is shown beside its own baselines, never beside a public reference; each heading is the
champion's logged config; no Python object repr leaks onto the page."""

from __future__ import annotations

import pytest

from shared.tracking import find_champion, get_mlflow
from tools import portfolio
from tools.portfolio_card import fill

# image_classifier's debug=tiny is partial (two folds, never registered): score every fold
IMAGE_ALL_FOLDS = ("cv.folds=null", "partial=false")
PLOTS = {  # section -> the plots its tiny run must show
    "tabular_gbm": ["roc", "artifact"],
    "tabular_gbm_stacked": ["roc", "artifact"],
    "image_classifier": ["roc", "curves"],
    "retrieval_qa": ["recall"],  # one epoch in debug=tiny: no learning curve
    "captioning": ["curves", "caption-img"],
}


@pytest.fixture(scope="module")
def report_file(tiny, tmp_path_factory):
    from projects.captioning.train import run as captioning
    from projects.image_classifier.train import run as image_classifier
    from projects.retrieval_qa.train import run as retrieval_qa
    from projects.tabular_gbm.train import run as tabular_gbm

    image_cfg = tiny("image_classifier", *IMAGE_ALL_FOLDS)
    image_classifier(image_cfg)
    # the GBMs read the same generated lesions (other settings would regenerate the folder)
    same_data = [f"data.synthetic.{k}={v}" for k, v in image_cfg.data.synthetic.items()]
    tabular_gbm(tiny("tabular_gbm", *same_data))
    stacked = ["tracking.run_name=smoke-stacked", f"data.image_oof={image_cfg.oof_file}"]
    tabular_gbm(tiny("tabular_gbm", *same_data, *stacked))
    retrieval_qa(tiny("retrieval_qa"))
    captioning(tiny("captioning"))
    out = tmp_path_factory.mktemp("report") / "portfolio.html"
    portfolio.main(["--output", str(out)])
    return out


@pytest.mark.slow
@pytest.mark.browser
def test_every_section_renders_labelled_with_its_images_loaded(report_file, chrome):
    chrome.get(report_file.as_uri())
    assert chrome.title == portfolio.load_config().title
    for section in portfolio.load_config().sections:
        el = chrome.find_element("id", section.key)
        assert el.is_displayed() and section.title in el.text
        assert el.get_attribute("data-status") == "ok", el.text[:300]
        label = el.find_element("css selector", "h2 .badge")
        assert label.get_attribute("data-label") == "smoke" and label.text == "SMOKE DATA"
        assert "git SHA" in el.text and "data fingerprint" in el.text
        # smoke data: the run's own baselines, and no published number beside ours
        assert not el.find_elements("css selector", "table.references"), section.key
        if section.baselines:
            assert el.find_elements("css selector", "table.baselines tr"), section.key
        heading = el.find_element("css selector", "h2 .model-line").text
        assert heading == _champion_heading(section), section.key
        assert "?" not in heading, heading  # every key the heading names was logged
        for h3 in el.find_elements("css selector", "h3"):
            assert not h3.text.endswith(".png"), h3.text
        for plot in PLOTS[section.key]:
            assert el.find_elements("css selector", f"img.{plot}"), f"{section.key}: no {plot}"
    broken = chrome.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);"
    )
    n_images = chrome.execute_script("return document.images.length;")
    assert n_images >= sum(map(len, PLOTS.values())) and broken == []
    folds = chrome.find_element("css selector", "#image_classifier table.folds")
    assert "fold_0" in folds.text and "mean" in folds.text
    assert "object at 0x" not in chrome.page_source


def _champion_heading(section) -> str:
    """The heading the section's champion run's logged params and tags give."""
    client = get_mlflow().MlflowClient()
    name, version = find_champion(client, portfolio.section_models(section))
    run = client.get_run(version.run_id)
    return fill(section.heading, run.data.params, run.data.tags)
