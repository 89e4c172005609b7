"""`make smoke`: every project's CPU smoke pipeline, in smoke order, in one Python process.

python -m tools.smoke [key=value ...]     # overrides go to every pipeline (e.g. seed=43)

Each step is `projects.<project>.train.run(cfg)` on `compose(project, ["experiment=smoke",
...])`: the config and the code path of `python -m projects.<project>.train experiment=smoke`
(sweeps and the tests call `run` the same way). After image_classifier, tabular_gbm runs again
stacked on its out-of-fold scores (`data.image_oof`, the image config's `oof_file`).

Why one process: five would each pay Python's start-up, the imports of torch, Lightning and
MLflow and the store's opening again, ~11 s a process on 2 cores (benchmarks/RESULTS.md); the
pipelines' results are the same either way (each run seeds itself; compared metric by metric
there); the one process-wide setting a pipeline changes that could move another's results,
torch's float32 matmul precision, is put back after each. What the Hydra command line adds and
this does not: an output folder per run with the `.hydra/` config snapshot and a log file
(MLflow keeps each run's resolved config).
Every config is composed before the first pipeline runs; a failing step stops the loop (its
MLflow run marked FAILED): an expected error prints `error: ...` and exits 2, as the CLI does.
"""

from __future__ import annotations

import sys
import time

import lightning.pytorch  # noqa: F401  first, as under the CLI: its messages print once
import torch

from shared.cli import expected_errors
from shared.config import compose
from tools.registry import ML_PROJECTS, train_module


def steps(overrides: list[str]) -> list[tuple[str, list[str]]]:
    """(project, overrides) in the order `make smoke` runs them."""
    out = []
    for project in ML_PROJECTS:
        out.append((project, ["experiment=smoke", *overrides]))
        if project == "image_classifier":
            oof = compose(project, ["experiment=smoke", *overrides]).oof_file
            stacked = ["tracking.run_name=smoke-stacked", f"data.image_oof='{oof}'"]
            out.append(("tabular_gbm", ["experiment=smoke", *stacked, *overrides]))
    return out


def main(argv: list[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    start = time.monotonic()
    with expected_errors():
        # every config composed first: a key one project lacks fails before any pipeline runs
        configs = [(project, compose(project, args)) for project, args in steps(overrides)]
        for project, cfg in configs:
            oof = cfg.data.get("image_oof") if project == "tabular_gbm" else None
            print(f"=== {project}" + (f" stacked on {oof}" if oof else ""), flush=True)
            precision = torch.get_float32_matmul_precision()  # a process-wide setting
            try:
                train_module(project).run(cfg)  # ends printing its headline metric
            finally:  # (image_classifier sets "high"): the next pipeline starts as its CLI does
                torch.set_float32_matmul_precision(precision)
    print(f"smoke wall time: {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
