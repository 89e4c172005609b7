"""A wrong MLFLOW_TRACKING_URI fails a run at start-up within seconds, naming the URI."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time

import mlflow  # noqa: F401  (imported here so the timings below measure the probe)
import pytest

from shared import tracking, tracking_server
from shared.errors import InputError
from tests.helpers import REPO


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def uri(monkeypatch):
    """Point tracking at a URI for one test (and forget what earlier probes accepted)."""
    monkeypatch.setattr(tracking_server, "_probed", set())

    def point(value: str) -> str:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", value)
        return value

    return point


def test_a_closed_port_fails_fast_with_the_uri(uri):
    url = uri(f"http://127.0.0.1:{_closed_port()}")
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=f"{url} is unreachable"):
        tracking.get_mlflow()
    assert time.perf_counter() - t0 < 3


def test_a_server_that_never_answers_fails_after_the_probe_timeout(uri, monkeypatch):
    monkeypatch.setattr(tracking_server, "PROBE_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = uri(f"http://127.0.0.1:{silent.getsockname()[1]}")
        t0 = time.perf_counter()
        with pytest.raises(InputError, match=url):
            tracking.start_run("never").__enter__()
        assert time.perf_counter() - t0 < 3


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_server_that_is_not_mlflow_is_refused(uri):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = uri(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(InputError, match=f"{url} answered HTTP 404"):
            tracking.get_mlflow()
    finally:
        server.shutdown()
        server.server_close()


def test_local_stores_are_not_probed(uri, tmp_path):
    uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking_server.check_tracking_server(tracking.tracking_uri())  # no server, no error


@pytest.mark.slow  # a pipeline start-up: ~10 s alone, more on a busy machine
def test_the_pipeline_prints_one_error_line_and_exits_2(tmp_path):
    """The whole entry point: no silent fallback to mlflow.db, no traceback, no hang."""
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {
        "MLFLOW_TRACKING_URI": url,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ":".join(sys.path),
    }
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "projects.tabular_gbm.train",
            "experiment=smoke",
            "debug=tiny",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'out'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors and url in errors[0] and "unreachable" in errors[0]
    assert "Traceback" not in done.stderr
    assert time.perf_counter() - t0 < 90
