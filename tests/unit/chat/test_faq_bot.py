"""The FAQ bot: which messages it answers, retrieval with its threshold, the evaluation maths,
and (with the real offline MiniLM model, loaded once) answers over a live chat."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from projects.chat.client import ChatClient
from projects.chat.config import BotConfig, load, repo_path
from projects.chat.faq_bot import (
    FaqEntry,
    FaqIndex,
    bot_secret,
    load_eval_set,
    load_faq,
    question_in,
    serve,
)
from projects.chat.faq_eval import evaluate
from tests.unit.chat.conftest import joined

pytestmark = pytest.mark.timeout(60)


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A tiny deterministic encoder: hashed word counts (cosine = shared-word overlap)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace("?", "").split():
            out[i, sum(map(ord, w)) % 64] += 1
    return out


ENTRIES = [
    FaqEntry("tests", "how do I run tests", "make test"),
    FaqEntry("lint", "how do I lint code", "make lint"),
]


@pytest.mark.parametrize(
    ("event", "asked"),
    [
        ({"type": "private", "from": "alice", "text": "how do I lint"}, "how do I lint"),
        ({"type": "message", "from": "alice", "room": "r", "text": "bob, tests?"}, None),
        ({"type": "message", "from": "alice", "room": "r", "text": "@FAQbot: lint"}, "lint"),
        ({"type": "message", "from": "alice", "room": "r", "text": "just chatting"}, None),
        ({"type": "message", "from": "faqbot", "room": "r", "text": "loop?"}, None),
        ({"type": "private", "from": "faqbot", "text": "my own echo"}, None),
        ({"type": "presence", "user": "alice", "room": "r", "event": "join"}, None),
    ],
)
def test_bot_answers_private_messages_and_mentions_only(event, asked):
    assert question_in(event, "faqbot") == asked


def test_index_answers_the_nearest_entry_and_declines_below_the_threshold():
    index = FaqIndex(ENTRIES, bag_of_words, index_text="question")
    hit = index.answer("how do I run the tests", threshold=0.5)
    assert (hit.faq_id, hit.text) == ("tests", "make test") and hit.score > 0.5
    miss = index.answer("bake bread", threshold=0.5, dont_know="I don't know.")
    assert (miss.faq_id, miss.text) == (None, "I don't know.") and miss.score < 0.5
    assert index.answer("bake bread", threshold=-1.0).faq_id is not None
    with pytest.raises(ValueError, match="index_text"):
        FaqIndex(ENTRIES, bag_of_words, index_text="answers")


def test_evaluate_counts_out_of_scope_answers_as_wrong():
    gold = ["a", "a", "b", None, None]
    pred = ["a", "b", "b", "a", "b"]
    scores = [0.9, 0.8, 0.3, 0.7, 0.1]
    m = evaluate(pred, scores, gold, threshold=0.5)
    assert m["accuracy_at_1"] == pytest.approx(2 / 3)
    assert m["coverage"] == pytest.approx(2 / 3)  # two of three in-scope answered
    assert m["precision"] == pytest.approx(1 / 3)  # answered: a ok, b wrong, OOS wrong
    assert m["oos_rejection"] == pytest.approx(1 / 2)
    assert (
        evaluate(pred, scores, gold, threshold=0.95)["precision"]
        != evaluate(pred, scores, gold, threshold=0.0)["precision"]
    )


def test_shipped_faq_and_held_out_set_are_consistent_and_big_enough():
    cfg = load("bot", BotConfig)
    entries = load_faq(repo_path(cfg.faq_path))
    items = load_eval_set(repo_path(cfg.eval_path), {e.id for e in entries})
    assert len(entries) >= 30
    assert sum(g is not None for _, g in items) >= 40
    assert sum(g is None for _, g in items) >= 10
    faq_questions = {e.question.lower() for e in entries}
    assert not [q for q, _ in items if q.lower() in faq_questions], "held-out must be new wording"


def test_bad_faq_files_fail_by_name(tmp_path):
    dup = tmp_path / "faq.yaml"
    dup.write_text("- {id: a, question: q1, answer: x}\n- {id: a, question: q2, answer: y}\n")
    with pytest.raises(ValueError, match="duplicate FAQ ids"):
        load_faq(dup)
    ev = tmp_path / "eval.yaml"
    ev.write_text("- {id: nope, question: q}\n")
    with pytest.raises(ValueError, match="nope"):
        load_eval_set(ev, {"a"})


# ---- with the real embedding model (one load for the module) -------------------------------
@pytest.fixture(scope="module")
def minilm():
    from projects.chat.faq_bot import load_encoder

    return load_encoder(load("bot", BotConfig).model)


def test_real_model_answers_a_paraphrase_and_declines_off_topic(minilm):
    cfg = load("bot", BotConfig)
    index = FaqIndex(load_faq(repo_path(cfg.faq_path)), minilm, cfg.index_text)
    hit = index.answer("how can I get the chat server running?", cfg.threshold)
    assert hit.faq_id == "chat_start", hit
    miss = index.answer("What's a good recipe for lasagne?", cfg.threshold, cfg.dont_know)
    assert (miss.faq_id, miss.text) == (None, "I don't know."), miss


def test_bot_joins_like_a_user_and_answers_in_the_room_and_in_private(minilm, server):
    cfg = load("bot", BotConfig)
    index = FaqIndex(load_faq(repo_path(cfg.faq_path)), minilm, cfg.index_text)
    stop = threading.Event()
    secret = bot_secret(server.cfg, cfg.name)
    with ChatClient(*server.address, cfg.name, p2p=False, secret=secret) as bot_client:
        worker = threading.Thread(
            target=serve, args=(bot_client, index, cfg, stop.is_set), name="chat-test-bot"
        )
        worker.start()
        try:
            with ChatClient(*server.address, "alice", p2p=False) as alice:
                if cfg.name not in joined(alice, "lobby")["users"]:
                    alice.wait_for("presence", user=cfg.name, timeout=10)
                alice.say("lobby", "@faqbot how do I launch the chat server")
                reply = alice.wait_for("message", room="lobby", **{"from": cfg.name}, timeout=20)
                assert reply["text"].startswith("@alice ") and "make chat-server" in reply["text"]
                alice.pm(cfg.name, "Who won the 2018 football world cup?")
                answer = alice.wait_for("private", **{"from": cfg.name}, timeout=20)
                assert answer["text"] == "I don't know."
        finally:
            stop.set()
            worker.join(timeout=10)


@pytest.mark.slow  # MLflow's import and store setup: ~15 s on 2 busy cores
def test_faq_eval_logs_its_figures_to_the_chat_experiment(minilm, mlflow_store):
    import mlflow

    from projects.chat.faq_eval import run_eval

    cfg = load("bot", BotConfig, ["run_name=test-faq-eval"])
    metrics, run_id = run_eval(cfg, minilm)
    run = mlflow.get_run(run_id)
    assert mlflow.get_experiment(run.info.experiment_id).name == "chat"
    assert run.data.metrics["accuracy_at_1"] == pytest.approx(metrics["accuracy_at_1"])
    assert {"coverage", "precision", "oos_rejection"} <= set(run.data.metrics)
    assert run.data.params["threshold"] == str(cfg.threshold)
    assert metrics["accuracy_at_1"] >= 0.7  # what the README reports, with slack


def test_eval_halves_split_in_and_out_of_scope_alike_and_never_overlap():
    from projects.chat.faq_eval import split_tune_test

    gold = ["a"] * 10 + [None] * 4
    tune, test = split_tune_test(gold, seed=0)
    assert not set(tune) & set(test) and len(tune) + len(test) == 14
    assert sum(gold[i] is None for i in tune) == 2 and sum(gold[i] is None for i in test) == 2


def test_threshold_is_chosen_to_answer_right_and_refuse_out_of_scope():
    from projects.chat.faq_eval import select_threshold

    pred = ["a", "b", "c", "a"]
    gold = ["a", "b", None, None]
    scores = [0.9, 0.7, 0.5, 0.45]  # right answers score high, out-of-scope ones low
    t = select_threshold(pred, scores, gold)
    assert 0.5 < t <= 0.7
