"""`make smoke`'s runner: the projects in smoke order, the stacked GBM right after the image
model and on its OOF file, every override passed to every step, a bad key refused at once."""

from __future__ import annotations

import pytest

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


def test_a_bad_override_stops_the_run_before_any_pipeline_with_exit_status_2(capsys):
    with pytest.raises(SystemExit) as exc:
        smoke.main(["model.no_such_key=1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_key" in err
