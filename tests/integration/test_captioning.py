"""A short captioning fit via Hydra compose into a temporary store; the registered model runs."""

import base64
from pathlib import Path

import mlflow
import pandas as pd

from projects.captioning import predict as predict_mod
from projects.captioning.train import run

MODEL = "models:/captioning-scenes-smoke@champion"


def test_short_fit_logs_scores_and_registers_a_captioner(tiny):
    cfg = tiny("captioning")
    m = run(cfg)
    for split in ("val", "test"):
        for k in ("bleu_1", "bleu_4", "cider_d"):
            assert m[f"{split}_{k}"] >= 0.0 and f"{split}_{k}_greedy" in m
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("captioning-scenes-smoke", "champion")
    arts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"captions.html", "test_captions.csv", "config.yaml"} <= arts
    model = mlflow.pyfunc.load_model(MODEL)
    path = next(Path(cfg.data.image_dir).glob("*.jpg"))
    out = model.predict(pd.DataFrame({"image": [base64.b64encode(path.read_bytes()).decode()]}))
    assert len(out) == 1 and isinstance(out.iloc[0], str)
    cli = predict_mod.main([str(path), "--model-uri", MODEL])
    assert cli["caption"].tolist() == out.tolist()
