"""Damaged index-store files: every stage folder carries a manifest (size, sha256 of each file);
training rebuilds a damaged cached stage with a warning naming the file, serving refuses it with
an InputError naming the folder, the file and what differs."""

import logging
import shutil
from pathlib import Path

import pytest

from projects.retrieval_qa.config import RetrievalQAConfig
from projects.retrieval_qa.pipeline import INDEX_STORE_ENV, Retriever, build_retriever
from projects.retrieval_qa.retrieval import VECTORS_FILE
from projects.retrieval_qa.store import (
    MANIFEST,
    StoreDamagedError,
    publish_index,
    verify_stage,
    write_manifest,
)
from shared.config import validate
from shared.errors import InputError

# One file of each kind: the passage text, the FAISS index, the float16 vectors, BM25's scores.
DAMAGED = [
    ("passages", "text.bin"),
    ("dense", "dense.faiss"),
    ("dense", VECTORS_FILE),
    ("bm25", "bm25/data.csc.index.npy"),
]
IDS = [name.split("/")[-1] for _, name in DAMAGED]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _copy_store(built, tmp_path: Path) -> Path:
    cfg = built[0]
    return Path(shutil.copytree(cfg.cache_dir, tmp_path / "store"))


def _stage_in(store: Path, built, stage: str) -> Path:
    return store / Path(built[2]["cache_dirs"][("passages", "dense", "bm25").index(stage)]).name


def _rebuild(built, project_config, cache: Path):
    _, _, _, root = built
    raw = project_config(
        "retrieval_qa",
        "experiment=smoke",
        "debug=tiny",
        f"paths.data_dir={root / 'data'}",
        f"cache_dir={cache}",
    )
    return build_retriever(validate(raw, RetrievalQAConfig))


def test_a_manifest_names_each_file_and_what_differs(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "sub" / "b.npy").write_bytes(b"y" * 10)
    manifest = write_manifest(tmp_path)
    assert set(manifest["files"]) == {"a.bin", "sub/b.npy"}
    verify_stage(tmp_path)
    _flip_last_byte(tmp_path / "sub" / "b.npy")
    with pytest.raises(StoreDamagedError, match=r"sub/b.npy sha256 .* differs .*same size"):
        verify_stage(tmp_path)
    _truncate(tmp_path / "a.bin")
    with pytest.raises(StoreDamagedError, match=r"a.bin is 50 bytes, the manifest says 100"):
        verify_stage(tmp_path)
    (tmp_path / "a.bin").unlink()
    with pytest.raises(StoreDamagedError, match=r"a.bin is missing"):
        verify_stage(tmp_path)
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(StoreDamagedError, match=f"{tmp_path} has no {MANIFEST}"):
        verify_stage(tmp_path)


@pytest.mark.parametrize(("stage", "name"), DAMAGED, ids=IDS)
def test_training_rebuilds_a_cached_stage_with_a_truncated_file(
    built, project_config, tmp_path, caplog, stage, name
):
    _, retriever, _, _ = built
    cache = _copy_store(built, tmp_path)
    folder = _stage_in(cache, built, stage)
    _truncate(folder / name)
    with caplog.at_level(logging.WARNING):
        rebuilt, stats = _rebuild(built, project_config, cache)
    assert not stats[f"{stage}_cached"]
    assert sum(stats[f"{s}_cached"] for s in ("passages", "dense", "bm25")) == 2  # only this one
    assert f"{name} is " in caplog.text and "the manifest says" in caplog.text
    assert "rebuilding" in caplog.text
    verify_stage(folder)
    queries = ["Who first described the alloy?", "Which element is it rich in?"]
    ranks = retriever.rankings(queries)["hybrid"]
    assert (rebuilt.rankings(queries)["hybrid"] == ranks).all()
    assert rebuilt.contexts(ranks, 2) == retriever.contexts(ranks, 2)  # no blank passages


@pytest.mark.parametrize(("stage", "name"), DAMAGED, ids=IDS)
def test_serving_refuses_a_published_stage_with_a_truncated_file(
    built, tmp_path, monkeypatch, stage, name
):
    _, retriever, _, _ = built
    retriever.save(tmp_path / "bundle")
    store = _copy_store(built, tmp_path)
    folder = _stage_in(store, built, stage)
    _truncate(folder / name)
    monkeypatch.setenv(INDEX_STORE_ENV, str(store))
    match = rf"{folder} is damaged: {name} is \d+ bytes, the manifest says \d+"
    with pytest.raises(InputError, match=match):
        Retriever.load(tmp_path / "bundle")


def test_serving_refuses_a_same_size_corruption_or_a_store_without_manifest(
    built, tmp_path, monkeypatch
):
    _, retriever, _, _ = built
    retriever.save(tmp_path / "bundle")
    store = _copy_store(built, tmp_path)
    monkeypatch.setenv(INDEX_STORE_ENV, str(store))
    passages = _stage_in(store, built, "passages")
    _flip_last_byte(passages / "text.bin")
    with pytest.raises(StoreDamagedError, match=r"text.bin sha256 .* differs"):
        Retriever.load(tmp_path / "bundle")
    _flip_last_byte(passages / "text.bin")  # restored: it verifies again
    assert len(Retriever.load(tmp_path / "bundle").passages) == len(retriever.passages)
    (_stage_in(store, built, "bm25") / MANIFEST).unlink()
    with pytest.raises(StoreDamagedError, match=f"bm25-.* has no {MANIFEST}"):
        Retriever.load(tmp_path / "bundle")


def test_training_rebuilds_a_cached_stage_without_manifest(built, project_config, tmp_path):
    cache = _copy_store(built, tmp_path)
    (_stage_in(cache, built, "passages") / MANIFEST).unlink()  # a cache from before manifests
    _, stats = _rebuild(built, project_config, cache)
    assert not stats["passages_cached"] and stats["dense_cached"] and stats["bm25_cached"]
    verify_stage(_stage_in(cache, built, "passages"))


def test_publishing_never_lands_a_short_copy_and_replaces_a_damaged_one(
    built, tmp_path, caplog, monkeypatch
):
    _, retriever, _, _ = built
    shared = tmp_path / "shared-store"
    copytree = shutil.copytree

    def short_copy(src, dst, **kw):
        copytree(src, dst, **kw)
        for f in Path(dst).rglob("*.bin"):
            _truncate(f)

    monkeypatch.setattr("shutil.copytree", short_copy)  # an interrupted network copy, say
    with pytest.raises(StoreDamagedError, match="text.bin is"):
        publish_index(retriever.stages, shared)
    assert list(shared.iterdir()) == []
    monkeypatch.undo()
    stages, _ = publish_index(retriever.stages, shared)
    _truncate(Path(stages["passages"]) / "text.bin")
    with caplog.at_level(logging.WARNING):
        _, copied = publish_index(retriever.stages, shared)
    assert copied == [Path(stages["passages"]).name] and "text.bin is" in caplog.text
    for path in stages.values():
        verify_stage(path)
    assert sorted(p.name for p in shared.iterdir()) == sorted(Path(p).name for p in stages.values())
