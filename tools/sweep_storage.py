"""Where a sweep's study lives, and the trials a dead worker left RUNNING: each trial records
the host, pid and start time of the process running it, so a resumed sweep fails exactly
those trials whose process is gone (a zombie counts as gone) and retries their parameters.
"""

from __future__ import annotations

import os
import socket
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from shared.locks import lock_for, sqlite_file
from shared.logging import get_logger
from tools.sweep_space import SweepError

log = get_logger(__name__)

WORKER_ATTR = "worker"  # host:pid:start time of the process running a trial


def open_storage(url: str) -> Any:
    """An Optuna RDB storage; an unreachable database fails here, naming the URL.

    PostgreSQL URLs name the driver, `postgresql+psycopg2://` (SQLAlchemy 2.1's plain
    `postgresql://` means psycopg 3, which is not installed), and a database of its own: Optuna
    and MLflow both keep an `alembic_version` table.
    """
    import optuna
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    try:
        guard: Any = nullcontext()
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 60}}  # several workers write one file
            database = sqlite_file(url)
            if database is not None and database.parent.is_dir():
                # Two processes creating one brand-new file race on its alembic_version row
                # (IntegrityError: a second sweep, or a reader, beside the first one's start).
                guard = lock_for(database)
        with guard:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as exc:  # OSError: the lock
        hint = " (write postgresql+psycopg2://)" if url.startswith("postgresql://") else ""
        raise SweepError(
            f"study storage {mask_url(url)} unusable: {str(exc).splitlines()[0]}{hint}"
        ) from None
    except RuntimeError as exc:  # Optuna read another alembic_version (MLflow's database?)
        raise SweepError(
            f"study storage {mask_url(url)} holds another schema ({exc}); give the studies a "
            "database of their own (e.g. .../optuna beside MLflow's .../mlflow)"
        ) from None


def mask_url(url: str) -> str:
    """The URL without its password (for messages and params)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _start_time(pid: int) -> str | None:
    """The start time of a live process; None when it is gone or a zombie (it has exited, and
    only its exit status waits for a parent that may never reap it: a killed sweep's workers
    are orphans, and not every container's init reaps orphans promptly)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # field 3: the process state
        return None
    return fields[19]  # field 22: start time since boot


def process_token(pid: int | None = None) -> str:
    """`host:pid:start time`: names a process even after its pid is reused."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def token_is_dead(token: str) -> bool | None:
    """True when the process named by `token` is gone; None when it ran on another host."""
    host, pid, start = token.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    return _start_time(int(pid)) != start


def fail_stale_trials(study: Any, storage: Any) -> list[int]:
    """Mark RUNNING trials of dead processes on this host FAIL and enqueue them again."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        token = t.user_attrs.get(WORKER_ATTR)
        dead = token_is_dead(token) if token else True
        if dead is None:
            log.warning("trial %d runs on %s: left alone", t.number, token)
            continue
        if not dead:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if set(t.params) == set(t.distributions) and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        failed.append(t.number)
    return failed


def finished(study: Any) -> list[Any]:
    """Trials that count towards `--trials`: complete or pruned."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
