"""infra/aws/launch.sh renders cloud-init user data that carries its settings intact."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

AWS = Path(__file__).resolve().parents[2] / "infra" / "aws"
ENV = {
    "AWS_KEY_NAME": "team-key",
    "AWS_SECURITY_GROUP_ID": "sg-0123",
    "ML_MLFLOW_TRACKING_URI": "http://mlflow.internal:5000",
    "ML_REPO_URL": "https://git.example/ml portfolio's.git",  # a space and a quote survive
    "ML_COMMIT": "0123456789abcdef0123456789abcdef01234567",
    "PATH": os.environ["PATH"],
}


def _dry_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(AWS / "launch.sh"), "--dry-run", *args],
        env={**ENV, **env},
        capture_output=True,
        text=True,
    )


def test_user_data_installs_the_commit_and_points_mlflow_at_the_server():
    done = _dry_run("tabular-gbm", "DATA=/data/isic-2024")
    assert done.returncode == 0, done.stderr
    user_data, command = done.stdout.split("# user data\n")[1].split("# command\n")
    assert user_data.startswith("#cloud-config\n")
    files = {
        f["path"]: base64.b64decode(f["content"]) for f in yaml.safe_load(user_data)["write_files"]
    }
    assert files["/usr/local/bin/ml-portfolio-run"] == (AWS / "run-target.sh").read_bytes()
    shown = subprocess.run(
        [
            "bash",
            "-c",
            'source /dev/stdin; printf "%s|" "$REPO_URL" "$COMMIT" '
            '"$MLFLOW_TRACKING_URI" "$MAKE_TARGET" "$MAKE_ARGS"',
        ],
        input=files["/etc/ml-portfolio.env"].decode(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.split("|")[:5] == [
        ENV["ML_REPO_URL"],
        ENV["ML_COMMIT"],
        ENV["ML_MLFLOW_TRACKING_URI"],
        "tabular-gbm",
        "DATA=/data/isic-2024",
    ]
    for part in ("run-instances", "team-key", "sg-0123", "terminate", ENV["ML_COMMIT"]):
        assert part in command


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_KEY_NAME": ""}, "AWS_KEY_NAME"),
        ({"ML_MLFLOW_TRACKING_URI": "mlflow.internal:5000"}, "must be http"),
        ({"ML_COMMIT": "main; rm -rf /"}, "must be a commit SHA"),
    ],
)
def test_a_missing_or_bad_setting_stops_before_any_aws_call(env, message):
    done = _dry_run("smoke", **env)
    assert done.returncode != 0 and message in done.stderr
    assert "# command" not in done.stdout


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="needs shellcheck (Debian package; `make test` installs it when run as root)",
)
def test_the_scripts_pass_shellcheck():
    subprocess.run(["shellcheck", *map(str, sorted(AWS.glob("*.sh")))], check=True)
