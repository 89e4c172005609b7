"""The demo's checks and explanations, without a browser: upload limits, GBM contributions,
highlighting, token probabilities, and the tab text of a project with no model (Grad-CAM:
tests/unit/image_classifier/test_gradcam.py)."""

from __future__ import annotations

import catboost
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from projects.tabular_gbm.model import Ensemble
from shared.config import ConfigError
from tools.demo import explain
from tools.demo.champions import Champion, describe, find_champion
from tools.demo.config import UploadConfig, load
from tools.demo.uploads import UploadError, mib, read_image

LIMITS = UploadConfig(
    max_bytes=200_000, max_pixels=1_000_000, extensions=[".png", ".jpg"], cache_delete=[1, 1]
)


def _png(path, size=(40, 30), mode="RGB") -> None:
    Image.new(mode, size, 120).save(path, format="PNG")


# --- uploads ----------------------------------------------------------------------------------


def test_a_valid_upload_decodes_to_rgb(tmp_path):
    _png(tmp_path / "lesion.png", mode="L")
    img = read_image(tmp_path / "lesion.png", LIMITS)
    assert img.mode == "RGB" and img.size == (40, 30)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png(bomb, size=(2000, 2000), mode="1")  # 4 Mpx in a few KB
    assert bomb.stat().st_size < LIMITS.max_bytes
    with pytest.raises(UploadError, match=r"bomb.png.*2000x2000.*pixel limit.*max_pixels"):
        read_image(bomb, LIMITS)


def test_a_file_over_the_byte_limit_is_refused_by_name(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(LIMITS.max_bytes))
    with pytest.raises(UploadError, match=r"'big.png' is .*bytes\), over the 0.2 MiB upload limit"):
        read_image(big, LIMITS)


def test_sizes_read_in_the_binary_units_the_limit_is_set_in():
    assert (
        mib(10 * 2**20) == "10 MiB" and mib(30 * 2**20) == "30 MiB" and mib(3 * 2**19) == "1.5 MiB"
    )


def test_a_non_image_is_rejected_with_a_message(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    with pytest.raises(UploadError, match="'notes.png' is not an image we can read"):
        read_image(fake, LIMITS)
    renamed = tmp_path / "notes.jpg"  # a text file renamed .jpg: no `<_io.BytesIO object at 0x`
    renamed.write_text("just some text")
    with pytest.raises(UploadError) as refused:
        read_image(renamed, LIMITS)
    assert "not in an image format" in str(refused.value)
    assert "object at 0x" not in str(refused.value) and "BytesIO" not in str(refused.value)
    (tmp_path / "notes.txt").write_text("text")
    with pytest.raises(UploadError, match="not an image file we accept"):
        read_image(tmp_path / "notes.txt", LIMITS)


# --- GBM contributions ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble() -> tuple[Ensemble, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "site": pd.Categorical(rng.choice(["arm", "leg", "back"], n)),
        }
    )
    y = ((X["a"] + (X["site"] == "leg") + rng.normal(scale=0.5, size=n)) > 1).astype(int)
    boosters, cats = [], []
    for seed in (1, 2):  # two bags: contributions are averaged like the scores
        params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed}
        boosters.append(lgb.train(params, lgb.Dataset(X, y), num_boost_round=20))
        Xc = X.assign(site=X["site"].astype(str))
        cb = catboost.CatBoostClassifier(
            iterations=30,
            depth=3,
            random_seed=seed,
            verbose=0,
            thread_count=1,
            allow_writing_files=False,
        )
        cats.append(cb.fit(Xc, y, cat_features=["site"]))
    return Ensemble(boosters, cats, {"lightgbm": 0.5, "catboost": 0.5}), X.head(25)


def test_contributions_sum_to_each_models_raw_score(ensemble):
    ens, X = ensemble
    contrib = explain.gbm_contributions(ens, X)
    raw = explain.gbm_raw_scores(ens, X)
    probs = ens.predict_each(X)
    for model in ("lightgbm", "catboost"):
        assert list(contrib[model].columns) == [*X.columns, "bias"]
        np.testing.assert_allclose(contrib[model].sum(axis=1), raw[model], atol=1e-6)
        # and the raw score is the model's: its sigmoid is the bag-averaged probability
        per_bag = (
            [b.predict(X, raw_score=True) for b in ens.lightgbm]
            if model == "lightgbm"
            else [
                c.predict(X.assign(site=X["site"].astype(str)), prediction_type="RawFormulaVal")
                for c in ens.catboost
            ]
        )
        np.testing.assert_allclose(
            probs[model], np.mean([1 / (1 + np.exp(-r)) for r in per_bag], axis=0), atol=1e-6
        )
    top = explain.top_contributions(contrib, 0, 2)
    assert len(top) == 2 and "bias" not in set(top["feature"])


def test_the_waterfall_adds_the_base_value_up_to_each_models_log_odds(ensemble):
    ens, X = ensemble
    contrib = explain.gbm_contributions(ens, X)
    raw = explain.gbm_raw_scores(ens, X)
    for row in (0, 3):
        wf = explain.waterfall(contrib, row, 2)
        assert list(wf["term"]) == [
            "base value",
            *wf["term"][1:3],
            "other features (1)",
            "log-odds",
        ]
        for model in ("lightgbm", "catboost"):
            steps = wf[model].to_numpy()
            assert steps[0] == pytest.approx(contrib[model]["bias"].iloc[row])  # the base
            np.testing.assert_allclose(steps[:-1].sum(), steps[-1], atol=1e-9)
            np.testing.assert_allclose(steps[-1], raw[model][row], atol=1e-6)
    page = explain.waterfall_html(wf, {"a": "Feature a (mm)"})
    assert page.count("data-value=") == 2 * len(wf) and "Feature a (mm)" in page
    explain.waterfall_figure(wf, {}).clf()


# --- captions, highlighting -------------------------------------------------------------------


def test_highlight_marks_shared_words_and_escapes_html():
    words = explain.content_words("Which crystal has a <b> lattice?", 3, ["which", "has"])
    assert words == {"crystal", "lattice"}
    out = explain.highlight("A Crystal <b>lattice</b> & ice", words)
    assert out == "A <mark>Crystal</mark> &lt;b&gt;<mark>lattice</mark>&lt;/b&gt; &amp; ice"


# --- which model a tab serves -----------------------------------------------------------------


def test_a_project_without_a_model_shows_its_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    champ = find_champion("image_classifier", "image-classifier-smoke", ["full", "smoke"])
    assert champ.model is None
    assert champ.candidates == ["image_classifier-isic2024", "image_classifier-isic2024-smoke"]
    text = describe(champ)
    assert "make image-classifier-smoke" in text
    assert "image_classifier-isic2024-smoke@champion" in text


def test_a_served_model_is_described_with_run_data_set_and_metric():
    champ = Champion(
        "captioning",
        "captioning-smoke",
        ["captioning-flickr8k"],
        name="captioning-flickr8k",
        version="3",
        run_id="abc123",
        data_set="flickr8k",
        metric="val_cider_d",
        value="0.61234",
        model=object(),
    )
    text = describe(champ)
    for part in (
        "captioning-flickr8k",
        "version 3",
        "abc123",
        "flickr8k",
        "full data",
        "val_cider_d = 0.6123",
    ):
        assert part in text


def test_config_rejects_unknown_keys_and_projects():
    assert load(["port=0"]).host == "127.0.0.1"
    with pytest.raises(ConfigError, match="'uploads.max_byts'"):
        load(["uploads.max_byts=1"])
    with pytest.raises(ConfigError, match="unknown project 'chess'"):
        load(["projects=[{name: chess, title: x, make_target: y}]"])


def test_the_app_binds_loopback_and_keeps_gradio_files_in_a_temp_folder(monkeypatch):
    import os
    import tempfile
    from pathlib import Path

    from tools.demo import app

    seen: dict = {}

    class FakeApp:
        def queue(self, **kwargs) -> None:
            pass

        def launch(self, **kwargs) -> None:
            seen.update(kwargs, temp=Path(os.environ["GRADIO_TEMP_DIR"]))
            assert seen["temp"].is_dir()

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.setattr(app, "load_champions", lambda cfg: [])
    monkeypatch.setattr(app, "build_app", lambda cfg, champions: FakeApp())
    import signal

    before = signal.getsignal(signal.SIGTERM)
    app.main(["port=0"])
    assert signal.getsignal(signal.SIGTERM) is before  # a process-wide handler left behind
    # turned every later SIGTERM into KeyboardInterrupt and stopped the whole test session
    assert seen["server_name"] == "127.0.0.1" and seen["server_port"] > 0
    assert "-refused" in seen["js"]  # the upload guard that names an oversized file
    assert seen["max_file_size"] == load().uploads.max_bytes
    assert seen["temp"].parent == Path(tempfile.gettempdir())
    assert not seen["temp"].exists()  # removed on exit


def test_sigterm_removes_the_temp_folder(monkeypatch):
    import os
    import signal
    import time
    from pathlib import Path

    from tools.demo import app

    seen: dict = {}

    class FakeApp:
        def queue(self, **kwargs) -> None:
            pass

        def launch(self, **kwargs) -> None:
            seen["temp"] = Path(os.environ["GRADIO_TEMP_DIR"])
            os.kill(os.getpid(), signal.SIGTERM)  # `kill <pid>` while the server runs
            time.sleep(5)
            raise AssertionError("SIGTERM did not stop the app")

    def unhandled(signum, frame):
        raise AssertionError("the app installs no SIGTERM handler")

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
        monkeypatch.setattr(app, "load_champions", lambda cfg: [])
        monkeypatch.setattr(app, "build_app", lambda cfg, champions: FakeApp())
        app.main(["port=0"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not seen["temp"].exists()
