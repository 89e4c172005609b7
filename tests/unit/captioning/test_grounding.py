"""The grounding check: a caption is right when it is true of what the generator drew."""

from __future__ import annotations

import numpy as np
import pytest

from projects.captioning.grounding import grounding, is_grounded, parse_caption, read_scenes
from projects.captioning.synthetic import render_scene, write_dataset

ONE = {"objects": [{"size": "small", "color": "blue", "shape": "circle", "place": "top"}]}
TWO = {"objects": [{"color": "red", "shape": "circle"}, {"color": "green", "shape": "square"}]}


@pytest.mark.parametrize(
    "caption",
    [
        "a small blue circle on the top",
        "There is a small blue circle on the top.",
        "a blue circle on the top of the image",  # size unstated: nothing false
        "one blue circle on the top side",
    ],
)
def test_a_right_caption_of_one_shape_is_grounded(caption):
    assert is_grounded(caption, ONE)


@pytest.mark.parametrize(
    "caption",
    [
        "a small red circle on the top",  # wrong colour
        "a small blue square on the top",  # wrong shape
        "a large blue circle on the top",  # wrong size
        "a small blue circle on the bottom",  # wrong place
        "a small blue circle",  # no place
        "a small blue circle on the top left",  # two places
        "a small blue circle to the left of a red square",  # two shapes drawn as one
        "a small blue on the top",  # a colour without a shape
        "",
    ],
)
def test_a_wrong_caption_of_one_shape_is_not(caption):
    assert not is_grounded(caption, ONE)


@pytest.mark.parametrize(
    "caption",
    [
        "a red circle to the left of a green square",
        "a green square to the right of a red circle",  # swapped order, inverse relation
        "there is a red circle left of a green square",
        "a red circle and a green square",
        "a green square next to a red circle",  # no relation stated: order is free
    ],
)
def test_a_right_caption_of_two_shapes_is_grounded(caption):
    assert is_grounded(caption, TWO)


@pytest.mark.parametrize(
    "caption",
    [
        "a green square to the left of a red circle",  # wrong relation
        "a red circle to the right of a green square",  # wrong relation, other order
        "a red square to the left of a green circle",  # shapes swapped
        "a blue circle to the left of a green square",  # wrong colour
        "a red circle to the left of a green square on the top",  # a place of its own
        "a small red circle to the left of a small green square",  # sizes not drawn
        "a red circle on the left",  # one shape of two
    ],
)
def test_a_wrong_caption_of_two_shapes_is_not(caption):
    assert not is_grounded(caption, TWO)


def test_parse_names_objects_in_caption_order_with_the_relation():
    claim = parse_caption("A green square to the right of a red circle.")
    assert claim.objects == ((None, "green", "square"), (None, "red", "circle"))
    assert claim.relation == "right" and claim.place is None
    assert parse_caption("a large red triangle at the left").place == "left"


def test_every_reference_caption_the_generator_writes_is_grounded():
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, captions, truth = render_scene(rng, 48)
        assert all(is_grounded(c, truth) for c in captions), (captions, truth)


def test_grounding_is_the_share_of_true_captions(tmp_path):
    write_dataset(tmp_path, n_train=4, n_val=2, n_test=2, image_size=32, seed=0)
    scenes = read_scenes(tmp_path)
    assert len(scenes) == 8 and (tmp_path / "images" / next(iter(scenes))).is_file()
    assert grounding(["a small blue circle on the top", "a red circle"], [ONE, ONE]) == 0.5
    assert read_scenes(tmp_path / "images") is None  # real data: no truth, no grounding
