"""A short captioning fit via Hydra compose into a temporary store; the registered model runs."""

import base64

import mlflow
import pandas as pd

from projects.captioning.train import run
from tests.conftest import compose

TINY = [
    "experiment=smoke",
    "data.synthetic.n_train=64",
    "data.synthetic.n_val=8",
    "data.synthetic.n_test=8",
    "data.synthetic.image_size=48",
    "data.image_size=48",
    "trainer.max_epochs=2",
    "decoder.n_layer=1",
    "decoder.n_embd=32",
]


def test_short_fit_logs_scores_and_registers_a_captioner(mlflow_store, tmp_path):
    cfg = compose("captioning", [*TINY, f"paths.data_dir={tmp_path}"])
    m = run(cfg)
    for split in ("val", "test"):
        for k in ("bleu_1", "bleu_4", "cider_d"):
            assert m[f"{split}_{k}"] >= 0.0 and f"{split}_{k}_greedy" in m
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("captioning", "champion")
    arts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"captions.html", "test_captions.csv", "config.yaml"} <= arts
    model = mlflow.pyfunc.load_model("models:/captioning@champion")
    image = next((tmp_path / "smoke" / "captioning" / "images").glob("*.jpg")).read_bytes()
    out = model.predict(pd.DataFrame({"image": [base64.b64encode(image).decode()]}))
    assert len(out) == 1 and isinstance(out.iloc[0], str)
