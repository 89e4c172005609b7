"""Logging that never blocks the server's loop: records go through a bounded queue to a thread.

The server logs from its only thread. Written straight to stdout, one blocked write (Ctrl-S in
its terminal, a parent that stops reading the pipe) froze every client. With `nonblocking_logging`
the root logger's handlers move behind a `QueueHandler`; a daemon thread writes them out, and
when the queue is full (the output is stuck) records are counted and dropped, never waited for.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import threading

QUEUE_SIZE = 10_000


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler whose `enqueue` never waits: a full queue drops the record."""

    def __init__(self, q: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(q)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class LogPump:
    """The thread that writes queued records to the handlers the root logger had before."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        self.queue: queue.Queue[logging.LogRecord | None] = queue.Queue(QUEUE_SIZE)
        self.handlers = handlers
        self.thread = threading.Thread(target=self._run, name="chat-log", daemon=True)

    def _run(self) -> None:
        while (record := self.queue.get()) is not None:
            for h in self.handlers:
                if record.levelno >= h.level:
                    h.handle(record)

    def stop(self, timeout: float = 2.0) -> None:
        """Flush what is queued if the output takes it within `timeout`; never hang on it."""
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)


def nonblocking_logging() -> tuple[LogPump, DroppingQueueHandler]:
    """Put the root logger's handlers behind a bounded queue; returns the pump and the handler
    (`handler.dropped` counts records lost to a stuck output)."""
    root = logging.getLogger()
    pump = LogPump(list(root.handlers))
    handler = DroppingQueueHandler(pump.queue)
    for h in pump.handlers:
        root.removeHandler(h)
    root.addHandler(handler)
    pump.thread.start()
    return pump, handler
