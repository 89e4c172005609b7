"""Train the captioner (epoch chosen on val), decode val/test greedy and beam, score, publish.

python -m projects.captioning.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig

from projects.captioning import pyfunc
from projects.captioning.config import CaptioningConfig
from projects.captioning.data import (
    SPLITS,
    CaptionDataModule,
    load_captions,
    most_common_caption,
)
from projects.captioning.decoder import DecoderConfig
from projects.captioning.grounding import read_scenes
from projects.captioning.model import Captioner, backbone_features
from projects.captioning.module import CaptionModule, check_select, evaluate, fit
from projects.captioning.pyfunc import build_bundle
from projects.captioning.report import log_preprocessing, log_test_captions
from projects.captioning.synthetic import ensure_dataset
from projects.captioning.tokenizer import build_tokenizer
from shared import tracking
from shared.cli import hydra_entry
from shared.config import to_dict, validate
from shared.device import select_device
from shared.logging import get_logger
from shared.pretrained import resolve_preprocessing
from shared.seed import seed_everything

log = get_logger(__name__)


def run(raw_cfg: DictConfig) -> dict[str, float]:
    cfg: CaptioningConfig = validate(raw_cfg, CaptioningConfig)
    seed_everything(cfg.seed, deterministic=False)
    check_select(cfg.select)  # the name, before any data work
    if cfg.data.generate:
        ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic or {}))
    scenes = read_scenes(cfg.data.dir)  # generated data: what each image shows
    check_select(cfg.select, scenes is not None)
    frame, store = load_captions(cfg.data)  # every image decoded once, before any training
    train_caps = [c for caps in frame.loc[frame["split"] == "train", "tokens"] for c in caps]
    tok = build_tokenizer(cfg.tokenizer, train_caps)
    decoder_cfg = replace(DecoderConfig(**to_dict(cfg.decoder)), vocab_size=tok.vocab_size)
    model = Captioner(cfg.encoder.name, cfg.encoder.pretrained, decoder_cfg)
    pre = resolve_preprocessing(model.encoder.data_config(), cfg.data)
    model.encoder.check_input_size(pre["image_size"])
    log.info("preprocessing (encoder %s): %s", cfg.encoder.name, pre)

    with tracking.start_pipeline_run(cfg, [cfg.data.annotations]) as run:
        dm = CaptionDataModule(frame, tok, cfg.data, pre, cfg.decoding.eval_batch_size)
        if dm.truncated:
            log.warning(
                "%d captions longer than max_len=%d were cut", dm.truncated, cfg.data.max_len
            )
        log_preprocessing(pre)
        tracking.log_metrics(
            {
                "captions_truncated": dm.truncated,
                "n_corrupt_skipped": frame.attrs["n_corrupt_skipped"],
                "vocab_size": tok.vocab_size,
                **{f"n_images_{s}": len(df) for s, df in dm.splits.items()},
            }
        )
        device = select_device(cfg.trainer.accelerator).torch_device
        if cfg.encoder.frozen:  # the backbone never trains: its tokens, once per image
            dm.use_features(
                {s: backbone_features(model.encoder, dm.image_loader(s), device) for s in SPLITS}
            )
        freeze = cfg.trainer.max_epochs if cfg.encoder.frozen else cfg.encoder.freeze_epochs
        module = CaptionModule(model, to_dict(cfg.optim), cfg.label_smoothing, freeze)
        chosen = fit(module, dm, tok, cfg, scenes)  # the epoch with the best val `select` score
        baseline = most_common_caption(frame)
        metrics, generated = evaluate(model, dm, tok, cfg.decoding, device, baseline, scenes)
        metrics.update(chosen)
        tracking.log_metrics(metrics)
        log_test_captions(dm.splits["test"], store, generated["test"], scenes)
        log.info(
            "epoch %d chosen on val; val CIDEr-D %.3f, test BLEU-4 %.3f CIDEr-D %.3f (beam), "
            "grounding %s; "
            "greedy test BLEU-4 %.3f CIDEr-D %.3f; most common caption: test CIDEr-D %.3f",
            chosen["best_epoch"],
            metrics["val_cider_d"],
            metrics["test_bleu_4"],
            metrics["test_cider_d"],
            f"{metrics['test_grounding']:.3f}" if scenes else "n/a (real data)",
            metrics["test_bleu_4_greedy"],
            metrics["test_cider_d_greedy"],
            metrics["test_cider_d_baseline"],
        )
        image = store.read_bytes(dm.splits["test"]["path"].iloc[0])
        with tempfile.TemporaryDirectory() as tmp:
            bundle = build_bundle(Path(tmp) / "bundle", model.cpu(), tok, cfg, decoder_cfg, pre)
            tracking.publish(
                run,
                cfg.tracking,
                metrics,
                **pyfunc.package(bundle, image),
            )
    return metrics


main = hydra_entry(run, "captioning")

if __name__ == "__main__":
    main()
