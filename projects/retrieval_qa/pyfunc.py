"""The registered model: questions (`prompt, A..E`) in, `prediction` ('D B E') out, end to end."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from projects.retrieval_qa.pipeline import QAPipeline
from shared.rows import Row


class Question(Row):
    """One input row (the `predict` type hint MLflow infers the signature from). Every field
    may be null so that the pipeline's own check refuses an empty or missing option naming the
    row (`check_questions`), instead of a bare validation error; an absent option column is
    refused there too ("five options")."""

    IGNORED = ("answer",)  # a train.csv row's label: accepted over REST, never read

    id: str | None = None
    prompt: str | None = None
    A: str | None = None
    B: str | None = None
    C: str | None = None
    D: str | None = None
    E: str | None = None


class RetrievalQAModel(mlflow.pyfunc.PythonModel):
    """Carries the fine-tuned reader, the retriever settings and a manifest naming the passages
    and both indexes by content hash in the shared index store (`pipeline.Retriever.load`:
    `$RETRIEVAL_QA_INDEX_STORE` or the recorded store; a missing one fails naming the path)."""

    # The input/output contract (pydantic rows in, lists out); a champion of an older format
    # gives way to this one (shared.tracking.register_if_better).
    MODEL_FORMAT = 2

    def load_context(self, context) -> None:
        self.pipeline = QAPipeline.load(Path(context.artifacts["bundle"]))

    def predict(
        self,
        context,  # noqa: ARG002
        model_input: list[Question],
        params=None,  # noqa: ARG002
    ) -> list[dict[str, str]]:
        """`[{"id", "prompt", "A".."E"}, ...]` (or such a DataFrame) -> `[{"id", "prediction",
        "passage_ids"}, ...]`: the five letters best first and the passages read."""
        questions = pd.DataFrame([q.model_dump(exclude_unset=True) for q in model_input])
        letters, used = self.pipeline.answer(questions)
        ids = questions["id"] if "id" in questions else pd.Series(range(len(letters)))
        return [
            {"id": str(i), "prediction": " ".join(r), "passage_ids": " ".join(map(str, u))}
            for i, r, u in zip(ids, letters, used)
        ]


def input_example(questions: pd.DataFrame) -> list[dict[str, str]]:
    """The first two questions as JSON-ready records."""
    return questions.head(2).astype(str).to_dict(orient="records")


PIP_REQUIREMENTS = [
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "bm25s",
    "pandas",
]


def package(bundle: Path, questions: pd.DataFrame) -> dict:
    """What `tracking.publish` logs: the model, its bundle (reader, retriever settings, index
    manifest), two questions as input example, and the packages it needs."""
    return {
        "python_model": RetrievalQAModel(),
        "artifacts": {"bundle": str(bundle)},
        "input_example": input_example(questions),
        "pip_requirements": PIP_REQUIREMENTS,
    }
