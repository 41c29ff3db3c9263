"""Per-attempt deadlines: ``first_token_timeout`` and ``stall_timeout``.

A deadline applies only while the caller is waiting for the gateway (a read in progress), never
while the caller is busy with a chunk it was given. When one passes, the attempt's connection is shut
down at once, so the blocked read returns, no socket or thread outlives the attempt, and the gateway
stops generating (and billing) an answer nobody will read.

Async reads are bounded by the event loop's own timers. Sync reads are watched by one shared
watchdog thread, started with the first watched attempt and gone as soon as none is left, so an
idle process keeps no extra thread.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Deadline", "StreamTimeouts", "shutdown_socket", "watchdog"]


@dataclass(frozen=True)
class StreamTimeouts:
    """How long one attempt may wait: for its first content, then between chunks after it."""

    first_token: float | None = None
    stall: float | None = None

    @property
    def active(self) -> bool:
        return self.first_token is not None or self.stall is not None


class Deadline:
    """The deadline of one sync attempt. ``arm(at)`` before each blocking read, ``disarm()`` after it;
    ``close()`` when the attempt ends. ``on_expire`` runs once, on the watchdog thread."""

    __slots__ = ("_at", "_on_expire", "expired")

    def __init__(self, on_expire: Callable[[], None]) -> None:
        self._at: float | None = None
        self._on_expire = on_expire
        self.expired = False
        watchdog.add(self)

    def arm(self, at: float) -> None:
        self._at = at
        if at < watchdog.next_wake:  # earlier than the watchdog planned to look: tell it
            watchdog.wake(at)

    def disarm(self) -> None:
        self._at = None

    def close(self) -> None:
        self._at = None
        watchdog.remove(self)

    def _poll(self, now: float) -> float:
        """Fire if due; the time this deadline next needs a look (inf: none)."""
        at = self._at
        if at is None or self.expired:
            return math.inf
        if now < at:
            return at
        self.expired = True
        self._at = None
        with contextlib.suppress(Exception):  # a failing close must not stop the watchdog
            self._on_expire()
        return math.inf


def shutdown_socket(sock: socket.socket | None) -> None:
    """Wake a thread blocked in ``recv`` on ``sock`` (closing the socket alone does not, on Linux)."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_MAX_SLEEP = 0.25


class _Watchdog:
    """One thread for every watched sync attempt in the process; it exits when none is left."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._active: set[Deadline] = set()
        self._thread: threading.Thread | None = None
        self.next_wake = math.inf

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            self._active.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aisa-deadline-watchdog", daemon=True)
                self._thread.start()

    def remove(self, deadline: Deadline) -> None:
        with self._cond:
            self._active.discard(deadline)
            if not self._active:
                self._cond.notify()

    def wake(self, at: float) -> None:
        with self._cond:
            if at < self.next_wake:
                self.next_wake = at
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while self._active:
                now = self.clock()
                wake = min((d._poll(now) for d in list(self._active)), default=math.inf)
                self.next_wake = wake
                # Capped: an arm() racing this computation is still seen within _MAX_SLEEP.
                self._cond.wait(min(_MAX_SLEEP, max(0.0, wake - now)))
            self.next_wake = math.inf
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None


watchdog = _Watchdog()
