"""The shared tracking server without Docker: PostgreSQL (Debian's) + `mlflow server`.

A throwaway PostgreSQL cluster on a free loopback port (owned by the `postgres` user: it
refuses root), an MLflow server on it with a local artifacts destination, then smoke pipelines
logging over HTTP: one alone, two at once (the case a SQLite store cannot serve). Everything
started here is stopped by finalizers, also when a test fails. `make test-server` runs these.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.server

MODEL = "tabular_gbm-isic2024-smoke"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    """PostgreSQL's server binaries, installing Debian's package when they are missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        if os.geteuid() != 0:
            pytest.skip("PostgreSQL is not installed and installing it needs root")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


def _as_postgres(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, **kwargs)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_postgres(pg: Path, data: Path) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):  # not running
        _as_postgres(str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")


@pytest.fixture(scope="module")
def postgres(request) -> str:
    """A PostgreSQL cluster in a temporary folder on a free loopback port, with the databases
    `mlflow` and `optuna`: its URL without a database name."""
    pg = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    _as_postgres(str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(pg / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-o", options]
    _as_postgres(*ctl, "-w", "-t", "60", "start")
    request.addfinalizer(lambda: _stop_postgres(pg, data))
    for database in ("mlflow", "optuna"):  # both keep an `alembic_version` table: one each
        _as_postgres(str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), database)
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory, request) -> str:
    """`mlflow server` on the cluster, artifacts in a temporary folder: its http URI."""
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", f"{postgres}/mlflow"),
            *("--artifacts-destination", str(root / "artifacts")),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    request.addfinalizer(lambda: (_stop_group(proc), log.close()))
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # the first start migrates the schema
    while True:
        try:  # up, and past its first (slow) query: a run's start-up probe then answers fast
            search = urllib.request.Request(
                f"{uri}/api/2.0/mlflow/experiments/search",
                data=b'{"max_results": 1}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(search, timeout=60) as resp:
                if resp.status == 200:
                    return uri
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not start:\n{(root / 'server.log').read_text()}")
        time.sleep(1)


def _pipeline(uri: str, root: Path, run_name: str) -> subprocess.Popen:
    """The tabular_gbm smoke pipeline (debug=tiny) logging to `uri`."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "projects.tabular_gbm.train"),
            *("experiment=smoke", "debug=tiny", f"tracking.run_name={run_name}"),
            f"paths.data_dir={root / 'data'}",
            f"paths.output_dir={root / 'outputs' / run_name}",
        ],
        cwd=REPO,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        _stop_group(proc)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipelines")


@pytest.fixture(scope="module")
def client(server):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=server)


def _top_level_run(client, run_name: str):
    exp = client.get_experiment_by_name("tabular_gbm")
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}'"
    )
    assert len(runs) == 1
    return runs[0]


def _check_complete(client, run) -> None:
    """FINISHED, its metrics, params, artifacts and five finished fold runs."""
    assert run.info.status == "FINISHED"
    assert 0.0 < run.data.metrics["oof_pauc"] <= 0.2
    assert run.data.params["model.lightgbm.num_boost_round"] == "40"  # debug=tiny
    assert run.data.tags["data_fingerprint"] and run.data.tags["git_sha"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "oof.csv", "roc_curve.png", "feature_spec.json"} <= artifacts
    folds = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
    )
    assert sorted(f.data.tags["fold"] for f in folds) == ["0", "1", "2", "3", "4"]
    assert all(f.info.status == "FINISHED" and "ensemble_pauc" in f.data.metrics for f in folds)


def test_a_pipeline_logs_and_registers_through_the_server(server, client, data_root):
    out = _finish(_pipeline(server, data_root, "server-one"))
    assert f"({server})" in out  # it says where it logged: the server, not mlflow.db
    run = _top_level_run(client, "server-one")
    _check_complete(client, run)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == run.info.run_id
    import mlflow
    import pandas as pd

    # the logged model comes back through the server's artifact proxy and predicts
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
        (folder,) = (data_root / "data" / "smoke").glob("isic2024-*")  # keyed by its settings
        test = pd.read_csv(folder / "test-metadata.csv")
        scores = model.predict(test.head(5))
    finally:
        mlflow.set_tracking_uri(old)
    assert len(scores) == 5


def test_two_pipelines_at_once_both_land_complete(server, client, data_root):
    # data generated by the test above (the generator is not meant to run twice at once)
    procs = [_pipeline(server, data_root, name) for name in ("server-a", "server-b")]
    for proc in procs:
        _finish(proc)
    for name in ("server-a", "server-b"):
        _check_complete(client, _top_level_run(client, name))
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 3


def test_a_sweep_keeps_its_study_in_the_servers_database(server, postgres, data_root):
    """`--storage postgresql+psycopg2://.../optuna`: the study lives on the runs' server."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    subprocess.run(
        [
            *(sys.executable, "-m", "tools.sweep", "--project", "tabular_gbm"),
            *("--trials", "1", "--storage", f"{postgres}/optuna"),
            *("experiment=smoke", "debug=tiny"),
            "model.lightgbm.num_boost_round=20",
            "model.catboost.params.iterations=20",
            f"paths.data_dir={data_root / 'data'}",
            f"paths.output_dir={data_root / 'sweep'}",
        ],
        cwd=REPO,
        env=env,
        check=True,
        timeout=600,
    )
    import optuna

    study = optuna.load_study(study_name="tabular_gbm-default", storage=f"{postgres}/optuna")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
