"""Caption generation speed with and without the KV cache, greedy vs beam; training throughput.

python benchmarks/captioning.py [--size smoke|gpt2] [--tokens 30] [--batch 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.captioning.decoder import DecoderConfig, GPT2Decoder  # noqa: E402
from projects.captioning.generate import beam_search, greedy  # noqa: E402
from projects.captioning.model import Captioner  # noqa: E402
from shared.device import select_device  # noqa: E402

SIZES = {
    "smoke": dict(n_layer=2, n_head=4, n_embd=128, vocab_size=400),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="smoke")
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--beam", type=int, default=3)
    args = parser.parse_args()
    device = select_device().torch_device
    torch.manual_seed(0)
    cfg = DecoderConfig(
        **SIZES[args.size],
        n_positions=64,
        dropout=0.0,
        cross_attention=True,
        layer_norm_eps=1e-5,
        init=None,
    )
    dec = GPT2Decoder(cfg).eval().to(device)
    memory = torch.randn(args.batch, 49, cfg.n_embd, device=device)
    eos = cfg.vocab_size + 1  # never produced: every run decodes exactly --tokens tokens
    rows = []
    speeds = {}
    for cached in (False, True):
        t0 = time.perf_counter()
        greedy(dec, memory, 0, eos, args.tokens, use_cache=cached)
        dt = time.perf_counter() - t0
        speeds[cached] = args.batch * args.tokens / dt
        rows.append(
            (f"greedy, cache={'on' if cached else 'off'}", f"{speeds[cached]:,.0f} tokens/s")
        )
    rows.append(("KV cache speed-up", f"{speeds[True] / speeds[False]:.1f}x"))
    n_img = min(args.batch, 4)
    t0 = time.perf_counter()
    beam_search(dec, memory[:n_img], 0, eos, args.tokens, beam_size=args.beam)
    beam_tps = n_img * args.tokens / (time.perf_counter() - t0)
    rows += [
        (f"beam {args.beam}, cache on ({n_img} images)", f"{beam_tps:,.0f} output tokens/s"),
        ("greedy / beam", f"{speeds[True] / beam_tps:.1f}x"),
    ]

    model = Captioner("test_vit", False, cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch, 3, 96, 96, device=device)
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, 21), device=device)
    for step in range(4):
        if step == 1:
            t0 = time.perf_counter()
        logits = model(images, tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows.append(
        (
            "training (test_vit 96 px + decoder)",
            f"{3 * args.batch / (time.perf_counter() - t0):,.0f} images/s",
        )
    )
    report(
        f"captioning decoder '{args.size}' on {device}, batch {args.batch}, {args.tokens} tokens",
        rows,
    )


if __name__ == "__main__":
    main()
