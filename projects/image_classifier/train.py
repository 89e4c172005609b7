"""Cross-validated training of the lesion classifier; OOF scores for tabular_gbm; registry.

python -m projects.image_classifier.train experiment=smoke|full [trainer=ddp] [key=value ...]
Restart an interrupted run with the same folder: `run_dir=outputs/x resume=true`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import hydra
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from projects.image_classifier.config import ImageClassifierConfig
from projects.image_classifier.data import LesionDataModule, check_images
from projects.image_classifier.module import LesionModule
from projects.image_classifier.predict import predict_scores
from shared import tracking
from shared.config import validate
from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_synthetic import ensure_dataset
from shared.folds import FOLD_COLUMN, attach_folds, load_or_create_folds
from shared.images import HDF5ImageStore
from shared.lightning import build_trainer, is_rank_zero
from shared.logging import get_logger
from shared.metrics import pauc_above_tpr, roc_auc
from shared.plots import roc_figure
from shared.seed import seed_everything

log = get_logger(__name__)


def resolve_run_dir(cfg: ImageClassifierConfig) -> Path:
    """`run_dir` from config, else Hydra's output folder, else a fresh timestamped one."""
    if cfg.run_dir:
        return Path(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        return Path(cfg.paths.output_dir) / "image_classifier" / stamp


def load_frame(cfg: ImageClassifierConfig) -> tuple[pd.DataFrame, HDF5ImageStore]:
    """Metadata with the shared folds, checked against the HDF5 store before any training."""
    if cfg.data.generate:
        ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic or {}))
    csv, h5 = isic.train_paths(cfg.data.dir)
    if not h5.is_file():
        raise FileNotFoundError(
            f"{isic.TRAIN_HDF5} not found in {Path(cfg.data.dir).resolve()}. {isic.HOW_TO_GET}"
        )
    df = isic.read_metadata(csv, train=True)
    folds = load_or_create_folds(
        df,
        cfg.data.folds_file,
        id_col=isic.ID,
        group_col=cfg.data.group_col,
        target_col=isic.TARGET,
        n_splits=cfg.data.n_folds,
        seed=cfg.data.fold_seed,
    )
    df = attach_folds(df, folds, isic.ID)[[isic.ID, isic.PATIENT, isic.TARGET, FOLD_COLUMN]]
    store = HDF5ImageStore(h5)
    if cfg.loader.verify_images:
        df = check_images(df, store, cfg.loader.on_corrupt)
    else:
        missing = store.missing(df[isic.ID])
        if missing:
            raise KeyError(f"{len(missing)} isic_id(s) missing from {h5}: {missing[:5]}")
    return df, store


def image_grid(store: HDF5ImageStore, frame: pd.DataFrame, scores: np.ndarray, n: int = 16):
    """The highest-scored validation images and every positive, titled with score and label."""
    order = np.argsort(-scores)
    pos = np.flatnonzero(frame[isic.TARGET].to_numpy() == 1)
    pick = list(dict.fromkeys([*order[: n // 2], *pos[: n // 2], *order[-(n // 4) :]]))[:n]
    cols = 4
    fig, axes = plt.subplots(
        (len(pick) + cols - 1) // cols, cols, figsize=(8, 2.2 * len(pick) / cols + 1)
    )
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), pick):
        row = frame.iloc[i]
        ax.imshow(store.read(row[isic.ID]))
        ax.set_title(
            f"{scores[i]:.2f} (y={row[isic.TARGET]})",
            fontsize=8,
            color="tab:red" if row[isic.TARGET] else "black",
        )
    fig.tight_layout()
    return fig


class _State:
    """What a restarted run needs (run_dir/state.json): MLflow run ids, which folds are done."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if resume and path.is_file() else {"folds": {}}

    def fold(self, k: int) -> dict:
        return self.data["folds"].setdefault(str(k), {})

    def save(self) -> None:
        if is_rank_zero():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1))


def run(raw_cfg: DictConfig, callbacks: list[Callback] | None = None) -> dict[str, float]:
    """Train every fold, write the OOF file, log and register; returns the summary metrics."""
    cfg: ImageClassifierConfig = validate(raw_cfg, ImageClassifierConfig)
    seed_everything(cfg.seed, deterministic=False)
    torch.set_float32_matmul_precision("high")
    run_dir = resolve_run_dir(cfg)
    if cfg.resume and not (run_dir / "state.json").is_file():
        log.warning("resume=true but %s has no state.json: starting afresh", run_dir)
    state = _State(run_dir / "state.json", cfg.resume)
    frame, store = load_frame(cfg)
    folds = list(cfg.cv.folds) if cfg.cv.folds is not None else sorted(frame[FOLD_COLUMN].unique())
    log.info(
        "%d images, %d positives, folds %s, run dir %s",
        len(frame),
        int(frame[isic.TARGET].sum()),
        folds,
        run_dir,
    )

    with tracking.start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=[
            Path(cfg.data.dir) / isic.TRAIN_CSV,
            Path(cfg.data.dir) / isic.TRAIN_HDF5,
            Path(cfg.data.folds_file),
        ],
        tags=cfg.tracking.tags,
        run_id=state.data.get("run_id"),
    ) as run:
        if run is not None:
            state.data["run_id"] = run.info.run_id
            state.save()
            tracking.log_metrics(
                {
                    "n_corrupt_skipped": frame.attrs.get("n_corrupt_skipped", 0),
                    "neg_per_pos": cfg.loader.sampling.neg_per_pos,
                }
            )
        parts, best_paths = [], {}
        for k in folds:
            fs = state.fold(k)
            fold_dir = run_dir / f"fold_{k}"
            if fs.get("done"):
                log.info("fold %d already done (resume): reading its OOF part", k)
                parts.append(pd.read_csv(fold_dir / "oof.csv"))
                best_paths[k] = fs["best_checkpoint"]
                continue
            with tracking.start_run(
                cfg.tracking.experiment,
                run_name=f"fold_{k}",
                nested=True,
                tags={"fold": str(k)},
                run_id=fs.get("run_id"),
            ) as frun:
                if frun is not None:
                    fs["run_id"] = frun.info.run_id
                    state.save()
                dm = LesionDataModule(frame, k, store, cfg.loader, cfg.seed + k)
                module = LesionModule(
                    OmegaConf.to_container(cfg.model),
                    OmegaConf.to_container(cfg.optim),
                    cfg.cv.min_tpr,
                )
                trainer, ckpt = build_trainer(
                    cfg.trainer,
                    default_root_dir=str(fold_dir),
                    monitor="val_pauc",
                    mode="max",
                    patience=cfg.early_stopping_patience,
                    extra_callbacks=callbacks,
                )
                last = fold_dir / "checkpoints" / "last.ckpt"
                resume_from = str(last) if cfg.resume and last.is_file() else None
                if resume_from:
                    log.info("fold %d: resuming from %s", k, last)
                trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
                if not is_rank_zero():
                    continue
                best = LesionModule.load_from_checkpoint(ckpt.best_model_path, map_location="cpu")
                val_loader = DataLoader(
                    dm.val_dataloader().dataset, batch_size=cfg.loader.batch_size
                )
                device = "cuda" if torch.cuda.is_available() else "cpu"
                scores = predict_scores(best.model, val_loader, cfg.cv.tta, device)
                part = dm.val_df.assign(score=scores)[[isic.ID, FOLD_COLUMN, isic.TARGET, "score"]]
                y = part[isic.TARGET].to_numpy()
                fold_metrics = {
                    "best_val_pauc": pauc_above_tpr(y, scores, cfg.cv.min_tpr),
                    "best_val_roc_auc": roc_auc(y, scores),
                    "best_epoch": float(
                        torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)[
                            "epoch"
                        ]
                    ),
                }
                tracking.log_metrics(fold_metrics)
                mlflow.log_figure(image_grid(store, dm.val_df, scores), "val_images.png")
                log.info(
                    "fold %d: val ROC-AUC %.4f, pAUC %.4f",
                    k,
                    fold_metrics["best_val_roc_auc"],
                    fold_metrics["best_val_pauc"],
                )
                part.to_csv(fold_dir / "oof.csv", index=False)
                parts.append(part)
                best_paths[k] = fs["best_checkpoint"] = ckpt.best_model_path
                fs["best_val_roc_auc"] = fold_metrics["best_val_roc_auc"]
                fs["done"] = True
                state.save()
        if run is None:  # DDP worker: rank 0 writes and logs the results
            return {}

        oof = pd.concat(parts, ignore_index=True)
        y, s = oof[isic.TARGET].to_numpy(), oof["score"].to_numpy()
        fold_aucs = [state.fold(k)["best_val_roc_auc"] for k in folds]
        summary = {
            "oof_roc_auc": roc_auc(y, s),
            "oof_pauc": pauc_above_tpr(y, s, cfg.cv.min_tpr),
            "fold_val_roc_auc_mean": float(np.mean(fold_aucs)),  # mean of each fold's best
            "fold_val_roc_auc_std": float(np.std(fold_aucs)),
            "n_folds_done": float(len(parts)),
        }
        oracle = isic.read_oracle(cfg.data.dir)
        if oracle is not None:
            p = oof[[isic.ID]].merge(oracle, on=isic.ID, how="left")["true_probability"].to_numpy()
            summary["oracle_roc_auc"] = roc_auc(y, p)
            summary["oracle_pauc"] = pauc_above_tpr(y, p, cfg.cv.min_tpr)
        tracking.log_metrics(summary)
        oof_path = Path(cfg.oof_file)
        oof_path.parent.mkdir(parents=True, exist_ok=True)
        oof[[isic.ID, FOLD_COLUMN, "score"]].to_csv(oof_path, index=False)
        mlflow.log_artifact(str(oof_path), artifact_path="oof")
        mlflow.set_tag("oof_file", str(oof_path.resolve()))
        mlflow.log_figure(roc_figure({"image OOF": (y, s)}, cfg.cv.min_tpr), "roc_curve.png")

        first = folds[0]
        model = LesionModule.load_from_checkpoint(
            best_paths[first], map_location="cpu"
        ).model.eval()
        example = np.zeros((1, 3, cfg.loader.image_size, cfg.loader.image_size), np.float32)
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            input_example=example,
            serialization_format="pickle",
            pip_requirements=["torch", "timm"],
        )
        mlflow.set_tags({"model_uri": info.model_uri, "model_fold": str(first)})
        if cfg.tracking.register:
            version, promoted = tracking.register_if_better(
                info.model_uri, "image_classifier", "oof_roc_auc", summary["oof_roc_auc"]
            )
            mlflow.set_tags({"model_version": version, "champion": str(promoted).lower()})
        tracking.announce(run, "oof_roc_auc", summary["oof_roc_auc"])
        log.info("OOF scores for tabular_gbm: data.image_oof=%s", oof_path)
    return summary


@hydra.main(version_base="1.3", config_path="../../configs/image_classifier", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg).get("oof_roc_auc")


if __name__ == "__main__":
    main()
