"""The ISIC 2024 generator draws a lesion only in the window that holds it: the bytes must equal
drawing on the whole grid, or the generated data set (and every smoke figure) would change."""

import numpy as np
import pytest

from shared.datasets.isic2024_synthetic import generate_metadata, render_lesion


@pytest.mark.parametrize("size", [64, 97, 128])
def test_a_lesion_drawn_in_its_window_equals_the_whole_grids_drawing(size):
    rows = generate_metadata(n_patients=12, mean_lesions=6, positive_rate=0.2, seed=size)
    # The extremes: the largest lesions (up to 0.45 of the side, past the edge once the centre
    # moves) with the most irregular border, and the smallest.
    rows.loc[rows.index[:6], "clin_size_long_diam_mm"] = 30.0
    rows.loc[rows.index[:3], "_border"] = 4.0
    rows.loc[rows.index[6:12], "clin_size_long_diam_mm"] = 0.5
    rows.loc[rows.index[9:12], "_border"] = 4.0  # the wobble's bound decides the window
    discs = []
    for seed, (_, row) in enumerate(rows.iterrows()):
        window, disc = render_lesion(row, size, np.random.default_rng(seed))
        whole, whole_disc = render_lesion(row, size, np.random.default_rng(seed), whole_grid=True)
        np.testing.assert_array_equal(window, whole)
        assert disc == whole_disc
        discs.append(disc)
    cx, cy, reach = np.array(discs).T
    assert (reach < 0.4).any(), "no window smaller than the image: nothing was tested"
    past_edge = np.minimum(np.minimum(cx, cy), 1 - np.maximum(cx, cy)) < reach
    assert (past_edge & (reach < 0.5)).any(), "no window clipped at the image's edge"
