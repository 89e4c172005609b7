"""One torch project's full-config training step, timed on generated full-size inputs with
random-init weights (no hub access): samples/s and peak GPU memory. Run by benchmarks/gpu.sh.

python benchmarks/gpu.py --project image_classifier|retrieval_qa|captioning [--steps 10] [--cpu]
    [--reader large|base]
GPU: bf16 autocast, the full configs' sizes. `--cpu`: fp32, tiny sizes, seconds (CI checks
that every project's step runs and prints its figure). Each project prints one line:
    gpu-bench <project> | <device> | <dtype> | <what> | <rate> <unit>/s | peak GPU memory <GiB>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from benchmarks import captioning as cap_bench  # noqa: E402
from benchmarks import image_classifier as img_bench  # noqa: E402
from shared import REPO_ROOT  # noqa: E402

PROJECTS = ("image_classifier", "retrieval_qa", "captioning")
# microsoft/deberta-v3-{large,base}'s config.json, built here (no hub): the reader of
# configs/retrieval_qa/experiment/full.yaml is large.
DEBERTA_V3 = {
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64),
}  # fmt: skip
N_CHOICES = 5  # LLM Science Exam: options A-E


def image_classifier(steps: int, device: str, bf16: bool, tiny: bool) -> tuple[str, float, str]:
    """EfficientNet-B0 at the full config's image and batch size (test_efficientnet on CPU)."""
    full = OmegaConf.load(REPO_ROOT / "configs/image_classifier/experiment/full.yaml")
    backbone, size, batch = (
        ("test_efficientnet", 32, 8)
        if tiny
        else (full.model.backbone, full.loader.image_size, full.loader.batch_size)
    )
    _, rate = img_bench.model_rate(backbone, size, batch, steps, device, bf16)
    return f"{backbone} @ {size} px, batch {batch}", rate, "images"


def retrieval_qa(
    steps: int, device: str, bf16: bool, tiny: bool, reader: str = "large"
) -> tuple[str, float, str]:
    """The DeBERTa-v3 multiple-choice reader on (batch, 5 options, max_length) token ids."""
    from transformers import DebertaV2Config, DebertaV2ForMultipleChoice

    cfg = OmegaConf.load(REPO_ROOT / "configs/retrieval_qa/reader/deberta_v3.yaml")
    name, seq, batch = ("tiny", 32, 2) if tiny else (reader, cfg.max_length, cfg.batch_size)
    config = DebertaV2Config(
        **DEBERTA_V3[name],
        vocab_size=1000 if tiny else 128_100,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        max_relative_positions=-1,
        type_vocab_size=0,
        layer_norm_eps=1e-7,
    )
    model = DebertaV2ForMultipleChoice(config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, config.vocab_size, (batch, N_CHOICES, seq), device=device)
    labels = torch.randint(0, N_CHOICES, (batch,), device=device)
    for step in range(steps + 1):
        if step == 1:  # after one warm-up step
            cap_bench._sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    cap_bench._sync(device)
    rate = steps * batch / (time.perf_counter() - t0)
    return (
        f"deberta-v3-{name} x {N_CHOICES} options x {seq} tokens, batch {batch}",
        rate,
        "questions",
    )


def captioning(steps: int, device: str, bf16: bool, tiny: bool) -> tuple[str, float, str]:
    """ViT-B/16 at 224 px + GPT-2 small (124M) at batch 64, 20-token captions."""
    size, batch, tokens = ("smoke", 4, 8) if tiny else ("gpt2", 64, 20)
    model, image_size = cap_bench.build(size, tokens, device)
    rate = cap_bench.train_rate(model, image_size, batch, tokens, steps, device, bf16)
    encoder = cap_bench.SIZES[size][0]
    return f"{encoder} @ {image_size} px + decoder '{size}', batch {batch}", rate, "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", choices=PROJECTS, required=True)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (10 GPU, 2 CPU)")
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on CPU, fp32")
    parser.add_argument("--reader", choices=["large", "base"], default="large")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        sys.exit("gpu.py: no CUDA device here; `bash benchmarks/gpu.sh --cpu` runs tiny sizes")
    device, bf16 = ("cpu", False) if args.cpu else ("cuda", True)
    steps = args.steps or (2 if args.cpu else 10)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    extra = {"reader": args.reader} if args.project == "retrieval_qa" else {}
    what, rate, unit = globals()[args.project](steps, device, bf16, args.cpu, **extra)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = (
        f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device == "cuda" else "n/a (CPU)"
    )
    print(
        f"gpu-bench {args.project} | {name} | {'bf16' if bf16 else 'fp32'} | {what} | "
        f"{rate:,.2f} {unit}/s | peak GPU memory {peak}",
        flush=True,
    )


if __name__ == "__main__":
    main()
