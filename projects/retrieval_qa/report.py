"""Per-run artifacts of retrieval_qa: sample questions with retrieved passages and answers."""

from __future__ import annotations

import pandas as pd

from projects.retrieval_qa.chunking import PassageStore, passage_column
from projects.retrieval_qa.data import LETTERS


def samples_markdown(
    questions: pd.DataFrame,
    ranked: list[list[str]],
    used: list[list[int]],
    passages: pd.DataFrame | PassageStore,
    n: int = 10,
) -> str:
    """Markdown: each question, its options, the ranked letters and the passages read."""
    lines = ["# Sample test questions, retrieved passages and ranked answers\n"]
    for i in range(min(n, len(questions))):
        q = questions.iloc[i]
        lines.append(f"## {q['id']}: {q['prompt']}")
        lines += [f"- {c}: {q[c]}" for c in LETTERS]
        truth = f" (answer: {q['answer']})" if "answer" in q else ""
        lines.append(f"\n**prediction:** {' '.join(ranked[i])}{truth}\n")
        for text in passage_column(passages, "text", used[i]):
            lines.append(f"> {text}\n")  # the text starts with its title
    return "\n".join(lines)
