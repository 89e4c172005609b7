"""Captioning at COCO size: decoding images/s (greedy and beam, KV cache on and off) and
training images/s of the encoder + GPT-2 decoder.

python benchmarks/captioning.py [--size smoke|gpt2] [--tokens 20] [--batch 64]
    [--decode-batch 16] [--beam 3] [--steps 3]
`--size gpt2` is the full config: ViT-B/16 at 224 px + GPT-2 small (124M, 50,257 tokens),
random init; `smoke` is timm's test_vit at 96 px + the 2-layer decoder (seconds on CPU).
Decoding runs the encoder and then `projects.captioning.generate` (beam search decodes every
image's beams as one batch of batch x beam rows); EOS is never produced, so every caption runs
the full `--tokens` steps (the worst case; COCO captions average about 12 words). Training:
teacher-forced cross-entropy, AdamW, bf16 autocast on GPU (fp32 on CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.captioning.decoder import DecoderConfig  # noqa: E402
from projects.captioning.generate import beam_search, greedy  # noqa: E402
from projects.captioning.model import Captioner  # noqa: E402
from shared.device import select_device  # noqa: E402

# encoder, image size, decoder shape: `gpt2` = configs/captioning (encoder vit_base, decoder gpt2)
SIZES = {
    "smoke": ("test_vit", 96, dict(n_layer=2, n_head=4, n_embd=128, vocab_size=400)),
    "gpt2": (
        "vit_base_patch16_224",
        224,
        dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257),
    ),
}


def build(size: str, tokens: int, device: str) -> tuple[Captioner, int]:
    """A random-init captioner of `size` (no hub access) and its input image size."""
    encoder, image_size, dims = SIZES[size]
    cfg = DecoderConfig(
        **dims,
        n_positions=max(64, tokens + 1),
        dropout=0.0,
        cross_attention=True,
        layer_norm_eps=1e-5,
        init=None,
    )
    return Captioner(encoder, False, cfg).to(device), image_size


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def decode_rate(
    model: Captioner, images: torch.Tensor, tokens: int, beam: int, cached: bool, bf16: bool
) -> float:
    """Images/s from pixels to token ids (encoder + decoding), greedy when `beam` is 1."""
    model.eval()
    device = images.device.type
    eos = model.decoder.cfg.vocab_size + 1  # never produced: every caption runs `tokens` steps
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        _sync(device)
        t0 = time.perf_counter()
        memory = model.encoder(images)
        if beam == 1:
            greedy(model.decoder, memory, 0, eos, tokens, use_cache=cached)
        else:
            beam_search(model.decoder, memory, 0, eos, tokens, beam_size=beam, use_cache=cached)
        _sync(device)
    return len(images) / (time.perf_counter() - t0)


def train_rate(
    model: Captioner,
    image_size: int,
    batch: int,
    tokens: int,
    steps: int,
    device: str,
    bf16: bool,
) -> float:
    """Training images/s over `steps` steps after one warm-up step (random images/captions)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    vocab = model.decoder.lm_head.out_features
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    ids = torch.randint(0, vocab, (batch, tokens + 1), device=device)
    for step in range(steps + 1):
        if step == 1:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images, ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="smoke")
    parser.add_argument("--tokens", type=int, default=20, help="caption length in tokens")
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--decode-batch", type=int, default=16, help="images decoded at once")
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    args = parser.parse_args()
    device = select_device().torch_device
    bf16 = device == "cuda"
    torch.manual_seed(0)
    model, image_size = build(args.size, args.tokens, device)
    images = torch.randn(args.decode_batch, 3, image_size, image_size, device=device)
    decode_rate(model, images[:2], 2, 1, True, bf16)  # warm-up
    rates = {  # best of 2: small runs on a shared machine are noisy
        (beam, cached): max(
            decode_rate(model, images, args.tokens, beam, cached, bf16) for _ in range(2)
        )
        for beam in (1, args.beam)
        for cached in (False, True)
    }
    rows = [
        (
            f"{'greedy' if beam == 1 else f'beam {beam}'}, KV cache {'on' if cached else 'off'}",
            f"{r:,.1f} images/s",
        )
        for (beam, cached), r in rates.items()
    ]
    rows += [
        ("KV cache speed-up, greedy", f"{rates[1, True] / rates[1, False]:.1f}x"),
        (
            f"KV cache speed-up, beam {args.beam}",
            f"{rates[args.beam, True] / rates[args.beam, False]:.1f}x",
        ),
    ]
    train = train_rate(model, image_size, args.batch, args.tokens, args.steps, device, bf16)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    rows.append((f"training, batch {args.batch}", f"{train:,.1f} images/s"))
    if device == "cuda":
        rows.append(("peak GPU memory", f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"))
    encoder = SIZES[args.size][0]
    report(
        f"captioning '{args.size}': {encoder} @ {image_size} px + decoder, {n_params:.0f}M params, "
        f"on {device} ({'bf16' if bf16 else 'fp32'}), {args.tokens} tokens, "
        f"decoding {args.decode_batch} images at once",
        rows,
    )


if __name__ == "__main__":
    main()
