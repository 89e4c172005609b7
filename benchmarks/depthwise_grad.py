"""The smoke image model's training step with oneDNN's depthwise weight gradient against the
shifted sums of `projects/image_classifier/depthwise.py`, measured in the same run.

python benchmarks/depthwise_grad.py [--batch 64] [--size 96] [--steps 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks._util import machine, report, timed  # noqa: E402
from projects.image_classifier.model import LesionClassifier  # noqa: E402
from shared.config import compose, to_dict  # noqa: E402


def step_seconds(shifted: bool, batch: int, size: int, steps: int) -> tuple[float, float]:
    """(best fwd+bwd+AdamW step, best backward alone) in seconds on the trunk's features of
    the smoke config's model."""
    torch.manual_seed(0)
    overrides = ["experiment=smoke", f"model.shifted_depthwise_grad={shifted}"]
    model = LesionClassifier(**to_dict(compose("image_classifier", overrides).model)).train()
    with torch.no_grad():
        trunk = model.trunk(torch.randn(batch, 3, size, size))
    target = (torch.arange(batch) % 9 == 0).float()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    backward = []

    def one_step() -> None:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model.forward_tail(trunk), target)
        seconds, _ = timed(loss.backward)
        backward.append(seconds)
        opt.step()

    one_step()  # warm-up
    best, _ = timed(one_step, repeat=steps)
    return best, min(backward[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    plain, plain_bwd = step_seconds(False, args.batch, args.size, args.steps)
    shifted, shifted_bwd = step_seconds(True, args.batch, args.size, args.steps)
    report(
        f"image_classifier smoke tail step (batch {args.batch}, {args.size} px; {machine()})",
        [
            (
                "oneDNN depthwise grad: step / backward",
                f"{plain * 1e3:.1f} / {plain_bwd * 1e3:.1f} ms",
            ),
            ("shifted sums: step / backward", f"{shifted * 1e3:.1f} / {shifted_bwd * 1e3:.1f} ms"),
            ("step speed-up", f"{plain / shifted:.2f}x"),
        ],
    )


if __name__ == "__main__":
    main()
