"""Where the lesion model looks: Grad-CAM over its last feature map, the overlay the demo shows,
and on generated lesions (whose disc the generator records) how much of the map is on the lesion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def grad_cam(models: Sequence[nn.Module], x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) images -> (B, H, W) class-activation maps in [0, 1], averaged over `models`.

    A forward pre-hook on each model's pooling layer (`model.pool`) captures the backbone's
    last feature map A. The map is relu(sum_c d logit / d A_c(x, y) * A_c(x, y)) (HiResCAM:
    each location's gradient, where Grad-CAM averages the gradient over the map first), upsampled
    to the input size, then scaled so each image's maximum is 1 (an all-zero map stays zero).
    For a GeM head this is exact: GeM is 1-homogeneous, so before the relu the map's cells add
    up to the logit minus the head's bias (tested), each cell's share of the evidence.
    Grad-CAM's averaged gradient weights a channel by where it is weak as much as where it
    fires, and spread the lesion model's maps over the skin.
    """
    maps = []
    for model in models:
        captured: dict[str, torch.Tensor] = {}

        def keep(module: nn.Module, args: tuple, captured: dict = captured) -> tuple:  # noqa: ARG001
            feats = args[0]
            if not feats.requires_grad:  # frozen weights: still differentiate w.r.t. A
                feats = feats.detach().requires_grad_(True)
            captured["a"] = feats
            return (feats, *args[1:])

        handle = model.pool.register_forward_pre_hook(keep)
        try:
            with torch.enable_grad():
                logits = model.eval()(x)
                (grad,) = torch.autograd.grad(logits.sum(), captured["a"])
        finally:
            handle.remove()
        maps.append(F.relu((grad * captured["a"].detach()).sum(1)))
    cam = torch.stack(maps).mean(0)[:, None]
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return (cam / peak).clamp(0, 1).numpy()


def disc_mask(size: tuple[int, int], disc: tuple[float, float, float]) -> np.ndarray:
    """(H, W) bool: pixels inside the disc (centre x, y and radius as fractions of the side)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, r = disc
    return np.hypot((xx + 0.5) / w - cx, (yy + 0.5) / h - cy) <= r


def mass_inside(cam: np.ndarray, mask: np.ndarray) -> float:
    """The share of a heat map's mass inside `mask` (nan for an all-zero map)."""
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else float("nan")


@torch.no_grad()
def lesion_focus(
    models: Sequence[nn.Module], images: torch.Tensor, discs: np.ndarray, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """On images whose lesion disc is known: per image, the share of the heat map's mass
    inside the disc (nan where the map is all zero: no positive evidence anywhere) and the
    share of the image the disc covers (what a map blind to the lesion would put there)."""
    masses, areas = [], []
    for start in range(0, len(images), batch_size):
        cams = grad_cam(models, images[start : start + batch_size])
        for cam, disc in zip(cams, discs[start : start + batch_size]):
            mask = disc_mask(cam.shape, tuple(disc))
            masses.append(mass_inside(cam, mask))
            areas.append(float(mask.mean()))
    return np.array(masses), np.array(areas)


def focus_summary(masses: np.ndarray, areas: np.ndarray) -> dict[str, float]:
    """`cam_lesion_mass` (mean over the maps that show any evidence), `cam_lesion_area` and
    `cam_zero_maps` (the share of all-zero maps), as logged."""
    if len(masses) == 0:
        return {}
    shown = ~np.isnan(masses)
    out = {"cam_lesion_area": float(areas.mean()), "cam_zero_maps": float(1 - shown.mean())}
    if shown.any():
        out["cam_lesion_mass"] = float(masses[shown].mean())
    return out


def overlay(image: Image.Image, cam: np.ndarray, alpha: float, colormap: str) -> Image.Image:
    """The heat map (resized to the image, coloured by `colormap`) blended over the image."""
    from matplotlib import colormaps

    heat = Image.fromarray(np.uint8(cam * 255)).resize(image.size, Image.BILINEAR)
    rgb = colormaps[colormap](np.asarray(heat) / 255.0)[..., :3]
    heat_img = Image.fromarray(np.uint8(rgb * 255))
    return Image.blend(image.convert("RGB"), heat_img, alpha)


def side_by_side(
    image: Image.Image, cam: np.ndarray, alpha: float, colormap: str, height_px: int
) -> Image.Image:
    """The image as it is, beside the same image under its heat map, with the colour scale:
    what an overlay alone cannot show (the lesion under the colours, what the colours mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    dpi = 100
    fig, axes = plt.subplots(
        1, 2, figsize=(2.3 * height_px / dpi, height_px / dpi), dpi=dpi, layout="constrained"
    )
    for ax, shown, title in (
        (axes[0], image.convert("RGB"), "image"),
        (axes[1], overlay(image, cam, alpha, colormap), "Grad-CAM"),
    ):
        ax.imshow(shown)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    scale = fig.colorbar(ScalarMappable(cmap=colormaps[colormap]), ax=axes[1], fraction=0.05)
    scale.set_label("share of the strongest evidence", fontsize=8)
    scale.ax.tick_params(labelsize=7)
    fig.canvas.draw()
    out = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return out
