"""Circuit breakers per (gateway, model), shared by every model and runnable in the process.

A breaker opens once per outage: after ``failure_threshold`` consecutive failures of attempts that
started while it was closed. Attempts already in flight when it opened say nothing new: their
failures neither re-open it nor count, and their successes (the model answered before it broke) do
not close it. While open, the model gets no attempts; after the cooldown one probe is let through
(single-flight) and its success closes the breaker. The cooldown starts short and doubles while
probes keep failing, up to a ceiling, so a model that recovers is seen within seconds and a dead
one costs a probe per minute at most.

Every attempt holds a :class:`Permit`; whatever way the attempt ends (a result, an error, a
cancellation, a consumer leaving a stream), the permit is resolved, so a probe slot is never lost.

>>> clock = iter([0.0, 0.0, 0.0, 0.0, 1.0, 6.0, 6.0]).__next__
>>> breaker = CircuitBreaker(clock=clock)
>>> settings = BreakerSettings(failure_threshold=2, cooldown=5.0)
>>> for _ in range(2):
...     with breaker.acquire(settings) as permit:
...         permit.failure()
>>> breaker.acquire(settings) is None, breaker.acquire(settings).probe
(True, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BreakerSettings", "CircuitBreaker", "Permit", "breakers"]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerSettings:
    """When a breaker opens and for how long (seconds)."""

    failure_threshold: int = 3
    cooldown: float = 5.0
    max_cooldown: float = 60.0
    cooldown_multiplier: float = 2.0


class Permit:
    """The right to make one attempt. Resolve it with :meth:`success` or :meth:`failure`; leaving
    the ``with`` block (or calling :meth:`release`) without either says nothing about the model."""

    __slots__ = ("_breaker", "_done", "_settings", "epoch", "probe")

    def __init__(self, breaker: CircuitBreaker, settings: BreakerSettings, epoch: int, probe: bool) -> None:
        self._breaker = breaker
        self._settings = settings
        self.epoch = epoch
        self.probe = probe
        self._done = False

    def success(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._success(self)

    def failure(self, retry_after: float | None = None) -> None:
        if not self._done:
            self._done = True
            self._breaker._failure(self, self._settings, retry_after)

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._release(self)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class CircuitBreaker:
    """One model's breaker. Thread- and task-safe: each step is a short critical section."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.epoch = 0  # bumped at every opening (and re-opening after a failed probe)
        self.open_until: float | None = None
        self.cooldown: float | None = None
        self.probing = False
        self.times_opened = 0  # outages: closed → open transitions

    def _state(self, now: float) -> State:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    @property
    def state(self) -> State:
        with self._lock:
            return self._state(self._clock())

    def acquire(self, settings: BreakerSettings) -> Permit | None:
        """A permit for one attempt, or None while the breaker is open (or its probe is out)."""
        with self._lock:
            state = self._state(self._clock())
            if state == "closed":
                return Permit(self, settings, self.epoch, probe=False)
            if state == "open" or self.probing:
                return None
            self.probing = True
            return Permit(self, settings, self.epoch, probe=True)

    def _success(self, permit: Permit) -> None:
        with self._lock:
            if permit.probe:
                self.probing = False
                self.open_until = None
                self.cooldown = None
                self.failures = 0
            elif permit.epoch == self.epoch and self.open_until is None:
                self.failures = 0
            # else: it started before the breaker opened; it says nothing about the model now

    def _failure(self, permit: Permit, settings: BreakerSettings, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            if permit.probe:
                self.probing = False
                self.cooldown = min(
                    (self.cooldown or settings.cooldown) * settings.cooldown_multiplier, settings.max_cooldown
                )
                self._open(now, retry_after)
                return
            if permit.epoch != self.epoch or self.open_until is not None:
                return  # in flight when the breaker opened: neither re-opens nor counts
            self.failures += 1
            if self.failures >= settings.failure_threshold:
                self.cooldown = settings.cooldown
                self.times_opened += 1
                self._open(now, retry_after)

    def _open(self, now: float, retry_after: float | None) -> None:
        self.epoch += 1
        self.failures = 0
        self.open_until = now + max(self.cooldown or 0.0, retry_after or 0.0)

    def _release(self, permit: Permit) -> None:
        if permit.probe:
            with self._lock:
                self.probing = False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            return {
                "state": self._state(now),
                "consecutive_failures": self.failures,
                "reopens_in": max(0.0, self.open_until - now) if self.open_until is not None else 0.0,
                "cooldown": self.cooldown,
                "times_opened": self.times_opened,
            }


class BreakerRegistry:
    """The process-wide breakers, keyed by (base URL, model)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, base_url: str, model: str) -> CircuitBreaker:
        key = (base_url, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(key)
                if breaker is None:
                    breaker = self._breakers[key] = CircuitBreaker(lambda: self.clock())
        return breaker

    def state(self) -> dict[str, dict[str, Any]]:
        """Every breaker's state, keyed ``"base_url model"``."""
        return {f"{url} {model}": b.snapshot() for (url, model), b in list(self._breakers.items())}

    def reset(self) -> None:
        with self._lock:
            self._breakers.clear()


breakers = BreakerRegistry()
