"""Cross-validated training of the lesion classifier; OOF scores for tabular_gbm; registry.

python -m projects.image_classifier.train experiment=smoke|full [trainer=ddp] [key=value ...]
Restart an interrupted run with the same folder and config: `run_dir=outputs/x resume=true`.
A run on some folds (`cv.folds=[0]`) or marked `partial=true` writes its OOF scores to its run
folder and registers nothing: only complete runs replace `oof_file` or compete for champion.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from projects.image_classifier import pyfunc
from projects.image_classifier.config import ImageClassifierConfig
from projects.image_classifier.data import (
    build_transforms,
    check_options,
    check_trunk_cache,
    load_lesions,
)
from projects.image_classifier.model import (
    LesionClassifier,
    oof_summary,
    trunk_features,
    with_backbone_preprocessing,
)
from projects.image_classifier.module import fit_folds, oof_lesion_focus
from projects.image_classifier.pyfunc import build_bundle, pick_examples
from projects.image_classifier.report import log_oof
from projects.image_classifier.state import open_state, resolve_run_dir
from shared import tracking
from shared.cli import hydra_entry
from shared.config import to_dict, validate
from shared.datasets import isic2024 as isic
from shared.folds import scored_folds
from shared.logging import get_logger

log = get_logger(__name__)


def run(raw_cfg: DictConfig, callbacks: list[Callback] | None = None) -> dict[str, float]:
    """Train every fold, write the OOF file, log and register; returns the summary metrics."""
    cfg: ImageClassifierConfig = with_backbone_preprocessing(
        validate(raw_cfg, ImageClassifierConfig)
    )
    check_options(cfg.loader.sampling.mode, cfg.cv.selection, cfg.cv.inner_fraction)
    check_trunk_cache(cfg)
    folds = scored_folds(cfg.data.n_folds, cfg.cv.folds, cfg.data.holdout_fold)
    every = scored_folds(cfg.data.n_folds, None, cfg.data.holdout_fold)
    partial = cfg.partial or folds != every  # no shared OOF file, no registry
    torch.set_float32_matmul_precision("high")
    run_dir = resolve_run_dir(cfg.run_dir, cfg.paths.output_dir, "image_classifier")
    scan_root = None if cfg.run_dir else Path(cfg.paths.output_dir) / "image_classifier"
    state = open_state(run_dir, to_dict(cfg), cfg.resume, scan_root)
    frame, store, images = load_lesions(cfg.data, cfg.loader, cfg.paths.cache_dir)
    oof_file = run_dir / "oof.csv" if partial else Path(cfg.oof_file)
    n_pos = frame[isic.TARGET].sum()
    log.info("%d images, %d positives, folds %s, run dir %s", len(frame), n_pos, folds, run_dir)
    data_files = [isic.TRAIN_CSV, isic.TRAIN_HDF5]
    with tracking.start_pipeline_run(
        cfg,
        [*(Path(cfg.data.dir) / f for f in data_files), Path(cfg.data.folds_file)],
        tags={"partial": str(partial).lower()},
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
        trunk = None
        if cfg.loader.trunk_cache:  # the frozen trunk, once per image for every fold
            model = LesionClassifier(**to_dict(cfg.model))
            transform = build_transforms(cfg.loader.augment, cfg.loader.image_size, train=False)
            ids = frame[isic.ID].tolist()
            trunk = trunk_features(model, images, ids, transform, cfg.loader.batch_size)
        parts, fold_aucs, best_paths = fit_folds(
            cfg, frame, images, folds, run_dir, state, callbacks, trunk
        )
        if run is None:  # DDP worker: rank 0 writes and logs the results
            return {}

        oof = pd.concat(parts, ignore_index=True)
        # float64 in the file and in the bundle alike: the GBM's training feature and the
        # served model's percentiles then rank against the very same numbers
        oof["score"] = oof["score"].astype("float64")
        oracle = isic.read_oracle(cfg.data.dir)  # generated data: true probabilities, discs
        summary = oof_summary(oof, fold_aucs, cfg.cv.min_tpr, oracle)
        summary.update(oof_lesion_focus(cfg, oof, images, best_paths, folds, oracle))
        tracking.log_metrics(summary)
        log_oof(oof, oof_file, cfg.cv.min_tpr)
        examples = pick_examples(oof)  # the demo's lesions: top malignant ones, one benign
        bundle = build_bundle(run_dir / "bundle", best_paths, cfg, folds, oof, examples)
        tracking.publish(
            run,
            OmegaConf.merge(cfg.tracking, {"register": cfg.tracking.register and not partial}),
            summary,
            **pyfunc.package(bundle, store, examples[isic.ID].tolist()),
        )
        state.data["finished"] = True
        state.save()
        if partial:
            log.info("partial run: OOF scores in %s, nothing registered", oof_file)
        else:
            log.info("OOF scores for tabular_gbm: data.image_oof=%s", oof_file)
    return summary


main = hydra_entry(run, "image_classifier")

if __name__ == "__main__":
    main()
