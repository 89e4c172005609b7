"""The one way every project opens an MLflow run.

`start_run` sets the experiment (one per project), tags the run with the git state and a data
fingerprint, logs the resolved config (as YAML and as flattened params), and on an exception
ends the run FAILED with the error text while keeping everything logged so far.
`register_if_better` registers a model version and moves the `champion` alias only when the
new run beats the current champion on the project's headline metric.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from shared import REPO_ROOT
from shared.errors import InputError, ModelNotFoundError
from shared.logging import get_logger

log = get_logger(__name__)

CHAMPION = "champion"
SWEEP_PARENT_ENV = "SWEEP_PARENT_RUN_ID"  # set by shared.sweep: top-level runs nest under it
PROBE_TIMEOUT_S = 10.0  # an http(s) tracking server must answer within this at start-up
_probed: set[str] = set()
_SMALL_FILE = 32 * 1024 * 1024  # hash whole content below this size, else size+mtime+edges
_VERSIONED_PACKAGES = (
    "torch",
    "lightning",
    "mlflow",
    "hydra-core",
    "lightgbm",
    "catboost",
    "timm",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "numpy",
    "pandas",
)


def is_rank_zero() -> bool:
    """True on the process that owns tracking (rank 0 under DDP, or the only process)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) == 0


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the embedded SQLite store at the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where local stores keep artifacts (`MLFLOW_ARTIFACT_ROOT` overrides)."""
    return Path(os.environ.get("MLFLOW_ARTIFACT_ROOT") or REPO_ROOT / "mlartifacts")


class TrackingServerError(InputError, ConnectionError):
    """The http(s) tracking server is unreachable or does not answer like an MLflow server."""


def check_tracking_server(uri: str, timeout: float | None = None) -> None:
    """Fail within seconds, naming `uri`, unless an http(s) server answers an MLflow search.

    MLflow's own client retries a dead server for minutes; this probe runs once per process
    and URI so a wrong `MLFLOW_TRACKING_URI` stops a run before any work, never silently
    falling back to another store. Other URIs (sqlite:, file paths) are not probed.
    """
    if not uri.startswith(("http://", "https://")) or uri in _probed:
        return
    import base64
    import ssl
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
        pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    context = None
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()
    request = urllib.request.Request(
        uri.rstrip("/") + "/api/2.0/mlflow/experiments/search",
        data=b'{"max_results": 1}',
        headers=headers,
        method="POST",
    )
    fix = "start it (make infra-up) or unset MLFLOW_TRACKING_URI to use the local mlflow.db"
    try:
        with urllib.request.urlopen(
            request, timeout=timeout or PROBE_TIMEOUT_S, context=context
        ) as resp:
            body = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise TrackingServerError(
            f"MLflow tracking server {uri} answered HTTP {exc.code} ({exc.reason}) to a search "
            "for experiments: not an MLflow server, wrong credentials (MLFLOW_TRACKING_TOKEN, "
            "MLFLOW_TRACKING_USERNAME/PASSWORD), or its database is down"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc or "timed out"
        raise TrackingServerError(
            f"MLflow tracking server {uri} is unreachable ({reason}); {fix}"
        ) from None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TrackingServerError(
            f"{uri} answered, but not like an MLflow tracking server (no JSON from "
            "/api/2.0/mlflow/experiments/search): check MLFLOW_TRACKING_URI"
        )
    _probed.add(uri)


def get_mlflow():
    """The `mlflow` module pointed at `tracking_uri()` (telemetry off; a server is probed)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    check_tracking_server(tracking_uri())
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


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


def git_state(root: Path = REPO_ROOT) -> tuple[str, bool]:
    """(commit SHA, whether the work tree has uncommitted changes); 'unknown' outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def data_fingerprint(paths: Iterable[str | Path]) -> str:
    """A short hash over the input files' names, sizes and contents.

    Files over 32 MiB are hashed by size, mtime and their first and last MiB, so a
    multi-GB HDF5 fingerprints in milliseconds while any rewrite still changes the hash.
    """
    h = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += [
                (str(f.relative_to(p.parent)), f) for f in sorted(p.rglob("*")) if f.is_file()
            ]
        elif p.is_file():
            files.append((p.name, p))
        else:
            h.update(f"missing:{p.name}".encode())
    for name, f in sorted(files):
        size = f.stat().st_size
        h.update(f"{name}:{size}".encode())
        with f.open("rb") as fh:
            if size <= _SMALL_FILE:
                h.update(fh.read())
            else:
                h.update(str(f.stat().st_mtime_ns).encode())
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:16]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {'a.b.c': 'value'} with values as strings (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def _config_to_container(config: Any) -> dict:
    if config is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(config)


def _package_versions() -> dict[str, str]:
    out = {}
    for pkg in _VERSIONED_PACKAGES:
        try:
            out[f"version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except ImportError:  # pragma: no cover
        pass
    return f"cpu:{os.cpu_count()} cores"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the run ends KILLED (a scheduler's stop is no crash)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread (other handlers are kept)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interruption(exc: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM behind `exc`, if it is one.

    Lightning turns a KeyboardInterrupt during `fit` into `SystemExit(1)` (raised while
    handling it) and a SIGTERM into `SIGTERMException`, a SystemExit: both are interruptions.
    """
    if isinstance(exc, KeyboardInterrupt):
        return exc
    if isinstance(exc, SystemExit):
        if isinstance(exc.__context__, KeyboardInterrupt):
            return exc.__context__
        if type(exc).__name__ == "SIGTERMException":
            return Terminated("SIGTERM")
    return None


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
    run = mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else exp_id,
        run_name=None if run_id else run_name,
        nested=nested,
        parent_run_id=parent_run_id,
    )
    try:
        with _sigterm_raises():
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
            device=_device_name(),
            **_package_versions(),
        )
        paths = list(data_paths)
        if paths:
            all_tags["data_fingerprint"] = data_fingerprint(paths)
            # what `shared.reproduce` re-fingerprints, and where relative config paths were
            # resolved from
            all_tags["data_paths"] = json.dumps([str(Path(p).resolve()) for p in paths])
            all_tags["cwd"] = os.getcwd()
    mlflow.set_tags(all_tags)
    container = _config_to_container(config)
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
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
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
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        artifacts=dict(artifacts) if artifacts else None,
        input_example=input_example,
        pip_requirements=pip_requirements,
    )
    mlflow.set_tag("model_uri", info.model_uri)
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
    announce(run, headline, metrics[headline])
    return info.model_uri


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
