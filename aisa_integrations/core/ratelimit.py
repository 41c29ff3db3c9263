"""A gateway-wide rate limiter: requests and tokens per minute, as token buckets in the state store.

With the default memory store the limit holds for one process; with a Redis store
(:func:`~aisa_integrations.core.state.configure_state` or ``store=``) every process using the same
``name`` shares it, and each take is one atomic step on the server, timed by the server's clock.

Each attempt the engine sends takes one request and its token estimate (prompt estimate plus
``max_tokens``); when the answer reports its real usage, the difference is settled (applied with
this process's next take), so the token bucket follows what was actually used. A take the buckets
cannot cover waits (or, with ``blocking=False``, is refused). An amount larger than a bucket holds
goes as soon as the bucket is out of debt and leaves it in debt, so a big request is never starved by
small ones, and the rate holds on average.

>>> from aisa_integrations.core.state import MemoryStore
>>> limiter = RateLimiter(requests_per_minute=60, store=MemoryStore(clock=lambda: 0.0))
>>> limiter.acquire(blocking=False), limiter.acquire(blocking=False)  # one a second, burst of one
(True, False)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from . import errors as E
from .state import Bucket, StateStore, current_store

__all__ = ["RateLimiter"]


class RateLimiter:
    """Requests and/or tokens per minute, optionally shared through the state store.

    ``burst_seconds``: how many seconds of the rate may be spent at once after a quiet spell (the
    bucket's capacity); 1 s by default, so a limit of 600/min lets 10 through at once, then one
    every 0.1 s.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        name: str = "gateway",
        burst_seconds: float = 1.0,
        store: StateStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
        check_every: float = 0.1,
    ) -> None:
        for label, value in (("requests_per_minute", requests_per_minute), ("tokens_per_minute", tokens_per_minute)):
            if value is not None and not value > 0:
                raise E.ConfigurationError(f"{label} must be a positive number; got {value!r}.")
        if requests_per_minute is None and tokens_per_minute is None:
            raise E.ConfigurationError("A RateLimiter needs requests_per_minute=, tokens_per_minute=, or both.")
        if not burst_seconds > 0:
            raise E.ConfigurationError(f"burst_seconds must be positive; got {burst_seconds!r}.")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.name = name
        self.burst_seconds = burst_seconds
        self._store = store
        self.sleep = sleep
        self.check_every = check_every
        # Token corrections not yet applied: added to this process's next take (one round trip fewer
        # per call; the bucket only matters when someone takes).
        self._pending_tokens = 0.0
        self._lock = threading.Lock()

    @property
    def store(self) -> StateStore:
        return self._store if self._store is not None else current_store()

    @property
    def key(self) -> str:
        return f"limit:{self.name}"

    def _buckets(self, requests: float, tokens: float) -> list[Bucket]:
        buckets: list[Bucket] = []
        # Both buckets are always listed (in this order), so a record keeps its layout.
        for per_minute, amount in ((self.requests_per_minute, requests), (self.tokens_per_minute, tokens)):
            if per_minute is None:
                buckets.append((float("inf"), float("inf"), 0.0))
            else:
                rate = per_minute / 60.0
                buckets.append((rate * self.burst_seconds, rate, amount))
        return buckets

    def try_take(self, requests: float = 1, tokens: float = 0) -> float:
        """Take now if the buckets allow: 0.0; else take nothing and return the seconds to wait."""
        with self._lock:
            pending, self._pending_tokens = self._pending_tokens, 0.0
        wait = self.store.take(self.key, _finite(self._buckets(requests, tokens + pending)))
        if wait > 0 and pending:
            with self._lock:
                self._pending_tokens += pending  # not taken: still owed
        return wait

    def acquire(self, requests: float = 1, tokens: float = 0, *, blocking: bool = True) -> bool:
        """Take ``requests`` and ``tokens``, waiting until the buckets allow (or return False at once
        when ``blocking=False`` and they do not)."""
        while True:
            wait = self.try_take(requests, tokens)
            if wait <= 0:
                return True
            if not blocking:
                return False
            # Waiting in short steps: other processes take from the same buckets meanwhile.
            self.sleep(min(wait, self.check_every) if self.store.shared else wait)

    async def aacquire(self, requests: float = 1, tokens: float = 0, *, blocking: bool = True) -> bool:
        """:meth:`acquire` for async code (waits without blocking the event loop)."""
        while True:
            wait = self.try_take(requests, tokens)
            if wait <= 0:
                return True
            if not blocking:
                return False
            await asyncio.sleep(min(wait, self.check_every) if self.store.shared else wait)

    def settle(self, tokens: float) -> None:
        """Correct the token bucket once the real usage is known (positive: more was used than
        taken; negative: less). Never waits."""
        if self.tokens_per_minute is None or not tokens:
            return
        with self._lock:
            self._pending_tokens += tokens

    def flush(self) -> None:
        """Apply pending token corrections now (``settle`` leaves them for the next take)."""
        with self._lock:
            pending, self._pending_tokens = self._pending_tokens, 0.0
        if pending:
            self.store.take(self.key, _finite(self._buckets(0, pending)), force=True)

    def levels(self) -> dict[str, Any]:
        """What the buckets hold now, for ``aisa status``: {"requests": ..., "tokens": ...}."""
        self.flush()
        return bucket_levels(self.store, self.key)

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_minute={self.requests_per_minute}, tokens_per_minute={self.tokens_per_minute}, "
            f"name={self.name!r})"
        )


_UNLIMITED = 1e18


def bucket_levels(store: StateStore, key: str) -> dict[str, Any]:
    """The levels of a limiter's buckets now, by name (an unlimited bucket left out)."""
    now = store.now()
    out: dict[str, Any] = {}
    for label, bucket in zip(("requests", "tokens"), store.buckets(key), strict=False):
        if bucket["capacity"] >= _UNLIMITED:
            continue
        available = min(bucket["capacity"], bucket["level"] + max(0.0, now - bucket["at"]) * bucket["per_second"])
        out[label] = {"per_minute": bucket["per_second"] * 60, "capacity": bucket["capacity"], "available": available}
    return out


def _finite(buckets: list[Bucket]) -> list[Bucket]:
    """Buckets as numbers a store (and Lua) can hold: an unlimited one is a huge bucket that
    refills at once and is asked for nothing."""
    return [
        (_UNLIMITED, _UNLIMITED, 0.0) if capacity == float("inf") else (capacity, rate, amount)
        for capacity, rate, amount in buckets
    ]
