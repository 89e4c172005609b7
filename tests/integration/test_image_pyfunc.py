"""The registered image model scores an image exactly as the training pipeline's validation
step did, and its `image_score` feature depends on the image alone (issue 12).

One complete tiny run (2 folds, 1 epoch, flip TTA as in the full config) is trained once; the
pyfunc is loaded from the run's logged model and fed images decoded from the same HDF5 bytes,
sent as base64 as a REST client would.
"""

import base64
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from projects.image_classifier import predict as predict_mod
from projects.image_classifier.train import run
from shared.datasets import isic2024 as isic
from shared.image_feature import pixel_key
from shared.images import HDF5ImageStore, decode_image
from shared.metrics import reference_percentile

PER_IMAGE = 4  # held-out images checked per fold model
pytestmark = pytest.mark.slow  # one complete (2-fold) training run, about a minute on CPU


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image_pyfunc")
    cfg = tiny(
        "image_classifier",
        "data.n_folds=2",
        f"data.folds_file={tmp / 'folds.csv'}",
        f"oof_file={tmp / 'oof.csv'}",
        "cv.folds=null",
        "partial=false",
        "trainer.max_epochs=1",
        "cv.tta=true",  # the image path with flip TTA (full config), not the smoke trunk cache
        "loader.trunk_cache=false",
        f"run_dir={tmp / 'run'}",
    )
    run(cfg)
    run_id = json.loads((tmp / "run" / "state.json").read_text())["run_id"]
    uri = mlflow.MlflowClient().get_run(run_id).data.tags["model_uri"]
    model = mlflow.pyfunc.load_model(uri)
    store = HDF5ImageStore(Path(cfg.data.dir) / isic.TRAIN_HDF5)
    oof = pd.read_csv(cfg.oof_file, dtype={isic.ID: str})
    return model, model.unwrap_python_model(), oof, store, uri


def _frame(store, ids) -> pd.DataFrame:
    return pd.DataFrame({"image": [base64.b64encode(store.read_bytes(i)).decode() for i in ids]})


def _predict(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's records (`score`, `image_score` per image) as a frame."""
    return pd.DataFrame(model.predict(frame))


def _decoded(store, ids):
    """The bytes a client would send: HDF5 bytes -> base64 -> bytes -> image."""
    return [decode_image(base64.b64decode(b), i) for i, b in zip(ids, _frame(store, ids).image)]


def test_each_fold_model_scores_its_held_out_images_as_the_validation_step_did(trained):
    _, scorer, oof, store, _ = trained
    folds = scorer.meta["folds"]
    assert scorer.meta["tta"] is True and len(folds) == 2
    for m, k in enumerate(folds):
        held = oof[oof["fold"] == k].head(PER_IMAGE)
        got = scorer.score_images(_decoded(store, held["isic_id"].tolist()), per_model=True)[m]
        assert np.abs(got - held["score"].to_numpy()).max() < 1e-5, k


def test_the_feature_is_one_models_percentile_within_its_own_oof_scores(trained):
    model, scorer, oof, store, _ = trained
    ids = oof["isic_id"].head(6).tolist()
    out = _predict(model, _frame(store, ids))
    each = scorer.score_images(_decoded(store, ids), per_model=True)
    for m, k in enumerate(scorer.meta["folds"]):  # the bundle holds each fold's OOF scores
        np.testing.assert_array_equal(
            scorer.references[m], np.sort(oof.loc[oof["fold"] == k, "score"].to_numpy())
        )
    images = _decoded(store, ids)
    chosen = [pixel_key(np.asarray(img.convert("RGB"))) % len(scorer.references) for img in images]
    expected = [
        reference_percentile(scorer.references[m], each[m, i : i + 1])[0]
        for i, m in enumerate(chosen)
    ]
    assert list(out.columns) == ["score", "image_score"]
    as_records = _predict(model, _frame(store, ids).to_dict(orient="records"))
    np.testing.assert_allclose(as_records.to_numpy(), out.to_numpy(), atol=1e-7)
    np.testing.assert_allclose(out["image_score"], expected, atol=1e-12)
    np.testing.assert_allclose(out["score"], each.mean(0), atol=1e-7)
    assert out["image_score"].between(0, 1).all()


def test_an_image_gets_the_same_feature_alone_and_in_any_batch(trained):
    model, _, oof, store, _ = trained
    ids = oof["isic_id"].head(8).tolist()
    together = _predict(model, _frame(store, ids))
    shuffled_ids = list(np.random.default_rng(0).permutation(ids))
    shuffled = _predict(model, _frame(store, shuffled_ids)).set_index(pd.Index(shuffled_ids))
    # These training images' scores are members of the references, where the mid-rank percentile
    # steps by 1/(2n): a last-bit change of a score between batch sizes may move the feature by
    # that much and no more (ranking within the batch would move it by up to 1/2).
    tol = 1.0 / oof.groupby("fold").size().min()
    for i, image_id in enumerate(ids[:3]):
        alone = _predict(model, _frame(store, [image_id]))
        assert alone["image_score"].iloc[0] == pytest.approx(together["image_score"][i], abs=tol)
        assert alone["score"].iloc[0] == pytest.approx(together["score"][i], abs=1e-6)
    np.testing.assert_allclose(shuffled.loc[ids, "image_score"], together["image_score"], atol=tol)


def test_predict_cli_writes_score_and_feature_for_tabular_gbm(trained, tmp_path):
    model, _, oof, store, uri = trained
    ids = oof["isic_id"].head(5).tolist()
    data = tmp_path / "data"
    data.mkdir()
    src = pd.read_csv(Path(store.path).parent / isic.TRAIN_CSV, dtype={isic.ID: str})
    src[src[isic.ID].isin(ids)].to_csv(data / "test-metadata.csv", index=False)
    import h5py

    with h5py.File(data / "test-image.hdf5", "w") as f:
        for i in ids:
            f.create_dataset(i, data=np.bytes_(store.read_bytes(i)))
    out = predict_mod.main(
        ["--data-dir", str(data), "--output", str(tmp_path / "s.csv"), "--model-uri", uri]
    )
    written = pd.read_csv(out).set_index(isic.ID).loc[ids]
    assert list(written.columns) == ["target", "score", "image_score"]
    expected = _predict(model, _frame(store, ids))
    np.testing.assert_allclose(written["image_score"], expected["image_score"], atol=1e-9)
    np.testing.assert_allclose(written["score"], expected["score"], atol=1e-6)
