"""Circuit breakers per (gateway, model), shared by every model and runnable in the process, and
by every process when the state store is Redis (:mod:`aisa_integrations.core.state`).

A breaker opens once per outage: after ``failure_threshold`` consecutive failures of attempts that
started while it was closed. Attempts already in flight when it opened say nothing new: their
failures neither re-open it nor count, and their successes (the model answered before it broke) do
not close it. While open, the model gets no attempts; after the cooldown one probe is let through
(single-flight) and its success closes the breaker. The cooldown starts short and doubles while
probes keep failing, up to a ceiling, so a model that recovers is seen within seconds and a dead
one costs a probe per minute at most.

Every attempt holds a :class:`Permit`; whatever way the attempt ends (a result, an error, a
cancellation, a consumer leaving a stream), the permit is resolved, so a probe slot is never lost.

>>> now = [0.0]
>>> breaker = CircuitBreaker(clock=lambda: now[0])
>>> settings = BreakerSettings(failure_threshold=2, cooldown=5.0)
>>> for _ in range(2):
...     with breaker.acquire(settings) as permit:
...         permit.failure()
>>> breaker.acquire(settings) is None
True
>>> now[0] = 6.0
>>> breaker.acquire(settings).probe, breaker.acquire(settings)
(True, None)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .state import MemoryStore, StateStore, current_store

__all__ = ["BreakerSettings", "CircuitBreaker", "Permit", "breakers"]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerSettings:
    """When a breaker opens and for how long (seconds)."""

    failure_threshold: int = 3
    cooldown: float = 5.0
    max_cooldown: float = 60.0
    cooldown_multiplier: float = 2.0
    #: How long a probe holds the half-open slot at most (a process that dies mid-probe frees it then).
    probe_lease: float = 120.0


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
            self._breaker._apply(_succeeded, self)

    def failure(self, retry_after: float | None = None) -> None:
        if not self._done:
            self._done = True
            self._breaker._apply(_failed, self, retry_after)

    def release(self) -> None:
        if not self._done:
            self._done = True
            if self.probe:
                self._breaker._apply(_released, self)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the policy, as pure functions over a breaker's record ---------------------------------------
# A record: failures (consecutive, this epoch), epoch (bumped at every opening), open_until (None:
# closed), cooldown, probe_until (a probe is out until then: a lease, so a process that died while
# probing cannot hold the slot for ever), times_opened (outages).


def state_of(record: Mapping[str, Any] | None, now: float) -> State:
    open_until = (record or {}).get("open_until")
    if open_until is None:
        return "closed"
    return "open" if now < open_until else "half_open"


def _succeeded(record: dict[str, Any], now: float, permit: Permit) -> dict[str, Any]:
    if permit.probe:
        return {**record, "probe_until": None, "open_until": None, "cooldown": None, "failures": 0}
    if permit.epoch == record.get("epoch", 0) and record.get("open_until") is None and record.get("failures"):
        return {**record, "failures": 0}
    return record  # nothing to reset, or it started before the opening: it says nothing now


def _failed(record: dict[str, Any], now: float, permit: Permit, retry_after: float | None) -> dict[str, Any]:
    settings = permit._settings
    if permit.probe:
        cooldown = min(
            (record.get("cooldown") or settings.cooldown) * settings.cooldown_multiplier, settings.max_cooldown
        )
        return _opened({**record, "probe_until": None, "cooldown": cooldown}, now, retry_after)
    if permit.epoch != record.get("epoch", 0) or record.get("open_until") is not None:
        return record  # in flight when the breaker opened: neither re-opens nor counts
    failures = record.get("failures", 0) + 1
    if failures < settings.failure_threshold:
        return {**record, "failures": failures}
    opened = {**record, "cooldown": settings.cooldown, "times_opened": record.get("times_opened", 0) + 1}
    return _opened(opened, now, retry_after)


def _opened(record: dict[str, Any], now: float, retry_after: float | None) -> dict[str, Any]:
    return {
        **record,
        "epoch": record.get("epoch", 0) + 1,
        "failures": 0,
        "open_until": now + max(record.get("cooldown") or 0.0, retry_after or 0.0),
    }


def _released(record: dict[str, Any], now: float, permit: Permit) -> dict[str, Any]:
    return {**record, "probe_until": None} if record.get("probe_until") is not None else record


class CircuitBreaker:
    """One model's breaker, its record kept in a :class:`~aisa_integrations.core.state.StateStore`
    (its own memory store by default): every step is one atomic read-modify-write there, so the
    same breaker can be shared by threads, tasks, and (with a Redis store) processes."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, store: StateStore | None = None, key: str = "breaker:"
    ) -> None:
        self._clock = clock
        self._store = store if store is not None else MemoryStore()
        self.key = key

    def _record(self) -> dict[str, Any]:
        return self._store.read(self.key) or {}

    @property
    def state(self) -> State:
        return state_of(self._record(), self._clock())

    def acquire(self, settings: BreakerSettings) -> Permit | None:
        """A permit for one attempt, or None while the breaker is open (or its probe is out)."""
        record = self._record()
        if state_of(record, self._clock()) == "closed":  # the common case: one read, no write
            return Permit(self, settings, record.get("epoch", 0), probe=False)

        def change(record: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Permit | None]:
            record = record or {}
            now = self._clock()
            state = state_of(record, now)
            if state == "closed":
                return record, Permit(self, settings, record.get("epoch", 0), probe=False)
            probe_until = record.get("probe_until")
            if state == "open" or (probe_until is not None and probe_until > now):
                return record, None
            leased = {**record, "probe_until": now + settings.probe_lease}
            return leased, Permit(self, settings, record.get("epoch", 0), probe=True)

        return self._store.update(self.key, change)

    def _apply(self, step: Callable[..., dict[str, Any]], permit: Permit, *args: Any) -> None:
        current = self._record()
        if step(current, self._clock(), permit, *args) is current:
            return  # the common case (a success on a healthy breaker): one read, no transaction

        def change(record: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            current = record or {}
            new = step(current, self._clock(), permit, *args)
            return (record if new is current else new), None

        self._store.update(self.key, change)

    def snapshot(self) -> dict[str, Any]:
        record = self._record()
        now = self._clock()
        open_until = record.get("open_until")
        return {
            "state": state_of(record, now),
            "consecutive_failures": record.get("failures", 0),
            "reopens_in": max(0.0, open_until - now) if open_until is not None else 0.0,
            "cooldown": record.get("cooldown"),
            "times_opened": record.get("times_opened", 0),
        }


class BreakerRegistry:
    """The breakers, keyed by (base URL, model), kept in the configured state store (or ``store``).

    With a shared store, times are wall-clock seconds (every process reads the same deadlines);
    in memory, the monotonic clock (or ``clock``).
    """

    def __init__(self, clock: Callable[[], float] | None = None, *, store: StateStore | None = None) -> None:
        self.clock = clock
        self.store = store

    def _store_and_clock(self) -> tuple[StateStore, Callable[[], float]]:
        store = self.store if self.store is not None else current_store()
        clock = self.clock or (time.time if store.shared else time.monotonic)
        return store, clock

    def get(self, base_url: str, model: str) -> CircuitBreaker:
        store, clock = self._store_and_clock()
        return CircuitBreaker(clock, store=store, key=f"breaker:{base_url} {model}")

    def state(self) -> dict[str, dict[str, Any]]:
        """Every breaker's state, keyed ``"base_url model"``."""
        store, clock = self._store_and_clock()
        return {
            key.removeprefix("breaker:"): CircuitBreaker(clock, store=store, key=key).snapshot()
            for key in store.keys("breaker")
        }

    def reset(self, base_url: str | None = None) -> None:
        """Forget every breaker (or those of one gateway)."""
        store, _ = self._store_and_clock()
        prefix = "breaker:" if base_url is None else f"breaker:{base_url} "
        for key in store.keys("breaker"):
            if key.startswith(prefix):
                store.update(key, lambda record: (None, None))


breakers = BreakerRegistry()
