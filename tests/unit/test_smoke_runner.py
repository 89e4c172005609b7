"""`make smoke`'s runner: the projects in smoke order, the stacked GBM right after the image
model and on its OOF file, every override passed to every step, a bad key refused at once."""

from __future__ import annotations

import pytest
import torch

from shared.config import compose
from tools import smoke
from tools.registry import ML_PROJECTS


def test_the_steps_run_every_project_in_order_and_stack_on_the_image_oof_file():
    steps = smoke.steps(["seed=43"])
    assert [p for p, _ in steps] == [
        "tabular_gbm",
        "image_classifier",
        "tabular_gbm",
        "retrieval_qa",
        "captioning",
    ]
    assert {p for p, _ in steps} == set(ML_PROJECTS)
    assert all(args[0] == "experiment=smoke" and "seed=43" in args for _, args in steps)
    oof = compose("image_classifier", ["experiment=smoke"]).oof_file
    stacked = compose("tabular_gbm", steps[2][1])
    assert stacked.data.image_oof == oof and stacked.tracking.run_name == "smoke-stacked"
    assert compose("tabular_gbm", steps[0][1]).data.image_oof is None


# data.n_folds: tabular_gbm and image_classifier have it, retrieval_qa (third) does not
@pytest.mark.parametrize("key", ["model.no_such_key=1", "data.n_folds=5"])
def test_a_key_one_project_lacks_stops_the_run_before_any_pipeline_with_status_2(
    key, capsys, monkeypatch
):
    ran = []
    monkeypatch.setattr(smoke, "train_module", lambda project: ran.append(project))
    with pytest.raises(SystemExit) as exc:
        smoke.main([key])
    assert exc.value.code == 2 and ran == []
    err = capsys.readouterr().err
    assert err.startswith("error: ") and key.split("=")[0].split(".")[-1] in err


def test_a_crashing_pipeline_stops_the_loop_and_torch_settings_are_put_back(monkeypatch):
    """A crash propagates (non-zero exit; its MLflow run is marked FAILED by start_run)."""
    ran = []

    class Pipeline:
        def __init__(self, project: str) -> None:
            self.project = project

        def run(self, cfg) -> dict:
            ran.append(self.project)
            torch.set_float32_matmul_precision("medium")
            if self.project == "image_classifier":
                raise RuntimeError("boom")
            return {}

    monkeypatch.setattr(smoke, "train_module", Pipeline)
    before = torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError, match="boom"):
        smoke.main([])
    assert ran == ["tabular_gbm", "image_classifier"]
    assert torch.get_float32_matmul_precision() == before
