"""The tiny smoke retriever (passages, FAISS, BM25 in a temporary cache), built once: the
scale tests and the store-damage tests read it; a test that damages files copies them first."""

import pytest

from projects.retrieval_qa.config import RetrievalQAConfig
from projects.retrieval_qa.pipeline import build_retriever
from projects.retrieval_qa.synthetic import ensure_dataset
from shared.config import validate


@pytest.fixture(scope="session")
def built(project_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("rq")
    raw = project_config(
        "retrieval_qa", "experiment=smoke", "debug=tiny", f"paths.data_dir={root / 'data'}"
    )
    cfg = validate(raw, RetrievalQAConfig)
    ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic))
    retriever, stats = build_retriever(cfg)
    return cfg, retriever, stats, root
