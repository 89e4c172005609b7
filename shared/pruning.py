"""The hook pipelines call after each fold or epoch: a no-op outside a sweep, the pruner's input
inside one. `tools.sweep` opens a trial's scope (`reporting_to`); the pipelines only `report`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class _Active:
    trial: Any  # optuna.Trial
    metric: str | None  # which key of a mapping report() is judged on
    steps: set[int]


_ACTIVE: _Active | None = None  # set in a sweep worker while it runs a trial


@contextmanager
def reporting_to(trial: Any, metric: str | None) -> Iterator[None]:
    """While the block runs, `report` feeds `trial` (an optuna.Trial), judged on `metric`."""
    global _ACTIVE
    _ACTIVE = _Active(trial, metric, set())
    try:
        yield
    finally:
        _ACTIVE = None


def report(value: float | Mapping[str, float], step: int) -> None:
    """Give the running trial an intermediate score (a fold's or an epoch's); no-op outside.

    A mapping (an epoch's metrics) is judged on the space's `report_metric`. A step already
    reported is skipped, so a trial that trains several folds is judged on its first fold's
    epochs. Raises `optuna.TrialPruned` when the pruner stops the trial.
    """
    active = _ACTIVE
    if active is None:
        return
    if isinstance(value, Mapping):
        if active.metric is None or active.metric not in value:
            return
        value = value[active.metric]
    if step in active.steps:
        return
    active.steps.add(step)
    active.trial.report(float(value), step)
    if active.trial.should_prune():
        import optuna

        raise optuna.TrialPruned(f"pruned at step {step} ({float(value):.4f})")
