"""tabular_gbm at the real data set's size: feature time, peak memory, fit time vs bare LightGBM.

python benchmarks/tabular_gbm.py [--rows 401059] [--rounds 200]
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lightgbm as lgb  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from benchmarks._util import report, timed  # noqa: E402
from projects.tabular_gbm.config import ModelConfig  # noqa: E402
from projects.tabular_gbm.features import build_features, fit_spec  # noqa: E402
from projects.tabular_gbm.model import undersample  # noqa: E402
from shared.datasets import isic2024 as isic  # noqa: E402
from shared.datasets.isic2024_synthetic import generate_metadata  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=401_059)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    lesions_per_patient = 385  # ~401k lesions over ~1,042 patients, as in ISIC 2024
    df = generate_metadata(
        args.rows // lesions_per_patient + 20, lesions_per_patient, 0.001, seed=0
    ).head(args.rows)
    df = df[[c for c in isic.TRAIN_COLUMNS if c in df.columns]]
    for c in isic.CATEGORICAL:
        df[c] = df[c].astype("string")
    spec = fit_spec(df)

    tracemalloc.start()
    t_feat, X = timed(lambda: build_features(df, spec))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    y = df[isic.TARGET].to_numpy()

    cfg = OmegaConf.merge(
        OmegaConf.structured(ModelConfig),
        OmegaConf.load("configs/tabular_gbm/model/lgbm_catboost.yaml"),
    )
    params = {**dict(cfg.lightgbm.params), "seed": 0, "deterministic": True}
    t_bare, _ = timed(lambda: lgb.train(params, lgb.Dataset(X, y), num_boost_round=args.rounds))

    def pipeline_fit():
        idx = undersample(y, cfg.neg_ratio, 0)
        return lgb.train(params, lgb.Dataset(X.iloc[idx], y[idx]), num_boost_round=args.rounds)

    t_pipe, _ = timed(pipeline_fit)
    report(
        f"tabular_gbm: {len(df):,} rows, {X.shape[1]} features, {args.rounds} rounds",
        [
            ("feature engineering", f"{t_feat:.2f} s ({len(df) / t_feat:,.0f} rows/s)"),
            ("features peak memory (tracemalloc)", f"{peak / 2**20:,.0f} MiB"),
            ("bare lightgbm.train, all rows", f"{t_bare:.2f} s"),
            (f"pipeline LightGBM fit (neg_ratio={cfg.neg_ratio:g})", f"{t_pipe:.2f} s"),
            ("pipeline / bare", f"{t_pipe / t_bare:.3f}x"),
        ],
    )


if __name__ == "__main__":
    main()
