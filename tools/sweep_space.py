"""A sweep's search space: `configs/<project>/hparams_search/<space>.yaml` (Hydra keys ->
Optuna distributions), read and checked here before any trial runs; Hydra never composes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import REPO_ROOT
from shared.errors import InputError

_DISTRIBUTIONS = ("float", "int", "categorical")


class SweepError(InputError):
    """A bad search space, storage or a resumed study started with other settings."""


@dataclass
class Space:
    name: str
    direction: str
    params: dict[str, dict[str, Any]]
    sampler: dict[str, Any]
    pruner: dict[str, Any] | None  # MedianPruner arguments; null: never prune
    report_metric: str | None
    overrides: list[str]  # fixed for every trial, e.g. per-trial output files
    objective: str  # the metric a trial returns: the task metric on the holdout fold
    holdout_fold: int  # trials score only this fold; the chosen config is re-run without it


def load_space(project: str, name: str) -> Space:
    """`configs/<project>/hparams_search/<name>.yaml`, checked before any trial runs."""
    from omegaconf import OmegaConf

    path = REPO_ROOT / "configs" / project / "hparams_search" / f"{name}.yaml"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SweepError(f"no search space {path} (spaces of {project}: {found or 'none'})")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    known = {"direction", "params", "sampler", "pruner", "report_metric", "overrides"}
    unknown = set(raw) - known - {"objective", "holdout_fold"}
    if unknown:
        raise SweepError(f"{path}: unknown keys {sorted(unknown)}")
    if raw.get("direction") not in ("maximize", "minimize"):
        raise SweepError(f"{path}: direction must be maximize or minimize")
    if not isinstance(raw.get("objective"), str):
        raise SweepError(f"{path}: objective must name a metric of the run (e.g. oof_pauc)")
    if not isinstance(raw.get("holdout_fold"), int) or isinstance(raw["holdout_fold"], bool):
        raise SweepError(f"{path}: holdout_fold must be a fold number of the fold file")
    params = raw.get("params") or {}
    if not params:
        raise SweepError(f"{path}: params is empty")
    for key, spec in params.items():
        kind = (spec or {}).get("type")
        if kind not in _DISTRIBUTIONS:
            raise SweepError(f"{path}: params.{key}.type must be one of {_DISTRIBUTIONS}")
        need = {"choices"} if kind == "categorical" else {"low", "high"}
        if not need <= set(spec):
            raise SweepError(f"{path}: params.{key} needs {sorted(need)}")
    return Space(
        name=name,
        direction=raw["direction"],
        params=params,
        sampler=raw.get("sampler") or {},
        pruner=raw.get("pruner"),
        report_metric=raw.get("report_metric"),
        overrides=list(raw.get("overrides") or []),
        objective=raw["objective"],
        holdout_fold=raw["holdout_fold"],
    )


def suggest(trial: Any, params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Sample every parameter of the space on `trial`: {hydra key: value}."""
    out = {}
    for key, spec in params.items():
        kind = spec["type"]
        if kind == "categorical":
            out[key] = trial.suggest_categorical(key, list(spec["choices"]))
        else:
            suggest_fn = trial.suggest_float if kind == "float" else trial.suggest_int
            extra = {k: spec[k] for k in ("log", "step") if spec.get(k) is not None}
            out[key] = suggest_fn(key, spec["low"], spec["high"], **extra)
    return out


def hydra_value(value: Any) -> str:
    """A Python value as a Hydra override value (strings quoted, None as null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
