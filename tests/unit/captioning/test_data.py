import json

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from projects.captioning.data import (
    check_images,
    encode_captions,
    most_common_caption,
    read_karpathy,
)
from projects.captioning.model import ImageEncoder
from projects.captioning.tokenizer import train_bpe
from shared.errors import InputError
from shared.images import FolderImageStore
from shared.pretrained import resolve_preprocessing


def _karpathy(tmp_path, splits=("train", "val", "test"), coco=False, skip_file=None):
    images = []
    for i, split in enumerate(splits):
        name = f"im_{i}.jpg"
        folder = tmp_path / "imgs" / ("val2014" if coco else "")
        folder.mkdir(parents=True, exist_ok=True)
        if name != skip_file:
            Image.new("RGB", (8, 8)).save(folder / name)
        entry = {
            "filename": name,
            "imgid": i,
            "split": split,
            "sentids": [i],
            "sentences": [{"tokens": ["a", "cat"], "raw": "A cat.", "imgid": i, "sentid": i}],
        }
        if coco:
            entry.update(filepath="val2014", cocoid=1000 + i)
        images.append(entry)
    path = tmp_path / "dataset_test.json"
    path.write_text(json.dumps({"dataset": "test", "images": images}))
    return path, tmp_path / "imgs"


def test_reads_flickr_layout(tmp_path):
    ann, root = _karpathy(tmp_path)
    df = read_karpathy(ann, root)
    assert df["split"].tolist() == ["train", "val", "test"]
    assert df["raw"].iloc[0] == ["A cat."] and df["tokens"].iloc[0] == ["a cat"]


def test_reads_coco_layout_and_merges_restval(tmp_path):
    ann, root = _karpathy(tmp_path, splits=("train", "restval", "val", "test"), coco=True)
    df = read_karpathy(ann, root)
    assert df["path"].iloc[0] == "val2014/im_0.jpg"
    assert df["split"].tolist() == ["train", "train", "val", "test"]
    assert df["image_id"].iloc[0] == 1000


def test_missing_split_fails_naming_it(tmp_path):
    ann, root = _karpathy(tmp_path, splits=("train", "test"))
    with pytest.raises(InputError, match="val"):
        read_karpathy(ann, root)


def test_missing_image_fails_naming_it(tmp_path):
    ann, root = _karpathy(tmp_path, skip_file="im_1.jpg")
    with pytest.raises(FileNotFoundError, match="im_1.jpg"):
        read_karpathy(ann, root)


def test_bpe_round_trip_and_truncation_count():
    tok = train_bpe(["a red circle on the left", "a blue square on the right"] * 20, 300)
    ids = tok.encode("a red circle on the right")
    assert tok.decode(ids) == "a red circle on the right"
    enc, cut = encode_captions(tok, ["a red circle on the left", "a"], max_len=3)
    assert cut == 1 and len(enc[0]) == 4 and enc[0][0] == tok.bos_id
    assert enc[1][-1] == tok.eos_id


def test_malformed_json_fails_naming_the_file_line_and_column(tmp_path):
    ann, root = _karpathy(tmp_path)
    text = ann.read_text()
    ann.write_text(text[:-40])  # cut off mid-entry, as an interrupted download leaves it
    with pytest.raises(
        InputError, match=r"dataset_test\.json: not valid JSON at line 1 column \d+"
    ):
        read_karpathy(ann, root)


def test_entry_without_sentences_fails_naming_its_index(tmp_path):
    ann, root = _karpathy(tmp_path)
    data = json.loads(ann.read_text())
    del data["images"][2]["sentences"]
    ann.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"dataset_test\.json: images\[2\].*sentences"):
        read_karpathy(ann, root)


def test_corrupt_image_fails_naming_its_path_or_is_skipped_with_a_count(tmp_path):
    ann, root = _karpathy(tmp_path)
    (root / "im_1.jpg").write_bytes(b"not a jpeg")
    frame, store = read_karpathy(ann, root), FolderImageStore(root)
    with pytest.raises(InputError, match="im_1.jpg"):
        check_images(frame, store, "fail")
    kept = check_images(frame, store, "skip")
    assert kept["path"].tolist() == ["im_0.jpg", "im_2.jpg"]
    assert kept.attrs["n_corrupt_skipped"] == 1
    with pytest.raises(InputError, match="data.on_corrupt"):
        check_images(frame, store, "ignore")


def _data_cfg(**overrides):
    base = {"image_size": None, "interpolation": None, "mean": None, "std": None}
    return OmegaConf.create({**base, **overrides})


@pytest.fixture(scope="module")
def encoder_configs():
    """Pretrained configs of real timm encoders, built on the meta device (no weights, fast)."""
    with torch.device("meta"):
        return {n: ImageEncoder(n, False, 8).data_config() for n in ("resnet50", "inception_v3")}


def test_preprocessing_follows_the_encoder(encoder_configs):
    resnet = resolve_preprocessing(encoder_configs["resnet50"], _data_cfg())
    assert resnet["image_size"] == 224 and resnet["interpolation"] == "bicubic"
    assert resnet["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert resnet["std"] == pytest.approx([0.229, 0.224, 0.225])
    inception = resolve_preprocessing(encoder_configs["inception_v3"], _data_cfg())
    assert inception["image_size"] == 299 and inception["mean"] == pytest.approx([0.5] * 3)


def test_config_still_overrides_the_encoders_preprocessing(encoder_configs):
    pre = resolve_preprocessing(
        encoder_configs["resnet50"], _data_cfg(image_size=96, mean=[0.5, 0.5, 0.5])
    )
    assert pre["image_size"] == 96 and pre["mean"] == [0.5, 0.5, 0.5]
    assert pre["std"] == pytest.approx([0.229, 0.224, 0.225])  # null: still the encoder's


def test_fixed_size_vit_given_another_size_fails_at_start_up():
    with torch.device("meta"):
        vit = ImageEncoder("vit_tiny_patch16_224", False, 8)
    vit.check_input_size(224)
    with pytest.raises(InputError, match="data.image_size"):
        vit.check_input_size(96)


def test_most_common_caption_is_the_training_splits_mode():
    frame = pd.DataFrame(
        {
            "split": ["train", "train", "val"],
            "tokens": [["a cat", "a dog"], ["a dog"], ["a cat", "a cat", "a cat"]],
        }
    )
    assert most_common_caption(frame) == "a dog"  # the val split's captions do not count
