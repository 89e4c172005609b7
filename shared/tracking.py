"""The one way every project opens an MLflow run.

`start_run` sets the experiment (one per project), tags the run with the git state and a data
fingerprint, logs the resolved config (as YAML and as flattened params), and on an exception
ends the run FAILED with the error text while keeping everything logged so far.
`register_if_better` registers a model version and moves the `champion` alias only when the
new run beats the current champion on the project's headline metric.
"""

from __future__ import annotations

import json
import os
import platform
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from shared import REPO_ROOT, model_card
from shared.errors import ModelNotFoundError
from shared.interrupts import interruption, sigterm_raises
from shared.locks import lock_for, sqlite_file
from shared.logging import get_logger
from shared.provenance import (
    config_to_container,
    data_fingerprint,
    device_name,
    flatten,
    git_state,
    package_versions,
)
from shared.tracking_server import check_tracking_server

log = get_logger(__name__)

CHAMPION = "champion"
SWEEP_PARENT_ENV = "SWEEP_PARENT_RUN_ID"  # set by tools.sweep: top-level runs nest under it


def is_rank_zero() -> bool:
    """True on the process that owns tracking (rank 0 under DDP, or the only process)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) == 0


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the embedded SQLite store at the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where local stores keep artifacts (`MLFLOW_ARTIFACT_ROOT` overrides)."""
    return Path(os.environ.get("MLFLOW_ARTIFACT_ROOT") or REPO_ROOT / "mlartifacts")


def get_mlflow():
    """The `mlflow` module pointed at `tracking_uri()` (telemetry off; a server is probed)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    uri = tracking_uri()
    check_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    local = sqlite_file(uri)
    if local is not None and uri not in _SCHEMA_READY:
        # a brand-new SQLite store: the first process creates the tables while the others
        # wait (two at once collide: "duplicate column name: step")
        with lock_for(local):
            mlflow.MlflowClient().search_experiments(max_results=1)
        _SCHEMA_READY.add(uri)
    return mlflow


_SCHEMA_READY: set[str] = set()


def get_or_create_experiment(name: str) -> str:
    """Experiment id for `name`; local stores put its artifacts under `artifact_root()/name`."""
    mlflow = get_mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri().startswith(("sqlite:", "file:")) or "://" not in tracking_uri():
        location = (artifact_root() / name).resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it meanwhile
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextmanager
def start_run(
    experiment: str,
    *,
    run_name: str | None = None,
    config: Any = None,
    data_paths: Iterable[str | Path] = (),
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[Any]:
    """Open (or, with `run_id`, resume) an MLflow run and close it whatever happens.

    A top-level run gets the config, git and data tags; a nested run (a fold) only its own
    tags and params. An exception marks the run FAILED with the error text (tag `error` and
    artifact `error.txt`) and is re-raised; Ctrl-C or SIGTERM (also as Lightning re-raises
    them, a SystemExit) marks it KILLED. A resumed run drops the `error` tag of the attempt
    it continues: the tag describes the run's end, and it has not ended.
    """
    if not is_rank_zero():  # DDP workers train; rank 0 alone talks to MLflow
        yield None
        return
    mlflow = get_mlflow()
    exp_id = get_or_create_experiment(experiment)
    if not nested and run_id is None and parent_run_id is None:
        parent_run_id = os.environ.get(SWEEP_PARENT_ENV) or None  # a sweep trial
    # the caller's tags go on at creation: a run killed while the git state and the data
    # fingerprint are computed must still be findable by them (a sweep kills a dead trial's
    # runs by its `sweep` / `optuna_trial` tags; CI once found one left RUNNING untagged)
    run = mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else exp_id,
        run_name=None if run_id else run_name,
        nested=nested,
        parent_run_id=parent_run_id,
        tags=None if run_id else {k: str(v) for k, v in (tags or {}).items()},
    )
    try:
        with sigterm_raises():
            if run_id is None:
                _log_run_start(mlflow, config, data_paths, tags, nested)
            elif "error" in run.data.tags:
                mlflow.delete_tag("error")
            yield run
    except BaseException as exc:
        stop = interruption(exc)
        try:
            if stop is not None:
                mlflow.set_tag("error", f"{type(stop).__name__}: {stop}".rstrip(": "))
            else:
                mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
                mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")
        finally:
            mlflow.end_run(status="KILLED" if stop is not None else "FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def start_pipeline_run(
    cfg: Any,
    data_paths: Iterable[str | Path],
    *,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Any:
    """`start_run` for a pipeline's top-level run: experiment, run name and tags from
    `cfg.tracking` (plus `tags`), the whole config logged, `data_paths` fingerprinted."""
    return start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=data_paths,
        tags={**(cfg.tracking.tags or {}), **(tags or {})},
        run_id=run_id,
    )


def _log_run_start(
    mlflow: Any,
    config: Any,
    data_paths: Iterable[str | Path],
    tags: Mapping[str, str] | None,
    nested: bool,
) -> None:
    """Tags (git, host, device, versions, data fingerprint for a top-level run) and config."""
    all_tags = dict(tags or {})
    if not nested:
        sha, dirty = git_state()
        all_tags.update(
            git_sha=sha,
            git_dirty=str(dirty).lower(),
            host=platform.node(),
            device=device_name(),
            **package_versions(),
        )
        paths = list(data_paths)
        if paths:
            all_tags["data_fingerprint"] = data_fingerprint(paths)
            # what `tools.reproduce` re-fingerprints, and where relative config paths were
            # resolved from
            all_tags["data_paths"] = json.dumps([str(Path(p).resolve()) for p in paths])
            all_tags["cwd"] = os.getcwd()
    mlflow.set_tags(all_tags)
    container = config_to_container(config)
    if container:
        items = list(flatten(container).items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))
        if not nested:
            mlflow.log_dict(container, "config.yaml")


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log finite float metrics to the active run (non-finite ones are skipped with a warning).

    Without an active run nothing is logged: `mlflow.log_metrics` would silently start a new,
    never-ended run, and every later `start_run` would then fail as "already active".
    """
    import math

    if not is_rank_zero():
        return
    mlflow = get_mlflow()
    if mlflow.active_run() is None:
        return
    clean = {}
    for k, v in metrics.items():
        v = float(v)
        if math.isfinite(v):
            clean[k] = v
        else:
            log.warning("metric %s is %s; not logged", k, v)
    if clean:
        mlflow.log_metrics(clean, step=step)


MODEL_FORMAT_TAG = "model_format"


def register_if_better(
    model_uri: str,
    name: str,
    metric: str,
    value: float,
    *,
    higher_is_better: bool = True,
    model_format: int = 1,
) -> tuple[str, bool]:
    """Register `model_uri` as a new version of `name`; move `champion` if it is better.

    The current champion's score is the `metric` tag of its version (else its run's metric).
    Returns (version, promoted).
    A tie keeps the old champion: a new version must be strictly better to take the alias.
    A champion of another `model_format` (the pyfunc's input/output contract, tag
    `model_format`, 1 when absent) is replaced whatever its score: callers of the alias get
    the current contract, and an old model that cannot serve it never keeps the alias.
    """
    mlflow = get_mlflow()
    client = mlflow.MlflowClient()
    version = mlflow.register_model(model_uri, name).version
    client.set_model_version_tag(name, version, metric, str(value))
    client.set_model_version_tag(name, version, MODEL_FORMAT_TAG, str(model_format))
    local = sqlite_file(tracking_uri())
    # compare-and-set: the champion read and the alias moved under one lock (local stores),
    # so two runs finishing together can never both take the alias on a stale comparison
    with lock_for(f"{local}.{name}.champion") if local else nullcontext():
        promote = _better_than_champion(
            client, name, version, metric, value, higher_is_better, model_format
        )
        if promote:
            client.set_registered_model_alias(name, CHAMPION, version)
    if promote:
        log.info("%s v%s is the new %s (%s=%.4f)", name, version, CHAMPION, metric, value)
    else:
        log.info(
            "%s v%s registered; %s stays (%s=%.4f not better)",
            name,
            version,
            CHAMPION,
            metric,
            value,
        )
    return str(version), promote


def _better_than_champion(
    client: Any,
    name: str,
    version: str,
    metric: str,
    value: float,
    higher_is_better: bool,
    model_format: int,
) -> bool:
    """Whether `version` should take the champion alias from the current holder."""
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        current = None
    promote = True
    old_format = current.tags.get(MODEL_FORMAT_TAG, "1") if current is not None else None
    if old_format is not None and old_format != str(model_format):
        log.warning(
            "%s champion v%s has model format %s, this version %s: it takes the alias",
            name,
            current.version,
            old_format,
            model_format,
        )
    elif current is not None and str(current.version) != str(version):
        best = current.tags.get(metric)  # the score it was registered with
        if best is None and current.run_id:
            best = client.get_run(current.run_id).data.metrics.get(metric)
        best = None if best is None else float(best)
        if best is not None:
            promote = value > best if higher_is_better else value < best
    return promote


def announce(run: Any, metric: str, value: float) -> None:
    """Print where the run logged and its headline metric (every entry point ends with this)."""
    mlflow = get_mlflow()
    exp = mlflow.get_experiment(run.info.experiment_id)
    if mlflow.active_run():
        mlflow.set_tag("headline_metric", metric)
    print(
        f"MLflow: experiment '{exp.name}' run {run.info.run_id} ({tracking_uri()})\n"
        f"{metric} = {value:.4f}",
        flush=True,
    )


def publish(
    run: Any,
    tracking_cfg: Any,
    metrics: Mapping[str, float],
    *,
    python_model: Any,
    artifacts: Mapping[str, str] | None = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    model_name: str | None = None,
) -> str | None:
    """The end of every pipeline: log the pyfunc, register it, tag the run, announce.

    The registered model is `tracking.model_name` (or `model_name`); its `champion` alias moves
    only when `metrics[tracking.headline_metric]` beats the current champion's. Returns the
    logged model's URI (None on DDP workers, which log nothing).
    """
    if run is None:
        return None
    headline = tracking_cfg.headline_metric
    if headline not in metrics:
        raise KeyError(
            f"tracking.headline_metric '{headline}' is not among the run's metrics: "
            f"{sorted(metrics)}"
        )
    mlflow = get_mlflow()
    footprint = model_card.artifact_footprint((artifacts or {}).values())
    log_metrics(footprint)
    metrics = {**metrics, **footprint}
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        artifacts=dict(artifacts) if artifacts else None,
        input_example=input_example,
        pip_requirements=pip_requirements,
    )
    mlflow.set_tag("model_uri", info.model_uri)
    card = _log_card(run, tracking_cfg, metrics, model_name or tracking_cfg.model_name)
    if tracking_cfg.register:
        name = model_name or tracking_cfg.model_name
        fmt = getattr(python_model, "MODEL_FORMAT", 1)
        version, promoted = register_if_better(
            info.model_uri, name, headline, metrics[headline], model_format=fmt
        )
        mlflow.set_tags(
            {"registered_model": name, "model_version": version, "champion": str(promoted).lower()}
        )
        _tag_version(name, version, run, tracking_cfg, metrics)
        mlflow.MlflowClient().update_model_version(name, version, description=card)
    announce(run, headline, metrics[headline])
    return info.model_uri


def _log_card(run: Any, tracking_cfg: Any, metrics: Mapping[str, float], title: str) -> str:
    """Log the model card beside the model (`model_card.json`, `model_card.md`); returns the
    markdown, which also becomes the registered version's description."""
    mlflow = get_mlflow()
    data = mlflow.MlflowClient().get_run(run.info.run_id).data
    card = model_card.build(tracking_cfg.card, data.params, data.tags, metrics)
    text = model_card.to_markdown(card, title)
    mlflow.log_dict(card, "model_card.json")
    mlflow.log_text(text, "model_card.md")
    return text


def _tag_version(name: str, version: str, run: Any, tracking_cfg: Any, metrics: Mapping) -> None:
    """What a reviewer needs on the version itself: where it came from and how it scored."""
    client = get_mlflow().MlflowClient()
    tags = client.get_run(run.info.run_id).data.tags
    out = {
        "run_id": run.info.run_id,
        "git_sha": tags.get("git_sha", "unknown"),
        "data_fingerprint": tags.get("data_fingerprint", "unknown"),
        "experiment": tags.get("experiment", "unknown"),
        "validation_metric": tracking_cfg.headline_metric,
    }
    test = tracking_cfg.test_metric
    if test and test in metrics:
        out.update(test_metric=test, **{test: str(metrics[test])})
    for key, value in out.items():
        client.set_model_version_tag(name, version, key, value)


_NOT_THERE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # model / its alias missing


def find_champion(client: Any, names: Iterable[str]) -> tuple[str, Any] | None:
    """(name, champion version) of the first registered model in `names` with a `champion`
    alias, else None. A missing model or alias is skipped; any other store error is raised."""
    from mlflow.exceptions import MlflowException

    for name in names:
        try:
            return name, client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code not in _NOT_THERE:
                raise
    return None


def load_registered_model(model_uri: str, make_target: str) -> Any:
    """`mlflow.pyfunc.load_model(model_uri)`, or an error saying which `make` target creates it."""
    mlflow = get_mlflow()
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as exc:
        raise ModelNotFoundError(
            f"no model at {model_uri} in {tracking_uri()} ({exc.message.splitlines()[0]}). "
            f"Create it with `{make_target}`, or pass --model-uri."
        ) from None
