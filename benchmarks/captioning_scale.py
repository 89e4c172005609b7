"""Does the captioning data path hold at COCO annotation size? Time and memory of the project's
own annotation parsing, tokenizer training, caption encoding and caption metrics.

python benchmarks/captioning_scale.py [--images 123287] [--test 5000] [--val 5000]
    [--files 16] [--vocab-sizes 512,10000] [--data data/bench/captioning] [--seed 0]
Issue 25, item 4: the smoke data has 1,500 images; COCO's Karpathy split (`dataset_coco.json`)
has 123,287 images x 5 captions (82,783 train, 30,504 restval, 5,000 val, 5,000 test). This
writes such a file (same fields: filepath, filename, split, cocoid, sentences with raw and
tokens; captions from a grammar with COCO's length, casing, punctuation and a long tail of
rare words), whose images repeat `--files` real JPEGs, and one generated hypothesis per test
image. Then each step runs in a fresh process (its peak RSS is its own), calling the project's
code, never a copy of it:

- parse: `projects.captioning.data.read_karpathy` (JSON, entries, splits, file checks);
- decode (with `--decode`): `check_images`, the rest of `load_captions`: every image decoded
  once before training, by as many threads as `load_captions` starts;
- bpe-V: `projects.captioning.tokenizer.train_bpe` on the training captions (what
  `tokenizer.kind=bpe` trains; the full config loads GPT-2's BPE instead), vocabulary V;
- encode: `encode_captions` of every caption (as `CaptionDataModule` does), BPE of the first V;
- ptb: `shared.ptb_tokenizer.ptb_tokenize_batch` of the test references and hypotheses;
- metrics: `shared.metrics.caption_scores` (PTB tokenisation, BLEU-1..4, CIDEr-D) of the
  5,000 test hypotheses against their 5 references, as `evaluate` scores test (and the
  per-epoch validation callback scores val).

It prints a markdown table (wall and CPU seconds, peak RSS) with the machine, date and command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks._util import machine  # noqa: E402

COCO_SPLITS = {"train": 82_783, "restval": 30_504}  # Karpathy COCO; val and test: 5,000 each
COCO_IMAGES = 123_287
ANNOTATIONS = "dataset_coco.json"


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


# A caption grammar with COCO's shape: ~10 words, a capital first letter, a full stop on most,
# commas, possessives and hyphenated words (the PTB tokenizer's slow paths).
SUBJECTS = _words(
    "man woman person child boy girl dog cat giraffe elephant zebra horse cow sheep bird bear "
    "bus train truck car motorcycle bicycle airplane boat skateboarder surfer skier player "
    "pizza sandwich cake plate kitchen bathroom clock sign laptop teddy-bear fire-hydrant"
)
ADJECTIVES = _words(
    "young old large small white black brown red blue green yellow wooden tall little "
    "big empty busy colorful dirty clean"
)
ACTIONS = _words(
    "sitting on|standing next to|riding|holding|walking down|parked on|flying over|eating|"
    "looking at|laying on|playing with|crossing|waiting at|jumping over|on top of",
    "|",
)
PLACES = _words(
    "a bench|the beach|a city street|a grassy field|a table|the snow|a tennis court|a wave|"
    "the sidewalk|a kitchen counter|a runway|the water|a dirt road|a living room|the ocean|"
    "a fence|a building|a plate|a ramp|the grass",
    "|",
)
COUNTS = ("two", "three", "a couple of", "several", "a group of", "many")
TEMPLATES = (
    "A {adj} {subj} {act} {place}.",
    "a {subj} {act} {place}",
    "The {subj} is {act} {place} .",
    "{Count} {subj}s {act} {place}.",
    "There is a {adj} {subj} {act} {place}, {extra}.",
    "A {subj}'s {tail} {act} {place}.",
    "An image of a {adj} {subj} {act} {place} with a {tail}",
)
EXTRAS = ("in the daytime", "next to a t-shirt stand", "while it's raining", "near a 2-story house")


def tail_words(n: int, rng: np.random.Generator) -> list[str]:
    """`n` pseudo-words (COCO's long tail: ~25,000 distinct words, most of them rare)."""
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]
    words = {"".join(rng.choice(syllables, rng.integers(2, 4))) for _ in range(2 * n)}
    return sorted(words)[:n]


class CaptionWriter:
    """Five differently worded captions per image from one drawn scene, and hypotheses."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.tail = tail_words(20_000, rng)
        zipf = 1.0 / np.arange(1, len(self.tail) + 1)  # word k is 1/k as frequent as the first
        self.tail_cdf = np.cumsum(zipf / zipf.sum())

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def scene(self) -> dict[str, str]:
        return {"subj": self.pick(SUBJECTS), "act": self.pick(ACTIONS), "place": self.pick(PLACES)}

    def caption(self, scene: dict[str, str]) -> str:
        count = self.pick(COUNTS)
        tail = min(int(np.searchsorted(self.tail_cdf, self.rng.random())), len(self.tail) - 1)
        text = self.pick(TEMPLATES).format(
            adj=self.pick(ADJECTIVES),
            Count=count[0].upper() + count[1:],
            extra=self.pick(EXTRAS),
            tail=self.tail[tail],
            **scene,
        )
        return text if self.rng.random() > 0.05 else text + "  "  # a few trailing spaces

    def hypothesis(self, scene: dict[str, str]) -> str:
        """A model-like caption: the scene's wording, the place wrong in a third of them."""
        if self.rng.random() < 0.33:
            scene = {**scene, "place": self.pick(PLACES)}
        return self.caption(scene).strip().lower().rstrip(".").strip()


def karpathy_tokens(raw: str) -> list[str]:
    """The Karpathy files' `tokens`: lower-cased alphanumeric runs."""
    return re.findall(r"[a-z0-9]+", raw.lower())


def write_images(image_dir: Path, n_files: int, rng: np.random.Generator) -> None:
    """`n_files` smooth 640x480 JPEGs (COCO's typical size) in each of COCO's two folders."""
    from PIL import Image

    for folder in ("train2014", "val2014"):
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
        for k in range(n_files):
            low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            img = Image.fromarray(low).resize((640, 480), Image.Resampling.BICUBIC)
            img.save(image_dir / folder / f"COCO_{folder}_{k:012d}.jpg", quality=90)


def generate(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """`dataset_coco.json`, its images and `test_hypotheses.json` under `folder` (reused when
    present); returns what was written."""
    ann = folder / ANNOTATIONS
    hyp_path = folder / "test_hypotheses.json"
    if not (ann.is_file() and hyp_path.is_file()):
        rng = np.random.default_rng(args.seed)
        write_images(folder / "images", args.files, rng)
        rest = args.images - args.val - args.test  # train and restval, in COCO's proportion
        restval = round(rest * COCO_SPLITS["restval"] / sum(COCO_SPLITS.values()))
        counts = {"val": args.val, "test": args.test, "restval": restval, "train": rest - restval}
        writer = CaptionWriter(rng)
        images, hypotheses, sent_id = [], [], 0
        for split in ("val", "test", "restval", "train"):  # COCO's file starts with val2014
            for _ in range(counts[split]):
                i = len(images)
                folder_name = "train2014" if split == "train" else "val2014"
                scene = writer.scene()
                sentences = []
                for _ in range(5):
                    raw = writer.caption(scene)
                    sentences.append(
                        {"tokens": karpathy_tokens(raw), "raw": raw, "imgid": i, "sentid": sent_id}
                    )
                    sent_id += 1
                images.append(
                    {
                        "filepath": folder_name,
                        "sentids": [s["sentid"] for s in sentences],
                        "filename": f"COCO_{folder_name}_{i % args.files:012d}.jpg",
                        "imgid": i,
                        "split": split,
                        "sentences": sentences,
                        "cocoid": 100_000 + i,
                    }
                )
                if split == "test":
                    hypotheses.append(writer.hypothesis(scene))
        tmp = ann.with_suffix(".tmp")
        tmp.write_text(json.dumps({"images": images, "dataset": "coco"}))
        hyp_path.write_text(json.dumps(hypotheses))
        tmp.rename(ann)
    return {"annotations_mb": ann.stat().st_size / 1e6}


# Steps: each runs in its own process (`--step NAME`), prepares its inputs, then is timed.


def _status_bytes(field: str) -> int:
    """`VmRSS` (now) or `VmHWM` (peak) of this process, from /proc/self/status (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) * 1024


def _timed(fn: Callable[[], dict]) -> dict:
    """Run `fn` with the peak-RSS mark reset first (so loading the inputs does not count):
    wall and CPU seconds, RSS before, and the peak RSS while `fn` ran."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    rss_before = _status_bytes("VmRSS")
    cpu0, t0 = time.process_time(), time.perf_counter()
    extra = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = _status_bytes("VmHWM")
    return {"wall": wall, "cpu": cpu, "rss_before": rss_before, "peak": peak, **extra}


def run_step(step: str, folder: Path) -> dict:
    """One step in this process, inputs from `folder` (written by `parse`)."""
    from projects.captioning.data import encode_captions, read_karpathy
    from projects.captioning.tokenizer import CaptionTokenizer, train_bpe

    work = folder / "work"
    if step == "parse":
        box: dict = {}

        def parse() -> dict:
            box["frame"] = read_karpathy(folder / ANNOTATIONS, folder / "images")
            return {"images": len(box["frame"])}

        out = _timed(parse)
        frame = box["frame"]  # inputs of the later steps, written after the clock stopped
        work.mkdir(exist_ok=True)
        out["splits"] = frame["split"].value_counts().to_dict()
        train = frame.loc[frame["split"] == "train", "tokens"]  # as train.py: restval merged
        (work / "train_captions.json").write_text(json.dumps([c for cs in train for c in cs]))
        (work / "all_tokens.json").write_text(json.dumps(frame["tokens"].tolist()))
        test_raw = frame.loc[frame["split"] == "test", "raw"].tolist()
        (work / "test_references.json").write_text(json.dumps(test_raw))
        return out
    if step == "decode":
        from projects.captioning.data import check_images
        from shared.images import FolderImageStore

        frame = read_karpathy(folder / ANNOTATIONS, folder / "images")
        store = FolderImageStore(folder / "images")
        workers = max(1, min(8, os.cpu_count() or 1))  # as load_captions

        def decode() -> dict:
            return {"images": len(check_images(frame, store, "fail", workers))}

        return _timed(decode)
    if step.startswith("bpe-"):
        vocab = int(step.removeprefix("bpe-"))
        captions = json.loads((work / "train_captions.json").read_text())
        box = {}

        def train() -> dict:
            box["tok"] = train_bpe(captions, vocab)
            return {"captions": len(captions), "vocab": box["tok"].vocab_size}

        out = _timed(train)
        box["tok"].save(work / f"tokenizer-{vocab}")
        return out
    if step.startswith("encode-"):
        from shared.config import compose

        max_len = compose("captioning", ["experiment=full"]).data.max_len
        tok = CaptionTokenizer.load(work / f"tokenizer-{step.removeprefix('encode-')}")
        per_image = json.loads((work / "all_tokens.json").read_text())

        def encode() -> dict:
            n = cut = 0
            for caps in per_image:  # CaptionDataModule._dataset: one call per image
                ids, c = encode_captions(tok, caps, max_len)
                n, cut = n + len(ids), cut + c
            return {"captions": n, "cut": cut, "max_len": max_len}

        return _timed(encode)
    refs = json.loads((work / "test_references.json").read_text())
    hyps = json.loads((folder / "test_hypotheses.json").read_text())
    if step == "ptb":
        from shared.ptb_tokenizer import ptb_tokenize_batch

        def tokenize() -> dict:
            ptb_tokenize_batch([r for rs in refs for r in rs])
            ptb_tokenize_batch(hyps)
            return {"captions": sum(map(len, refs)) + len(hyps)}

        return _timed(tokenize)
    if step == "metrics":
        from shared.metrics import caption_scores

        def score() -> dict:
            s = caption_scores(dict(enumerate(refs)), dict(enumerate(hyps)))
            return {"scores": {k: round(v, 4) for k, v in s.items()}}

        return _timed(score)
    raise ValueError(f"unknown step {step!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=COCO_IMAGES)
    parser.add_argument("--val", type=int, default=5_000)
    parser.add_argument("--test", type=int, default=5_000)
    parser.add_argument("--files", type=int, default=16, help="real JPEGs per COCO folder")
    parser.add_argument("--vocab-sizes", default="512,10000", help="BPE vocabularies to train")
    parser.add_argument("--data", default="data/bench/captioning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--decode", action="store_true", help="also time decoding every image (load_captions)"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: run one step, print JSON
    args = parser.parse_args()
    if args.images <= args.val + args.test:
        parser.error("--images must exceed --val + --test (train needs images)")
    folder = Path(args.data) / f"n{args.images}-val{args.val}-test{args.test}-seed{args.seed}"
    if args.step:
        print(json.dumps(run_step(args.step, folder)))
        return

    t0 = time.perf_counter()
    written = generate(folder, args)
    gen_s = time.perf_counter() - t0
    vocabs = [int(v) for v in args.vocab_sizes.split(",")]
    steps = ["parse", *(["decode"] if args.decode else []), *(f"bpe-{v}" for v in vocabs)]
    steps += [f"encode-{vocabs[0]}", "ptb", "metrics"]
    results = {}
    for step in steps:
        proc = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--step", step],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"step {step} failed:\n{proc.stderr[-3000:]}")
        results[step] = json.loads(proc.stdout.strip().splitlines()[-1])

    mib = 2**20
    parse, encode = results["parse"], f"encode-{vocabs[0]}"
    what = {
        "parse": f"`read_karpathy`: {parse['images']:,} images, splits {parse['splits']}",
        "decode": f"`check_images`: every image decoded once ({args.files} x 2 distinct 640x480 "
        "JPEGs), threads as `load_captions`",
        **{
            f"bpe-{v}": f"`train_bpe`, vocab_size {v:,} (got {results[f'bpe-{v}']['vocab']:,}), "
            f"on {results[f'bpe-{v}']['captions']:,} training captions (train + restval)"
            for v in vocabs
        },
        encode: f"`encode_captions` of all {results[encode]['captions']:,} captions "
        f"(BPE {vocabs[0]:,}, the full config's max_len {results[encode]['max_len']})",
        "ptb": f"`ptb_tokenize_batch` of {results['ptb']['captions']:,} test captions "
        f"({args.test:,} x 5 references + {args.test:,} hypotheses)",
        "metrics": f"`caption_scores` on {args.test:,} test images: {results['metrics']['scores']}",
    }
    print(
        f"\n### captioning at COCO annotation size: {args.images:,} images x 5 captions\n\n"
        "| step | what | wall s | CPU s | RSS before, MiB | peak RSS, MiB | peak - before, MiB |\n"
        "|---|---|---|---|---|---|---|"
    )
    print(
        f"| generate | `{ANNOTATIONS}` ({written['annotations_mb']:,.0f} MB), "
        f"{args.files} JPEGs per folder, hypotheses (0 s if reused) | {gen_s:,.1f} | | | | |"
    )
    for step in steps:
        r = results[step]
        print(
            f"| {step} | {what[step]} | {r['wall']:,.2f} | {r['cpu']:,.2f} | "
            f"{r['rss_before'] / mib:,.0f} | {r['peak'] / mib:,.0f} | "
            f"{(r['peak'] - r['rss_before']) / mib:,.0f} |"
        )
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(
        "\nEach step runs in a fresh process. RSS before: after the imports (torch and "
        "lightning, through projects.captioning.data) and loading the step's inputs; peak RSS: "
        "the process's high-water mark while the step ran (VmHWM, reset before it). CPU s "
        "counts the process's threads (the BPE trainer uses several); on a shared machine "
        "wall s exceeds it."
    )
    print(f"Machine: {machine()}. Date: {datetime.date.today()}.\nCommand: `{command}`")


if __name__ == "__main__":
    main()
