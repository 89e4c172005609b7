"""Grad-CAM on a trained lesion model: when the only malignancy cue is drawn inside the lesion,
the heat map's mass sits on the lesion, well above the lesion's share of the image.

The smoke model is not the subject here: its generator also makes the lesion's darkness
against the skin a cue (what the skin looks like is evidence too), and at 96 px its last
feature map is 3x3, each cell seeing the whole crop. This test isolates the method: the
packaged ImageNet EfficientNet-Lite0 with the smoke recipe (frozen trunk, GeM, the last two
stages trained) at 192 px (a 6x6 map), on lesions that differ only in the generator's
blue-grey blotches (`render_lesion`). Measured over seeds 1-3: mass/area 3.2, 2.2 and 2.0
(at 96 px: 2.4, 1.6 and 0.95, which is why the demo's maps of the 96 px smoke model are coarse).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from projects.image_classifier.data import eval_transform
from projects.image_classifier.gradcam import disc_mask, grad_cam, mass_inside
from projects.image_classifier.model import LesionClassifier
from shared.datasets.isic2024_synthetic import render_lesion
from shared.metrics import roc_auc

pytestmark = pytest.mark.slow

SIZE = 192
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _lesions(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """n lesion crops, every other one with blotches (label 1): skin tone, size, border and
    variegation vary at random and say nothing about the label."""
    rng = np.random.default_rng(seed)
    images, discs, labels = [], [], np.arange(n) % 2
    for y in labels:
        skin = rng.normal([62, 17, 27], [7, 3, 4])
        row = {
            "clin_size_long_diam_mm": 2.5 * np.exp(rng.normal(0, 0.2)),
            "_border": rng.normal(),
            "_variegation": rng.normal(),
            "_blotch": 1.5 if y else -1.0,  # 3 blotches or none
            "tbp_lv_Lext": skin[0],
            "tbp_lv_Aext": skin[1],
            "tbp_lv_Bext": skin[2],
            "tbp_lv_L": skin[0] - 12 + rng.normal(0, 4),
            "tbp_lv_A": skin[1] + 3,
            "tbp_lv_B": skin[2] - 2,
        }
        image, disc = render_lesion(row, 128, rng)
        images.append(image)
        discs.append(disc)
    return images, np.array(discs), labels


def test_grad_cam_of_a_trained_model_sits_on_a_cue_drawn_only_in_the_lesion():
    images, discs, labels = _lesions(400, seed=1)
    transform = eval_transform(SIZE, *IMAGENET)
    x = torch.stack([transform(im) for im in images])
    y = torch.tensor(labels, dtype=torch.float32)
    torch.manual_seed(1)
    model = LesionClassifier(
        backbone="pkg:efficientnet_lite0",
        pretrained=True,
        gem_p=3.0,
        gem_eps=1e-6,
        dropout=0.1,
        freeze_blocks=5,
    )
    with torch.no_grad():
        trunk = model.trunk(x).contiguous()
    n_train = 300
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(8):
        order = torch.randperm(n_train)
        for start in range(0, n_train, 32):
            batch = order[start : start + 32]
            loss = F.binary_cross_entropy_with_logits(model.forward_tail(trunk[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        held_out = torch.sigmoid(model.forward_tail(trunk[n_train:])).numpy()
    assert roc_auc(labels[n_train:], held_out) > 0.95  # it learnt the blotches

    positives = [i for i in range(n_train, len(labels)) if labels[i] == 1]
    cams = grad_cam([model], x[positives])
    masks = [disc_mask(cam.shape, tuple(discs[i])) for cam, i in zip(cams, positives)]
    mass = np.nanmean([mass_inside(cam, mask) for cam, mask in zip(cams, masks)])
    area = np.mean([mask.mean() for mask in masks])
    assert area < 0.25
    assert mass > 2 * area, f"heat map mass on the lesion {mass:.3f}, lesion area {area:.3f}"
