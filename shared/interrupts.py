"""Ctrl-C and SIGTERM as the tracking helper sees them: both end a run KILLED, not FAILED
(a scheduler's stop is no crash), including the forms Lightning wraps them in."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the run ends KILLED (a scheduler's stop is no crash)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def sigterm_raises() -> Iterator[None]:
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
