"""Grad-CAM: where the lesion model looks, how much of its map lies on the lesion, and what
the demo shows of it (the image beside its heat map, the examples it opens on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from projects.image_classifier.gradcam import (
    disc_mask,
    focus_summary,
    grad_cam,
    lesion_focus,
    mass_inside,
    overlay,
)


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.25)
            self.conv.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(self.conv(x), 4)  # (B, 4, H/4, W/4)


class _Toy(nn.Module):
    """backbone -> pool -> head, shaped like LesionClassifier: a brighter region, a higher logit."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone, self.pool = _Backbone(), nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 1)
        with torch.no_grad():
            self.head.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.backbone.forward_features(x)).flatten(1)).squeeze(1)


def test_grad_cam_has_the_input_size_and_peaks_where_the_evidence_is():
    x = torch.zeros(2, 3, 32, 48)
    x[0, :, :8, :8] = 1.0  # image 0: evidence top-left
    x[1, :, 24:, 40:] = 1.0  # image 1: bottom-right
    cam = grad_cam([_Toy(), _Toy()], x)
    assert cam.shape == (2, 32, 48)
    assert cam.min() >= 0 and cam.max() <= 1
    assert np.unravel_index(cam[0].argmax(), cam[0].shape) < (8, 8)
    r, c = np.unravel_index(cam[1].argmax(), cam[1].shape)
    assert r >= 24 and c >= 40


def test_grad_cam_runs_on_the_lesion_classifier():
    from projects.image_classifier.model import LesionClassifier

    model = LesionClassifier(
        backbone="test_efficientnet", pretrained=False, gem_p=3.0, gem_eps=1e-6, dropout=0.0
    )
    cam = grad_cam([model], torch.randn(1, 3, 64, 64))
    assert cam.shape == (1, 64, 64) and np.isfinite(cam).all()
    assert not any(p.grad is not None for p in model.parameters())  # weights untouched
    heat = overlay(Image.new("RGB", (64, 64)), cam[0], 0.5, "jet")
    assert heat.size == (64, 64)


def test_disc_mask_covers_the_disc_and_mass_inside_is_its_share():
    mask = disc_mask((40, 40), (0.25, 0.5, 0.2))
    assert mask[20, 10] and not mask[20, 30] and not mask[2, 10]
    assert abs(mask.mean() - np.pi * 0.2**2) < 0.01
    cam = np.zeros((40, 40))
    cam[mask] = 1.0
    assert mass_inside(cam, mask) == 1.0
    assert mass_inside(np.ones((40, 40)), mask) == mask.mean()
    assert np.isnan(mass_inside(np.zeros((40, 40)), mask))


def test_lesion_focus_is_high_when_the_evidence_is_on_the_lesion_and_low_when_not():
    x = torch.zeros(2, 3, 32, 32)
    x[:, :, 4:12, 4:12] = 1.0  # the evidence sits top-left in both images
    on = np.array([[0.25, 0.25, 0.2], [0.25, 0.25, 0.2]])  # the lesion disc is there
    off = np.array([[0.75, 0.75, 0.2], [0.75, 0.75, 0.2]])  # or in the other corner
    focus_on = focus_summary(*lesion_focus([_Toy()], x, on))
    focus_off = focus_summary(*lesion_focus([_Toy()], x, off))
    assert focus_on["cam_lesion_area"] == focus_off["cam_lesion_area"] < 0.15
    assert focus_on["cam_lesion_mass"] > 0.8 > 0.1 > focus_off["cam_lesion_mass"]
    assert focus_on["cam_zero_maps"] == 0.0


def test_all_zero_maps_are_counted_not_averaged_as_nan():
    summary = focus_summary(np.array([np.nan, 0.5]), np.array([0.2, 0.4]))
    assert summary == pytest.approx(
        {"cam_lesion_mass": 0.5, "cam_lesion_area": 0.3, "cam_zero_maps": 0.5}
    )
    assert "cam_lesion_mass" not in focus_summary(np.array([np.nan]), np.array([0.2]))


def test_the_demo_examples_are_the_top_malignant_lesions_and_one_benign():
    import pandas as pd

    from projects.image_classifier.pyfunc import pick_examples

    oof = pd.DataFrame(
        {
            "isic_id": ["a", "b", "c", "d", "e", "f"],
            "target": [0, 1, 0, 1, 1, 0],
            "score": [0.9, 0.2, 0.1, 0.8, 0.7, 0.05],
        }
    )
    chosen = pick_examples(oof)
    assert chosen["isic_id"].tolist() == ["d", "e", "f"]  # top positives, then the lowest benign
    assert chosen["target"].tolist() == [1, 1, 0]
    assert chosen["oof_score"].tolist() == [0.8, 0.7, 0.05]


def test_the_demo_shows_the_image_beside_its_heat_map_with_a_scale():
    from projects.image_classifier.gradcam import side_by_side

    image = Image.new("RGB", (64, 64), (200, 150, 120))
    cam = np.zeros((64, 64))
    cam[20:40, 20:40] = 1.0
    shown = np.asarray(side_by_side(image, cam, 0.45, "jet", 200))
    assert shown.shape[0] == 200 and shown.shape[1] > 2 * 200  # two panels and the scale
    left, right = shown[:, : shown.shape[1] // 2], shown[:, shown.shape[1] // 2 :]
    skin = np.array([200, 150, 120])
    assert (np.abs(left.reshape(-1, 3) - skin).sum(1) < 10).mean() > 0.2  # the image as it is
    assert (np.abs(right.reshape(-1, 3) - skin).sum(1) < 10).mean() < 0.05  # coloured over


def test_the_map_of_a_gem_model_splits_its_logit_over_the_cells():
    """Gradient x activation of a 1-homogeneous head: the cells add up to logit - bias."""
    from projects.image_classifier.model import LesionClassifier

    torch.manual_seed(0)
    model = LesionClassifier(
        backbone="test_efficientnet", pretrained=False, gem_p=3.0, gem_eps=1e-6, dropout=0.0
    ).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = model.backbone.forward_features(x.contiguous(memory_format=torch.channels_last))
    feats = feats.detach().requires_grad_(True)
    logit = model.head(model.pool(feats)).squeeze(1)
    (grad,) = torch.autograd.grad(logit.sum(), feats)
    cells = (grad * feats).sum(1).flatten(1).sum(1)
    torch.testing.assert_close(
        cells, logit.detach() - model.head.bias.detach(), rtol=1e-4, atol=1e-4
    )
