"""Cross-validated training of the lesion classifier; OOF scores for tabular_gbm; registry.

python -m projects.image_classifier.train experiment=smoke|full [trainer=ddp] [key=value ...]
Restart an interrupted run with the same folder: `run_dir=outputs/x resume=true`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from projects.image_classifier.config import ImageClassifierConfig
from projects.image_classifier.data import load_lesions
from projects.image_classifier.model import oof_summary
from projects.image_classifier.module import fit_fold
from projects.image_classifier.pyfunc import LesionScorer, build_bundle, input_example
from projects.image_classifier.report import log_oof
from projects.image_classifier.state import RunState, resolve_run_dir
from shared import tracking
from shared.cli import hydra_entry
from shared.config import validate
from shared.datasets import isic2024 as isic
from shared.folds import FOLD_COLUMN
from shared.lightning import is_rank_zero
from shared.logging import get_logger
from shared.metrics import roc_auc
from shared.seed import seed_everything

log = get_logger(__name__)


def run(raw_cfg: DictConfig, callbacks: list[Callback] | None = None) -> dict[str, float]:
    """Train every fold, write the OOF file, log and register; returns the summary metrics."""
    cfg: ImageClassifierConfig = validate(raw_cfg, ImageClassifierConfig)
    seed_everything(cfg.seed, deterministic=False)
    torch.set_float32_matmul_precision("high")
    run_dir = resolve_run_dir(cfg.run_dir, cfg.paths.output_dir, "image_classifier")
    if cfg.resume and not (run_dir / "state.json").is_file():
        log.warning("resume=true but %s has no state.json: starting afresh", run_dir)
    state = RunState(run_dir / "state.json", cfg.resume)
    frame, store = load_lesions(cfg.data, cfg.loader)
    every_fold = sorted(int(k) for k in frame[FOLD_COLUMN].unique())
    folds = list(cfg.cv.folds) if cfg.cv.folds is not None else every_fold
    log.info(
        "%d images, %d positives, folds %s, run dir %s",
        len(frame),
        frame[isic.TARGET].sum(),
        folds,
        run_dir,
    )
    data_files = [isic.TRAIN_CSV, isic.TRAIN_HDF5]
    with tracking.start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=[*(Path(cfg.data.dir) / f for f in data_files), Path(cfg.data.folds_file)],
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
        parts, fold_aucs, best_paths = [], [], []
        for k in folds:
            fs, fold_dir = state.fold(k), run_dir / f"fold_{k}"
            if fs.get("done"):
                log.info("fold %d already done (resume): reading its OOF part", k)
                part = pd.read_csv(fold_dir / "oof.csv")
            else:
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
                    part, fs["best_checkpoint"] = fit_fold(
                        cfg, frame, store, k, fold_dir, callbacks
                    )
                if not is_rank_zero():
                    continue
                fs.update(done=True, best_val_roc_auc=roc_auc(part[isic.TARGET], part["score"]))
                state.save()
            parts.append(part)
            fold_aucs.append(fs["best_val_roc_auc"])
            best_paths.append(fs["best_checkpoint"])
        if run is None:  # DDP worker: rank 0 writes and logs the results
            return {}

        oof = pd.concat(parts, ignore_index=True)
        summary = oof_summary(oof, fold_aucs, cfg.cv.min_tpr, isic.read_oracle(cfg.data.dir))
        tracking.log_metrics(summary)
        log_oof(oof, cfg.oof_file, cfg.cv.min_tpr)
        tracking.publish(
            run,
            cfg.tracking,
            summary,
            python_model=LesionScorer(),
            artifacts={"bundle": str(build_bundle(run_dir / "bundle", best_paths, cfg, folds))},
            input_example=input_example(store, oof[isic.ID].iloc[0]),
            pip_requirements=["torch", "torchvision", "timm", "pillow", "pandas"],
        )
        log.info("OOF scores for tabular_gbm: data.image_oof=%s", cfg.oof_file)
    return summary


main = hydra_entry(run, "image_classifier")

if __name__ == "__main__":
    main()
