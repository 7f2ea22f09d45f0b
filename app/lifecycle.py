"""How a process role starts, waits and ends: SIGINT and SIGTERM end every role the same way.

A role registers what it started (brokers, worker pools, servers, threads) on a :class:`Shutdown`
in start order; the first SIGINT or SIGTERM sets its event, and :meth:`Shutdown.close` stops the
parts in reverse order, each once, even when one of them fails. So no role leaves a broker, a
worker process or a non-daemon thread running after it has said it stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from farsight.logs import kv

log = logging.getLogger("farsight.lifecycle")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
"""What ``signal.signal`` returns: the handler it replaced."""


class Shutdown:
    """A stop event plus the stop actions of what a role started, run in reverse order."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._actions: list[tuple[str, Callable[[], object]]] = []
        self._lock = threading.Lock()
        self._closed = False

    def on_close(self, name: str, action: Callable[[], object]) -> None:
        """Run ``action`` at :meth:`close` (last registered, first run)."""
        with self._lock:
            self._actions.append((name, action))

    def request(self) -> None:
        """Ask the role to stop (what a signal does)."""
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested (or ``timeout``); True when it was."""
        return self.event.wait(timeout)

    def close(self) -> None:
        """Stop everything registered, newest first; a failing part does not keep the others
        running (its error is logged)."""
        self.event.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            actions, self._actions = self._actions[::-1], []
        for name, action in actions:
            t0 = time.monotonic()
            try:
                action()
            except Exception as exc:  # keep stopping the rest: a process must end whole
                log.exception("stop failed", extra=kv(part=name, error=type(exc).__name__))
            log.debug("stopped", extra=kv(part=name, seconds=round(time.monotonic() - t0, 3)))


@contextmanager
def stop_on_signals(shutdown: Shutdown) -> Iterator[Shutdown]:
    """Route SIGINT and SIGTERM to ``shutdown.request`` while inside; the previous handlers
    come back afterwards. Only the main thread can install handlers: elsewhere (a role run
    from a test's thread) nothing is installed and the caller requests the stop itself."""
    previous: dict[signal.Signals, _Handler] = {}
    if threading.current_thread() is threading.main_thread():

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("stop requested", extra=kv(signal=signal.Signals(signum).name))
            shutdown.request()

        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handle)
    try:
        yield shutdown
    finally:
        for sig, handler in previous.items():
            # None: the handler was not installed from Python; the default is the best guess.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def run_until_stopped(shutdown: Shutdown, poll_s: float = 0.5) -> None:
    """Wait for SIGINT/SIGTERM (or ``shutdown.request()``), then close what was registered."""
    with stop_on_signals(shutdown):
        try:
            while not shutdown.wait(poll_s):
                pass
        finally:
            shutdown.close()
