"""Answer questions with the registered retrieval_qa model.

Kaggle submission:
    python -m projects.retrieval_qa.predict submit --input DATA/test.csv --output submission.csv
One question from the command line, showing the passages used:
    python -m projects.retrieval_qa.predict answer "Who first described X?" A B C D E
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from projects.retrieval_qa.chunking import passage_column
from projects.retrieval_qa.data import LETTERS, BadQuestionError, read_questions
from shared.cli import expected_errors
from shared.tracking import load_registered_model

DEFAULT_MODEL = "models:/retrieval_qa-llm-science-exam@champion"
MAKE_TARGET = "make retrieval-qa DATA=... (or make retrieval-qa-smoke)"


def load(model_uri: str = DEFAULT_MODEL):
    return load_registered_model(model_uri, MAKE_TARGET)


def submission(questions: pd.DataFrame, model_uri: str = DEFAULT_MODEL) -> pd.DataFrame:
    """`id,prediction` with three space-separated letters, best first."""
    out = pd.DataFrame(load(model_uri).predict(questions[["id", "prompt", *LETTERS]]))
    out["prediction"] = out["prediction"].str.split().str[:3].str.join(" ")
    return out[["id", "prediction"]]


def answer(prompt: str, options: list[str], model_uri: str = DEFAULT_MODEL) -> str:
    """A readable answer: the ranked options and the passages they were read from."""
    if len(options) != len(LETTERS):
        raise BadQuestionError(f"a question needs exactly five options, got {len(options)}")
    model = load(model_uri)
    pipeline = model.unwrap_python_model().pipeline
    q = pd.DataFrame([{"id": "cli", "prompt": prompt, **dict(zip(LETTERS, options))}])
    ranked, used = pipeline.answer(q)
    passages = pipeline.retriever.passages
    lines = [f"Q: {prompt}"]
    lines += [f"  {i + 1}. {letter}: {q.iloc[0][letter]}" for i, letter in enumerate(ranked[0])]
    lines.append("Passages used:")
    lines += [f"  {t}" for t in passage_column(passages, "text", used[0])]  # starts with title
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default=DEFAULT_MODEL, help="MLflow model URI")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="write the Kaggle submission for a question CSV")
    s.add_argument("--input", required=True, type=Path)
    s.add_argument("--output", default=Path("submission.csv"), type=Path)
    a = sub.add_parser("answer", help="answer one question and show the passages used")
    a.add_argument("prompt")
    a.add_argument("options", nargs=5)
    args = parser.parse_args(argv)
    if args.command == "submit":
        out = submission(read_questions(args.input, require_answer=False), args.model_uri)
        out.to_csv(args.output, index=False)
        print(f"wrote {len(out)} predictions to {args.output}")
    else:
        print(answer(args.prompt, args.options, args.model_uri))


if __name__ == "__main__":
    with expected_errors():
        main()
