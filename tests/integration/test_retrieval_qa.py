"""retrieval_qa end to end on a tiny generated set via Hydra compose, into a temporary store."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from projects.retrieval_qa import predict as predict_mod
from projects.retrieval_qa.train import run

MODEL = "models:/retrieval_qa-llm-science-exam-smoke@champion"


@pytest.fixture(scope="module")
def tiny_run(tiny):
    cfg = tiny("retrieval_qa")
    return cfg, run(cfg)


def test_smoke_fit_logs_retrieval_and_reader_metrics(tiny_run):
    _, m = tiny_run
    for method in ("dense", "sparse", "hybrid"):
        for k in (1, 3, 5, 10):
            assert 0.0 <= m[f"recall_at_{k}_{method}"] <= 1.0
    assert m["recall_at_5_hybrid"] >= 0.9  # rare invented names: BM25 alone finds them
    for key in ("val_map3", "test_map3", "test_map3_no_context"):
        assert 0.0 <= m[key] <= 1.0
    runs = mlflow.search_runs(experiment_names=["retrieval_qa"], output_format="list")
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)}
    assert {"index_stats.json", "samples.md", "config.yaml"} <= arts


def test_second_run_reuses_the_index_and_a_changed_corpus_rebuilds_it(tiny_run):
    cfg, _ = tiny_run
    from projects.retrieval_qa.config import RetrievalQAConfig
    from projects.retrieval_qa.pipeline import build_retriever
    from shared.config import validate

    typed = validate(cfg, RetrievalQAConfig)
    _, stats = build_retriever(typed)
    assert stats["passages_cached"] and stats["dense_cached"] and stats["bm25_cached"]
    part = sorted(Path(typed.data.corpus_dir).glob("*.parquet"))[0]
    df = pd.read_parquet(part)
    df.loc[0, "text"] = df.loc[0, "text"] + " A new sentence was added."
    df.to_parquet(part, index=False)
    _, stats2 = build_retriever(typed)
    assert not stats2["passages_cached"] and not stats2["dense_cached"]
    assert stats2["corpus_fingerprint"] != stats["corpus_fingerprint"]


def test_registered_model_answers_end_to_end(tiny_run, tmp_path, capsys):
    cfg, _ = tiny_run
    test_csv = f"{cfg.data.dir}/test.csv"
    predict_mod.main(
        ["--model-uri", MODEL, "submit", "--input", test_csv, "--output", str(tmp_path / "sub.csv")]
    )
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert list(sub.columns) == ["id", "prediction"]
    assert sub["prediction"].str.split().str.len().eq(3).all()
    q = pd.read_csv(test_csv).iloc[0]
    predict_mod.main(["--model-uri", MODEL, "answer", q["prompt"], *[q[c] for c in "ABCDE"]])
    out = capsys.readouterr().out
    assert "Passages used:" in out and q["prompt"] in out
