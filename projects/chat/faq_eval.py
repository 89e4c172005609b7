"""How well the FAQ bot answers questions it has not seen, logged to MLflow (experiment `chat`).

The held-out set (`eval_path`) holds paraphrases of FAQ questions, each labelled with the FAQ
entry that answers it, and out-of-scope questions labelled null. Reported:
- accuracy_at_1: share of in-scope questions whose nearest FAQ question is the right one;
- at the configured threshold, coverage (share of in-scope questions the bot answers),
  precision (share of its answers that are right, out-of-scope answers counting as wrong)
  and oos_rejection (share of out-of-scope questions it declines);
- the same three over a sweep of thresholds, printed and logged as `threshold_sweep.txt`.
The set is small (54 questions) and `threshold`/`index_text` were chosen looking at it, so the
figures are optimistic: they say the bot works, not what it would score on new users.

    python -m projects.chat.faq_eval [threshold=0.5 model=... key=value ...]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from projects.chat.config import BotConfig, load, repo_path
from projects.chat.faq_bot import Encoder, FaqIndex, load_encoder, load_eval_set, load_faq
from shared.tracking import announce, log_metrics, start_run

SWEEP = tuple(round(t, 2) for t in np.arange(0.30, 0.801, 0.05))


def evaluate(
    predicted: Sequence[str], scores: Sequence[float], gold: Sequence[str | None], threshold: float
) -> dict[str, float]:
    """Accuracy@1 and the threshold's precision/coverage/out-of-scope rejection."""
    pred = np.asarray(predicted, dtype=object)
    score = np.asarray(scores, dtype=float)
    gold_arr = np.asarray(gold, dtype=object)
    in_scope = np.array([g is not None for g in gold], dtype=bool)
    correct = in_scope & (pred == gold_arr)
    answered = score >= threshold
    n_in, n_out, n_answered = int(in_scope.sum()), int((~in_scope).sum()), int(answered.sum())
    return {
        "accuracy_at_1": correct[in_scope].mean() if n_in else float("nan"),
        "coverage": answered[in_scope].mean() if n_in else float("nan"),
        "precision": (correct & answered).sum() / n_answered if n_answered else float("nan"),
        "oos_rejection": (~answered[~in_scope]).mean() if n_out else float("nan"),
        "answered_accuracy": (correct & answered)[in_scope].sum() / n_in if n_in else float("nan"),
        "n_in_scope": float(n_in),
        "n_out_of_scope": float(n_out),
    }


def run_eval(cfg: BotConfig, encode: Encoder) -> tuple[dict[str, float], str]:
    """Score the held-out set, log to MLflow, print a summary; returns (metrics, run id)."""
    faq_path, eval_path = repo_path(cfg.faq_path), repo_path(cfg.eval_path)
    entries = load_faq(faq_path)
    items = load_eval_set(eval_path, {e.id for e in entries})
    questions, gold = [q for q, _ in items], [g for _, g in items]
    index = FaqIndex(entries, encode, cfg.index_text)
    scores, idx = index.search(questions)
    predicted = [entries[int(i)].id for i in idx]
    metrics = evaluate(predicted, scores.tolist(), gold, cfg.threshold)

    lines = ["threshold  coverage  precision  oos_rejection"]
    for t in SWEEP:
        m = evaluate(predicted, scores.tolist(), gold, t)
        lines.append(
            f"{t:9.2f}  {m['coverage']:8.3f}  {m['precision']:9.3f}  {m['oos_rejection']:13.3f}"
        )
    misses = [
        f"{s:.3f}  {q!r}: got {p}, want {g}"
        for q, g, p, s in zip(questions, gold, predicted, scores)
        if (g is not None and p != g) or (g is None and s >= cfg.threshold)
    ]
    with start_run(
        cfg.experiment,
        run_name=cfg.run_name,
        config=cfg,
        data_paths=[faq_path, eval_path],
        tags={"experiment": "faq"},
    ) as run:
        log_metrics(metrics)
        import mlflow

        mlflow.log_text("\n".join(lines) + "\n", "threshold_sweep.txt")
        mlflow.log_text("\n".join(misses) + "\n", "errors.txt")
        print(f"FAQ entries {len(entries)}, held-out questions {len(items)}")
        for k, v in metrics.items():
            print(f"  {k:18s} {v:.3f}")
        print(f"threshold sweep (configured threshold {cfg.threshold}):")
        print("\n".join("  " + line for line in lines))
        print("errors (wrong nearest entry, or out-of-scope answered):")
        print("\n".join("  " + m for m in misses) or "  none")
        announce(run, "accuracy_at_1", metrics["accuracy_at_1"])
    return metrics, run.info.run_id


def main(argv: list[str] | None = None) -> None:
    cfg = load("bot", BotConfig, sys.argv[1:] if argv is None else argv)
    run_eval(cfg, load_encoder(cfg.model))


if __name__ == "__main__":
    main()
