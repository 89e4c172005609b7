"""Figures logged by the pipelines: nothing drawn outside the canvas (issue 23: the feature
importance title was cut off on the right once long feature names pushed the axes)."""

from __future__ import annotations

import pytest

from shared.plots import barh_figure


@pytest.mark.parametrize("n", [3, 25])
def test_the_feature_importance_title_and_labels_fit_the_figure(n):
    labels = [f"tbp_lv_norm_color_patient_norm_{i}" for i in range(n)]
    title = "Feature importance (mean of LightGBM gain, CatBoost shares), a long title"
    fig = barh_figure(labels, list(range(n)), title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    texts = [fig._suptitle, *fig.axes[0].get_yticklabels()]
    assert fig._suptitle is not None and "LightGBM" in fig._suptitle.get_text()
    for text in texts:
        box = text.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, text.get_text()
