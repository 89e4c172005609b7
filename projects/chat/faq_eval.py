"""How well the FAQ bot answers questions it has not seen, logged to MLflow (experiment `chat`).

The held-out set (`eval_path`) holds paraphrases of FAQ questions, each labelled with the FAQ
entry that answers it, and out-of-scope questions labelled null. Reported:
- accuracy_at_1: share of in-scope questions whose nearest FAQ question is the right one;
- at the configured threshold, coverage (share of in-scope questions the bot answers),
  precision (share of its answers that are right, out-of-scope answers counting as wrong)
  and oos_rejection (share of out-of-scope questions it declines);
- the same three over a sweep of thresholds, printed and logged as `threshold_sweep.txt`.
The threshold is chosen on one half of the set (seeded, in-scope and out-of-scope split alike)
and every reported figure comes from the other half, so the choice never sees what it is
scored on (`selected_threshold`; the bot's own `threshold` is reported too as `config_*`).

    python -m projects.chat.faq_eval [threshold=0.5 model=... key=value ...]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from projects.chat.config import BotConfig, load, repo_path
from projects.chat.faq_bot import Encoder, FaqIndex, load_encoder, load_eval_set, load_faq
from shared.cli import expected_errors
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


def split_tune_test(gold: Sequence[str | None], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two halves, each with half the in-scope and half the out-of-scope items."""
    rng = np.random.default_rng(seed)
    tune, test = [], []
    for group in (
        [i for i, g in enumerate(gold) if g is not None],
        [i for i, g in enumerate(gold) if g is None],
    ):
        order = rng.permutation(group)
        tune += order[: len(order) // 2].tolist()
        test += order[len(order) // 2 :].tolist()
    return np.sort(tune), np.sort(test)


def select_threshold(
    predicted: Sequence[str], scores: Sequence[float], gold: Sequence[str | None]
) -> float:
    """The sweep's threshold with the most right answers plus right refusals (ties: higher)."""

    def value(t: float) -> float:
        m = evaluate(predicted, scores, gold, t)
        return np.nan_to_num(m["answered_accuracy"]) + np.nan_to_num(m["oos_rejection"])

    return max(SWEEP, key=lambda t: (value(t), t))


def run_eval(cfg: BotConfig, encode: Encoder) -> tuple[dict[str, float], str]:
    """Score the held-out set, log to MLflow, print a summary; returns (metrics, run id)."""
    faq_path, eval_path = repo_path(cfg.faq_path), repo_path(cfg.eval_path)
    entries = load_faq(faq_path)
    items = load_eval_set(eval_path, {e.id for e in entries})
    index = FaqIndex(entries, encode, cfg.index_text)
    all_scores, idx = index.search([q for q, _ in items])
    tune, test = split_tune_test([g for _, g in items], cfg.eval_seed)

    def part(rows):
        return (
            [entries[int(idx[i])].id for i in rows],
            [float(all_scores[i]) for i in rows],
            [items[i][1] for i in rows],
            [items[i][0] for i in rows],
        )

    chosen = select_threshold(*part(tune)[:3])
    predicted, score_list, gold, questions = part(test)
    scores = np.asarray(score_list)
    metrics = evaluate(predicted, score_list, gold, chosen)
    metrics["selected_threshold"] = chosen
    config_m = evaluate(predicted, score_list, gold, cfg.threshold)
    metrics.update({f"config_{k}": config_m[k] for k in ("coverage", "precision", "oos_rejection")})

    lines = ["threshold  coverage  precision  oos_rejection"]
    for t in SWEEP:
        m = evaluate(predicted, score_list, gold, t)
        lines.append(
            f"{t:9.2f}  {m['coverage']:8.3f}  {m['precision']:9.3f}  {m['oos_rejection']:13.3f}"
        )
    misses = [
        f"{s:.3f}  {q!r}: got {p}, want {g}"
        for q, g, p, s in zip(questions, gold, predicted, scores)
        if (g is not None and p != g) or (g is None and s >= chosen)
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
        print(
            f"FAQ entries {len(entries)}, held-out questions {len(items)}: threshold chosen on "
            f"{len(tune)}, figures from the other {len(test)}"
        )
        for k, v in metrics.items():
            print(f"  {k:18s} {v:.3f}")
        print(f"threshold sweep on the test half (chosen {chosen}, bot's {cfg.threshold}):")
        print("\n".join("  " + line for line in lines))
        print("errors (wrong nearest entry, or out-of-scope answered):")
        print("\n".join("  " + m for m in misses) or "  none")
        announce(run, "accuracy_at_1", metrics["accuracy_at_1"])
    return metrics, run.info.run_id


def main(argv: list[str] | None = None) -> None:
    with expected_errors():
        cfg = load("bot", BotConfig, sys.argv[1:] if argv is None else argv)
        run_eval(cfg, load_encoder(cfg.model))


if __name__ == "__main__":
    main()
