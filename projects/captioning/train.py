"""Train the captioner, decode val/test with greedy and beam search, score, log and register.

python -m projects.captioning.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

import hydra
import mlflow
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from projects.captioning.config import CaptioningConfig
from projects.captioning.data import CaptionDataset, encode_captions, image_transform, read_karpathy
from projects.captioning.decoder import DecoderConfig
from projects.captioning.generate import beam_search, greedy
from projects.captioning.model import Captioner
from projects.captioning.module import CaptionModule
from projects.captioning.pyfunc import CaptionModel, save_bundle
from projects.captioning.synthetic import ensure_dataset
from projects.captioning.tokenizer import CaptionTokenizer, gpt2_tokenizer, train_bpe
from shared import tracking
from shared.config import validate
from shared.images import FolderImageStore
from shared.lightning import build_trainer
from shared.logging import get_logger
from shared.metrics import caption_scores
from shared.seed import seed_everything

log = get_logger(__name__)


def make_tokenizer(cfg: CaptioningConfig, train_captions: list[str]) -> CaptionTokenizer:
    if cfg.tokenizer.kind == "bpe":
        return train_bpe(train_captions, cfg.tokenizer.vocab_size)
    if cfg.tokenizer.kind == "gpt2":
        return gpt2_tokenizer(cfg.tokenizer.name)
    raise ValueError(f"tokenizer.kind must be bpe or gpt2, got {cfg.tokenizer.kind!r}")


@torch.no_grad()
def decode_split(
    model: Captioner, loader: DataLoader, tok: CaptionTokenizer, cfg: CaptioningConfig, device: str
) -> dict[str, list[str]]:
    """Greedy and beam captions for every image of a loader (same order)."""
    model.eval().to(device)
    d = cfg.decoding
    out: dict[str, list[str]] = {"greedy": [], "beam": []}
    for images, _, _ in loader:
        memory = model.encoder(images.to(device))
        g = greedy(model.decoder, memory, tok.bos_id, tok.eos_id, d.max_len)
        b = beam_search(
            model.decoder, memory, tok.bos_id, tok.eos_id, d.max_len, d.beam_size, d.length_penalty
        )
        out["greedy"] += [tok.decode(x) for x in g]
        out["beam"] += [tok.decode(x) for x in b]
    return out


def caption_page(
    frame: pd.DataFrame, store: FolderImageStore, gen: dict[str, list[str]], n: int = 16
) -> str:
    """An HTML page: each image with its beam and greedy captions and its references."""
    cells = []
    for i in range(min(n, len(frame))):
        row = frame.iloc[i]
        b64 = base64.b64encode(store.read_bytes(row["path"])).decode()
        refs = "".join(f"<li>{html.escape(r)}</li>" for r in row["raw"])
        cells.append(
            f"<div class='c'><img src='data:image/jpeg;base64,{b64}'>"
            f"<p><b>beam:</b> {html.escape(gen['beam'][i])}<br>"
            f"<b>greedy:</b> {html.escape(gen['greedy'][i])}</p><ul>{refs}</ul></div>"
        )
    style = (
        "<style>body{font-family:sans-serif}.c{display:inline-block;width:300px;"
        "vertical-align:top;margin:8px}img{width:160px}</style>"
    )
    return f"<html><head>{style}</head><body><h1>Test captions</h1>{''.join(cells)}</body></html>"


def run(raw_cfg: DictConfig) -> dict[str, float]:
    cfg: CaptioningConfig = validate(raw_cfg, CaptioningConfig)
    seed_everything(cfg.seed, deterministic=False)
    if cfg.data.generate:
        ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic or {}))
    frame = read_karpathy(cfg.data.annotations, cfg.data.image_dir, cfg.data.merge_restval)
    store = FolderImageStore(cfg.data.image_dir)
    splits = {
        s: frame[frame["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")
    }
    tok = make_tokenizer(cfg, [c for caps in splits["train"]["tokens"] for c in caps])

    with tracking.start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=[cfg.data.annotations],
        tags=cfg.tracking.tags,
    ) as run:
        loaders, truncated = {}, 0
        for s, df in splits.items():
            ids = []
            for caps in df["tokens"]:
                enc, cut = encode_captions(tok, caps, cfg.data.max_len)
                ids.append(enc)
                truncated += cut
            ds = CaptionDataset(
                df,
                store,
                image_transform(cfg.data.image_size, s == "train", cfg.data.mean, cfg.data.std),
                ids,
                tok.pad_id,
                cfg.data.max_len,
                random_caption=s == "train",
            )
            loaders[s] = DataLoader(
                ds,
                batch_size=cfg.data.batch_size if s == "train" else cfg.decoding.eval_batch_size,
                shuffle=s == "train",
                num_workers=cfg.data.num_workers,
            )
        if truncated:
            log.warning(
                "%d captions longer than max_len=%d were truncated", truncated, cfg.data.max_len
            )
        tracking.log_metrics(
            {
                "captions_truncated": truncated,
                "vocab_size": tok.vocab_size,
                **{f"n_images_{s}": len(df) for s, df in splits.items()},
            }
        )

        dec = cfg.decoder
        decoder_cfg = DecoderConfig(
            vocab_size=tok.vocab_size,
            n_positions=dec.n_positions,
            n_embd=dec.n_embd,
            n_layer=dec.n_layer,
            n_head=dec.n_head,
            dropout=dec.dropout,
            cross_attention=True,
        )
        model = Captioner(cfg.encoder.name, cfg.encoder.pretrained, decoder_cfg, dec.init)
        module = CaptionModule(
            model, OmegaConf.to_container(cfg.optim), cfg.label_smoothing, cfg.encoder.freeze_epochs
        )
        with tempfile.TemporaryDirectory() as tmp:
            trainer, _ = build_trainer(cfg.trainer, default_root_dir=tmp)
            trainer.fit(module, loaders["train"], loaders["val"])

        device = "cuda" if torch.cuda.is_available() else "cpu"
        metrics: dict[str, float] = {}
        generated = {}
        for s in ("val", "test"):
            generated[s] = decode_split(model, loaders[s], tok, cfg, device)
            refs = dict(enumerate(splits[s]["raw"]))
            for how, caps in generated[s].items():
                scores = caption_scores(refs, dict(enumerate(caps)))
                suffix = "" if how == "beam" else "_greedy"
                metrics.update({f"{s}_{k}{suffix}": v for k, v in scores.items()})
        tracking.log_metrics(metrics)
        mlflow.log_text(caption_page(splits["test"], store, generated["test"]), "captions.html")
        mlflow.log_text(
            pd.DataFrame({"path": splits["test"]["path"], **generated["test"]}).to_csv(index=False),
            "test_captions.csv",
        )

        meta = {
            "encoder": cfg.encoder.name,
            "decoder": decoder_cfg.__dict__,
            "image_size": cfg.data.image_size,
            "mean": list(cfg.data.mean),
            "std": list(cfg.data.std),
            "decoding": OmegaConf.to_container(cfg.decoding),
        }
        example = pd.DataFrame(
            {"image": [base64.b64encode(store.read_bytes(splits["test"]["path"].iloc[0])).decode()]}
        )
        with tempfile.TemporaryDirectory() as tmp:
            save_bundle(Path(tmp) / "bundle", model.cpu(), tok, meta)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=CaptionModel(),
                artifacts={"bundle": str(Path(tmp) / "bundle")},
                input_example=example,
                pip_requirements=["torch", "timm", "tokenizers", "pandas"],
            )
        if cfg.tracking.register:
            version, promoted = tracking.register_if_better(
                info.model_uri, "captioning", "test_cider_d", metrics["test_cider_d"]
            )
            mlflow.set_tags({"model_version": version, "champion": str(promoted).lower()})
        mlflow.set_tag("model_uri", info.model_uri)
        log.info(
            "test BLEU-4 %.3f CIDEr-D %.3f (beam); greedy BLEU-4 %.3f CIDEr-D %.3f",
            metrics["test_bleu_4"],
            metrics["test_cider_d"],
            metrics["test_bleu_4_greedy"],
            metrics["test_cider_d_greedy"],
        )
        tracking.announce(run, "test_cider_d", metrics["test_cider_d"])
    return metrics


@hydra.main(version_base="1.3", config_path="../../configs/captioning", config_name="train")
def main(cfg: DictConfig) -> float:
    return run(cfg)["test_cider_d"]


if __name__ == "__main__":
    main()
