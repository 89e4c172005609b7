"""Train the captioner, decode val/test with greedy and beam search, score, log and register.

python -m projects.captioning.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from projects.captioning.config import CaptioningConfig
from projects.captioning.data import CaptionDataModule, read_karpathy
from projects.captioning.decoder import DecoderConfig
from projects.captioning.model import Captioner, caption_loader
from projects.captioning.module import CaptionModule
from projects.captioning.pyfunc import CaptionModel, build_bundle
from projects.captioning.report import log_test_captions
from projects.captioning.synthetic import ensure_dataset
from projects.captioning.tokenizer import build_tokenizer
from shared import tracking
from shared.cli import hydra_entry
from shared.config import to_dict, validate
from shared.device import select_device
from shared.lightning import build_trainer
from shared.logging import get_logger
from shared.metrics import caption_scores
from shared.seed import seed_everything

log = get_logger(__name__)


def run(raw_cfg: DictConfig) -> dict[str, float]:
    cfg: CaptioningConfig = validate(raw_cfg, CaptioningConfig)
    seed_everything(cfg.seed, deterministic=False)
    if cfg.data.generate:
        ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic or {}))
    frame = read_karpathy(cfg.data.annotations, cfg.data.image_dir, cfg.data.merge_restval)
    train_caps = [c for caps in frame.loc[frame["split"] == "train", "tokens"] for c in caps]
    tok = build_tokenizer(cfg.tokenizer, train_caps)

    with tracking.start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=[cfg.data.annotations],
        tags=cfg.tracking.tags,
    ) as run:
        dm = CaptionDataModule(frame, tok, cfg.data, cfg.decoding.eval_batch_size)
        if dm.truncated:
            log.warning(
                "%d captions longer than max_len=%d were cut", dm.truncated, cfg.data.max_len
            )
        tracking.log_metrics(
            {
                "captions_truncated": dm.truncated,
                "vocab_size": tok.vocab_size,
                **{f"n_images_{s}": len(df) for s, df in dm.splits.items()},
            }
        )
        decoder_cfg = replace(DecoderConfig(**to_dict(cfg.decoder)), vocab_size=tok.vocab_size)
        model = Captioner(cfg.encoder.name, cfg.encoder.pretrained, decoder_cfg)
        module = CaptionModule(
            model, to_dict(cfg.optim), cfg.label_smoothing, cfg.encoder.freeze_epochs
        )
        with tempfile.TemporaryDirectory() as tmp:
            trainer, _ = build_trainer(cfg.trainer, default_root_dir=tmp)
            trainer.fit(module, datamodule=dm)

        device = select_device(cfg.trainer.accelerator).torch_device
        metrics: dict[str, float] = {}
        generated = {}
        for s in ("val", "test"):
            generated[s] = caption_loader(model, dm.loader(s), tok, cfg.decoding, device)
            refs = dict(enumerate(dm.splits[s]["raw"]))
            for how, caps in generated[s].items():
                scores = caption_scores(refs, dict(enumerate(caps)))
                suffix = "" if how == "beam" else "_greedy"
                metrics.update({f"{s}_{k}{suffix}": v for k, v in scores.items()})
        tracking.log_metrics(metrics)
        log_test_captions(dm.splits["test"], dm.store, generated["test"])
        log.info(
            "test BLEU-4 %.3f CIDEr-D %.3f (beam); greedy BLEU-4 %.3f CIDEr-D %.3f",
            metrics["test_bleu_4"],
            metrics["test_cider_d"],
            metrics["test_bleu_4_greedy"],
            metrics["test_cider_d_greedy"],
        )
        image = dm.store.read_bytes(dm.splits["test"]["path"].iloc[0])
        with tempfile.TemporaryDirectory() as tmp:
            bundle = build_bundle(Path(tmp) / "bundle", model.cpu(), tok, cfg, decoder_cfg)
            tracking.publish(
                run,
                cfg.tracking,
                metrics,
                python_model=CaptionModel(),
                artifacts={"bundle": str(bundle)},
                input_example=pd.DataFrame({"image": [base64.b64encode(image).decode()]}),
                pip_requirements=["torch", "timm", "tokenizers", "pandas"],
            )
    return metrics


main = hydra_entry(run, "captioning")

if __name__ == "__main__":
    main()
