"""The frozen feature passes with BatchNorm folded into the convolutions (`shared.fold_bn`)
against the same modules unfolded, in the same run: images/s, the ratio, and how far the
outputs move (max |difference| / max |output|).

python benchmarks/fold_bn.py [--n 512] [--repeat 3]
Two passes, as the smoke configs run them on CPU: image_classifier's trunk (the packaged
ImageNet Lite0's stem and first 5 blocks, 96 px, batch 64) and captioning's whole backbone
(160 px, batch 32), channels-last, random normalised images (the time does not depend on them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks._util import machine, report, timed  # noqa: E402
from projects.image_classifier.model import LesionClassifier  # noqa: E402
from shared.fold_bn import fold_batchnorm  # noqa: E402
from shared.pretrained import create_timm_model  # noqa: E402


def compare(name: str, fn, module, size: int, batch: int, n: int, repeat: int) -> list:
    torch.manual_seed(0)
    x = torch.randn(n, 3, size, size).contiguous(memory_format=torch.channels_last)
    folded = fold_batchnorm(module, x[:batch], fn)

    def run(m):
        with torch.no_grad():
            return torch.cat([fn(m, x[i : i + batch]) for i in range(0, n, batch)])

    t_plain, want = timed(lambda: run(module), repeat)
    t_folded, got = timed(lambda: run(folded), repeat)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    return [
        (f"{name}: unfolded", f"{n / t_plain:.1f} images/s"),
        (f"{name}: folded", f"{n / t_folded:.1f} images/s"),
        (f"{name}: ratio", f"{t_plain / t_folded:.2f}x"),
        (f"{name}: max rel. difference", f"{rel:.1e}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="images per pass")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()
    trunk = LesionClassifier(
        backbone="pkg:efficientnet_lite0",
        pretrained=True,
        gem_p=3.0,
        gem_eps=1e-6,
        dropout=0.0,
        freeze_blocks=5,
    ).eval()
    backbone = create_timm_model("pkg:efficientnet_lite0", True, num_classes=0).eval()
    backbone.to(memory_format=torch.channels_last)
    rows = compare(
        "image trunk 96 px", lambda m, x: m(x), trunk.trunk_layers(), 96, 64, args.n, args.repeat
    )
    rows += compare(
        "caption backbone 160 px",
        lambda m, x: m.forward_features(x),
        backbone,
        160,
        32,
        args.n,
        args.repeat,
    )
    report(f"BatchNorm folding, {machine()}, {torch.get_num_threads()} threads", rows)


if __name__ == "__main__":
    main()
