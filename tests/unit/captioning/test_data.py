import json

import pytest
from PIL import Image

from projects.captioning.data import encode_captions, read_karpathy
from projects.captioning.tokenizer import train_bpe


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
    with pytest.raises(ValueError, match="val"):
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
