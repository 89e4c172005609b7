"""The start-up probe of an http(s) MLflow tracking server: MLflow's own client retries a dead
server for minutes, this fails within seconds naming the URI (and whether it answered at all,
or answered like something else)."""

from __future__ import annotations

import json
import os

from shared.errors import InputError

PROBE_TIMEOUT_S = 10.0  # an http(s) tracking server must answer within this at start-up
_probed: set[str] = set()


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
