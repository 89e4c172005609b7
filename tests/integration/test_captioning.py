"""Captioning fits via Hydra compose into a temporary store: the champion is chosen on val, the
registered model runs, and a longer fit beats the most common training caption."""

import base64
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from projects.captioning import predict as predict_mod
from projects.captioning.synthetic import ensure_dataset
from projects.captioning.train import run
from shared.errors import InputError

MODEL = "models:/captioning-scenes-smoke@champion"
# Enough scenes and steps for the smoke model (frozen EfficientNet-Lite0 at 160 px, the 2-layer
# decoder) to read colours, shapes, places and relations.
LEARNS = (
    "data.synthetic.n_train=800",
    "data.synthetic.n_val=48",
    "data.synthetic.n_test=48",
    "data.synthetic.image_size=96",
    "data.image_size=160",
    "data.batch_size=16",
    "decoder.n_embd=128",
    "decoder.n_layer=2",
    "trainer.max_epochs=10",
)


def test_short_fit_registers_a_captioner_chosen_on_val(tiny):
    cfg = tiny("captioning")
    m = run(cfg)
    assert 0 <= m["best_epoch"] < cfg.trainer.max_epochs
    assert {"val_cider_d", "test_cider_d", "test_cider_d_greedy", "test_bleu_4"} <= set(m)
    assert {"val_grounding", "test_grounding", "test_grounding_greedy"} <= set(m)  # generated
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("captioning-scenes-smoke", "champion")
    assert cfg.select == "grounding" and cfg.tracking.headline_metric == "val_grounding"
    assert "best_epoch_val_grounding" in m  # the checkpoint followed val grounding
    assert float(version.tags["val_grounding"]) == pytest.approx(m["val_grounding"])  # not test's
    arts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"captions.html", "test_captions.csv", "config.yaml", "preprocessing.json"} <= arts
    model = mlflow.pyfunc.load_model(MODEL)
    path = next(Path(cfg.data.image_dir).glob("*.jpg"))
    out = model.predict(pd.DataFrame({"image": [base64.b64encode(path.read_bytes()).decode()]}))
    assert len(out) == 1 and isinstance(out[0], str)
    cli = predict_mod.main([str(path), "--model-uri", MODEL])
    assert cli["caption"].tolist() == list(out)


def test_corrupt_image_fails_before_any_training_naming_it(tiny):
    cfg = tiny("captioning", "data.synthetic.seed=1")
    ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic))
    (Path(cfg.data.image_dir) / "scene_00003.jpg").write_bytes(b"\xff\xd8 truncated")
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(InputError, match="scene_00003.jpg"):
        run(cfg)
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before  # no run, no fit


@pytest.mark.slow
def test_beam_captions_say_what_is_drawn(tiny):
    """Not only a CIDEr-D above the most common caption's: the captions are true of the scenes
    (the generator knows what it drew), where the most common caption never is."""
    m = run(tiny("captioning", *LEARNS))
    assert m["test_cider_d"] > m["test_cider_d_baseline"] + 2.0
    assert m["test_grounding"] >= 0.85 and m["val_grounding"] >= 0.85
    assert m["test_grounding_baseline"] <= 0.05
