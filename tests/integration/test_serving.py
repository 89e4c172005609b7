"""Every registered smoke model answers over REST exactly as it does in process.

Each project's tiny pipeline registers its model; `mlflow models serve --env-manager local`
serves it on a loopback port, the model's own input example is posted to `/invocations`, and the
answer must equal `mlflow.pyfunc.load_model(...).predict(...)` on the same rows. Then our own
server (`tools.serve`, what `make serve` runs) serves it: the README's `curl` line for that
model is run as written (port aside) and must answer as in process, and bad requests get a 400
whose message is one line naming the field.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.helpers import REPO

PROJECTS = {
    "tabular_gbm": "tabular_gbm-isic2024-smoke",
    "image_classifier": "image_classifier-isic2024-smoke",
    "retrieval_qa": "retrieval_qa-llm-science-exam-smoke",
    "captioning": "captioning-scenes-smoke",
}


README_CURL = re.compile(
    r"^\s*(curl -s 127\.0\.0\.1:5001/invocations .* -d @examples/rest/(\w+)\.json)\s*$", re.M
)


def _readme_curls() -> dict[str, str]:
    """The README's request line per project (`-d @examples/rest/<project>.json`)."""
    text = (REPO / "README.md").read_text()
    return {m.group(2): m.group(1) for m in README_CURL.finditer(text)}


def test_the_readme_has_one_working_request_per_model():
    curls = _readme_curls()
    assert set(curls) == set(PROJECTS)
    for project in PROJECTS:
        body = json.loads((REPO / "examples" / "rest" / f"{project}.json").read_text())
        assert list(body) == ["inputs"] and body["inputs"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, example: pd.DataFrame | list, timeout: float = 120) -> list:
    """A typed model's example is a list of records, sent as `{"inputs": [...]}`; a frame
    goes as `{"dataframe_split": ...}`."""
    if isinstance(example, list):
        body = json.dumps({"inputs": example})
    else:
        body = json.dumps({"dataframe_split": json.loads(example.to_json(orient="split"))})
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())["predictions"]


def _serve(model_uri: str, port: int, log: Path, ours: bool = False) -> subprocess.Popen:
    if ours:
        cmd = [sys.executable, "-m", "tools.serve", "--model", model_uri, "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
        cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--workers", "1"]
    # the scoring server runs `uvicorn` from PATH: the venv's own bin folder first
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(
        cmd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        cwd=REPO,
    )


def _wait_ready(port: int, proc: subprocess.Popen, log: Path, limit: float = 240) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"server not ready in {limit} s:\n{log.read_text()[-3000:]}")


def _as_comparable(x) -> list:
    if isinstance(x, pd.DataFrame):
        return json.loads(x.to_json(orient="records"))
    if isinstance(x, pd.Series):
        return x.tolist()
    return np.asarray(x).tolist()


def _all_floats(row: dict) -> bool:
    return all(isinstance(v, float) for v in row.values())


@pytest.mark.slow
@pytest.mark.parametrize("project", sorted(PROJECTS))
def test_registered_smoke_model_answers_over_rest_as_in_process(project, tiny, tmp_path):
    module = __import__(f"projects.{project}.train", fromlist=["run"])
    # debug=tiny marks image_classifier partial (two folds, never registered): score all folds
    extra = ("cv.folds=null", "partial=false") if project == "image_classifier" else ()
    module.run(tiny(project, *extra))
    uri = f"models:/{PROJECTS[project]}@champion"
    model = mlflow.pyfunc.load_model(uri)
    example = model.input_example
    assert isinstance(example, pd.DataFrame | list) and len(example) >= 1
    expected = _as_comparable(model.predict(example))

    port, log = _free_port(), tmp_path / "serve.log"
    proc = _serve(uri, port, log)
    try:
        _wait_ready(port, proc, log)
        got = _post(port, example)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    if got and isinstance(got[0], dict) and len(got[0]) == 1 and not isinstance(expected[0], dict):
        got = [next(iter(row.values())) for row in got]  # a named Series comes back as records
    _assert_same(got, expected)

    _check_our_server(project, uri, model, tmp_path)


def _assert_same(got: list, expected: list) -> None:
    if expected and isinstance(expected[0], float):
        assert np.allclose(got, expected, atol=1e-6)
    elif expected and isinstance(expected[0], dict) and _all_floats(expected[0]):
        assert [sorted(r) for r in got] == [sorted(r) for r in expected]
        keys = sorted(expected[0])
        as_rows = [[r[k] for k in keys] for r in got], [[r[k] for k in keys] for r in expected]
        assert np.allclose(*as_rows, atol=1e-6)
    else:
        assert got == expected


def _post_raw(port: int, body: object) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _check_our_server(project: str, uri: str, model, tmp_path: Path) -> None:
    """`make serve`'s server: the README's request as written, then bad requests."""
    body = json.loads((REPO / "examples" / "rest" / f"{project}.json").read_text())
    rows = body["inputs"]
    expected = _as_comparable(model.predict(rows))
    port, log = _free_port(), tmp_path / "ours.log"
    proc = _serve(uri, port, log, ours=True)
    try:
        _wait_ready(port, proc, log)
        cmd = shlex.split(_readme_curls()[project].replace("5001", str(port)))
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
        _assert_same(json.loads(out)["predictions"], expected)
        frame = pd.DataFrame(rows)  # the same rows as dataframe_split
        split = json.loads(frame.to_json(orient="split", index=False))
        status, answer = _post_raw(port, {"dataframe_split": split})
        assert status == 200, answer
        _assert_same(answer["predictions"], expected)

        first = next(iter(rows[0]))
        renamed = {(f"{first}_x" if k == first else k): v for k, v in rows[0].items()}
        bad = {
            "renamed": ([renamed], f"unexpected field '{first}_x' (did you mean '{first}'?)"),
            "extra": ([{**rows[0], "colour": 1}], "row 0: unexpected field 'colour'"),
            "empty": ([], "no rows"),
            "not rows": ("x", "expected a JSON list of rows"),
        }
        for case, (inputs, words) in bad.items():
            status, answer = _post_raw(port, {"inputs": inputs})
            message = answer["message"]
            assert status == 400, (case, answer)
            assert words in message and "\n" not in message and len(message) < 300, case
        status, answer = _post_raw(port, {"rows": rows})
        assert status == 400 and "inputs, dataframe_split, dataframe_records" in answer["message"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
