"""The registered model: questions (`prompt, A..E`) in, `prediction` ('D B E') out, end to end."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from projects.retrieval_qa.pipeline import QAPipeline


class RetrievalQAModel(mlflow.pyfunc.PythonModel):
    """Carries the fine-tuned reader, the retriever settings and a manifest naming the passages
    and both indexes by content hash in the shared index store (`pipeline.Retriever.load`:
    `$RETRIEVAL_QA_INDEX_STORE` or the recorded store; a missing one fails naming the path)."""

    def load_context(self, context) -> None:
        self.pipeline = QAPipeline.load(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
        letters, used = self.pipeline.answer(model_input)
        return pd.DataFrame(
            {
                "id": model_input["id"].to_numpy() if "id" in model_input else range(len(letters)),
                "prediction": [" ".join(r) for r in letters],
                "passage_ids": [" ".join(map(str, u)) for u in used],
            }
        )
