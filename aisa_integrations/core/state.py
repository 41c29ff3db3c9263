"""Where shared state lives: circuit breakers, spend counters and rate-limit buckets.

Two stores, one interface. :class:`MemoryStore` (the default) keeps state in the process.
:class:`RedisStore` keeps it in Redis, so every worker process that points at the same server shares
one breaker per (gateway, model), one budget and one rate limiter. The policies themselves
(when a breaker opens, what a bucket allows) are written once, as pure functions over records; a
store only makes each read-modify-write atomic: a lock in memory, ``WATCH``/``MULTI`` (and one Lua
script for the bucket) in Redis.

No request fails because Redis is down: an operation that cannot reach it is done on a local
memory store instead, with one logged warning per outage, and Redis is tried again after
``retry_after`` seconds.

>>> store = MemoryStore()
>>> store.update("demo", lambda record: ({"n": (record or {}).get("n", 0) + 1}, "done"))
'done'
>>> store.read("demo")
{'n': 1}
>>> store.incr("spend", {"cost": 0.25})["cost"]
0.25
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import errors as E

__all__ = ["MemoryStore", "RedisStore", "StateStore", "configure_state", "current_store", "store_from"]

logger = logging.getLogger("aisa_integrations.state")

R = TypeVar("R")
Record = dict[str, Any]
#: ``(capacity, refill per second, amount to take)`` for each bucket a take must satisfy together.
Bucket = tuple[float, float, float]


def take_from_buckets(
    levels: list[tuple[float, float | None]], buckets: list[Bucket], now: float, force: bool = False
) -> tuple[list[tuple[float, float]], float]:
    """The token-bucket rule (pure): refill each bucket to ``now``; if every bucket holds what the
    take asks, take from all and wait 0; else take nothing and say how long to wait. An amount above
    a bucket's capacity could never fit: it asks only that the bucket be out of debt, and leaves it
    in debt (so the rate holds on average, and smaller takes cannot starve it). A ``force``d take
    (settling a reservation; a negative amount gives back) always happens, never above capacity.

    ``levels`` holds ``(level, at)`` per bucket (``at`` None for a new, full bucket).
    """
    refilled = []
    for (level, at), (capacity, rate, _amount) in zip(levels, buckets, strict=True):
        if at is None:
            level = capacity
        else:
            level = min(capacity, level + max(0.0, now - at) * rate)
        refilled.append(level)
    if force:
        taken = [min(capacity, level - amount) for level, (capacity, _r, amount) in zip(refilled, buckets, strict=True)]
        return [(level, now) for level in taken], 0.0
    wait = 0.0
    for level, (capacity, rate, amount) in zip(refilled, buckets, strict=True):
        need = amount if amount <= capacity else 0.0
        if level < need:
            wait = max(wait, (need - level) / rate if rate > 0 else float("inf"))
    if wait > 0:
        return [(level, now) for level in refilled], wait
    return [(level - amount, now) for level, (_c, _r, amount) in zip(refilled, buckets, strict=True)], 0.0


class StateStore:
    """The interface both stores implement. Keys are plain strings; the store adds its prefix."""

    #: What ``aisa status`` prints as the store's name.
    description = "memory (this process only)"
    shared = False

    def read(self, key: str) -> Record | None:
        raise NotImplementedError

    def update(self, key: str, change: Callable[[Record | None], tuple[Record | None, R]]) -> R:
        """Atomically replace the record at ``key`` by ``change(record)[0]``; return ``[1]``.
        Returning the same record object (``is``) writes nothing."""
        raise NotImplementedError

    def incr(self, key: str, amounts: Mapping[str, float]) -> dict[str, float]:
        """Atomically add to counters; the new values of every counter at ``key``."""
        raise NotImplementedError

    def counters(self, key: str) -> dict[str, float]:
        raise NotImplementedError

    def set_fields(self, key: str, values: Mapping[str, float]) -> None:
        """Set counters (a budget's cap, say) without adding."""
        raise NotImplementedError

    def take(self, key: str, buckets: list[Bucket], force: bool = False) -> float:
        """Take from token buckets atomically: 0 when taken, else the seconds to wait first
        (see :func:`take_from_buckets`)."""
        raise NotImplementedError

    def buckets(self, key: str) -> list[dict[str, float]]:
        """The buckets at ``key`` as of their last take: capacity, per_second, level, at (store time)."""
        raise NotImplementedError

    def now(self) -> float:
        """The store's clock (the one bucket times are in)."""
        raise NotImplementedError

    def keys(self, kind: str) -> list[str]:
        """The keys written under ``kind:`` (``breaker``, ``budget``, ``limit``)."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class MemoryStore(StateStore):
    """State in this process: one lock, dictionaries. ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._counters: dict[str, dict[str, float]] = {}
        self._buckets: dict[str, list[tuple[float, float | None]]] = {}
        self._shapes: dict[str, list[Bucket]] = {}

    def read(self, key: str) -> Record | None:
        record = self._records.get(key)
        return dict(record) if record is not None else None

    def update(self, key: str, change: Callable[[Record | None], tuple[Record | None, R]]) -> R:
        with self._lock:
            current = self._records.get(key)
            new, result = change(dict(current) if current is not None else None)
            if new is None:
                self._records.pop(key, None)
            else:
                self._records[key] = dict(new)
            return result

    def incr(self, key: str, amounts: Mapping[str, float]) -> dict[str, float]:
        with self._lock:
            counters = self._counters.setdefault(key, {})
            for name, amount in amounts.items():
                counters[name] = counters.get(name, 0.0) + amount
            return dict(counters)

    def counters(self, key: str) -> dict[str, float]:
        with self._lock:
            return dict(self._counters.get(key, {}))

    def set_fields(self, key: str, values: Mapping[str, float]) -> None:
        with self._lock:
            self._counters.setdefault(key, {}).update(values)

    def take(self, key: str, buckets: list[Bucket], force: bool = False) -> float:
        with self._lock:
            levels = self._buckets.get(key) or [(0.0, None)] * len(buckets)
            if len(levels) != len(buckets):
                levels = [(0.0, None)] * len(buckets)
            new, wait = take_from_buckets(levels, buckets, self.clock(), force)
            self._buckets[key] = new  # type: ignore[assignment]
            self._shapes[key] = buckets
            return wait

    def buckets(self, key: str) -> list[dict[str, float]]:
        with self._lock:
            levels, shapes = self._buckets.get(key, []), self._shapes.get(key, [])
            return [
                {"capacity": c, "per_second": r, "level": level, "at": at or 0.0}
                for (level, at), (c, r, _a) in zip(levels, shapes, strict=False)
            ]

    def now(self) -> float:
        return self.clock()

    def keys(self, kind: str) -> list[str]:
        prefix = kind + ":"
        with self._lock:
            every = {*self._records, *self._counters, *self._buckets}
        return sorted(k for k in every if k.startswith(prefix))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._counters.clear()
            self._buckets.clear()
            self._shapes.clear()


# Refill and take in one step on the server, with the server's clock (one time for every worker).
# The same rule as take_from_buckets. KEYS[1]: the bucket hash; ARGV: force (0/1), n, then capacity,
# rate, amount per bucket. Returns the wait (a string: Lua numbers become integers otherwise).
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local force = ARGV[1] == '1'
table.remove(ARGV, 1)
local n = tonumber(ARGV[1])
local levels = {}
local wait = 0
for i = 1, n do
  local cap = tonumber(ARGV[2 + (i - 1) * 3])
  local rate = tonumber(ARGV[3 + (i - 1) * 3])
  local amount = tonumber(ARGV[4 + (i - 1) * 3])
  local level = tonumber(redis.call('HGET', KEYS[1], 'level' .. i))
  local at = tonumber(redis.call('HGET', KEYS[1], 'at' .. i))
  if level == nil or at == nil then
    level = cap
  else
    level = math.min(cap, level + math.max(0, now - at) * rate)
  end
  levels[i] = level
  local need = amount
  if amount > cap then need = 0 end
  if (not force) and level < need then
    local w = 1e9
    if rate > 0 then w = (need - level) / rate end
    if w > wait then wait = w end
  end
end
for i = 1, n do
  local cap = tonumber(ARGV[2 + (i - 1) * 3])
  local amount = tonumber(ARGV[4 + (i - 1) * 3])
  local level = levels[i]
  if wait == 0 then level = math.min(cap, level - amount) end
  redis.call('HSET', KEYS[1], 'level' .. i, tostring(level), 'at' .. i, tostring(now),
             'capacity' .. i, ARGV[2 + (i - 1) * 3], 'per_second' .. i, ARGV[3 + (i - 1) * 3])
end
redis.call('EXPIRE', KEYS[1], 86400)
return tostring(wait)
"""


class RedisStore(StateStore):
    """State in Redis, shared by every process pointed at the same server and ``prefix``.

    Give a URL (``redis://host:6379/0``) or an existing ``redis.Redis`` client. Operations use
    short socket timeouts (``timeout`` seconds) so a stalled server cannot stall calls; while Redis
    cannot be reached, the same operations run on a local :class:`MemoryStore` (one warning per
    outage) and Redis is tried again every ``retry_after`` seconds. Records expire after a day of
    not being written, so nothing accumulates.

    >>> store = RedisStore("redis://127.0.0.1:1/0", retry_after=60)  # nothing listens on port 1
    >>> store.incr("budget:demo", {"cost": 0.5})["cost"]  # answered locally, with a warning
    0.5
    """

    shared = True
    ttl = 86400

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "aisa:",
        timeout: float = 0.5,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (url is None) == (client is None):
            raise E.ConfigurationError("RedisStore needs a URL (redis://host:6379/0) or client=, not both.")
        if client is None:
            try:
                import redis
            except ImportError as exc:
                raise E.ConfigurationError(
                    "RedisStore needs the redis client: pip install 'aisa-integrations[redis]'."
                ) from exc
            client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.client = client
        self.prefix = prefix
        self.retry_after = retry_after
        self.clock = clock
        self.local = MemoryStore()
        self._down_until: float | None = None
        self._lock = threading.Lock()
        # Counters across an outage: the shared totals last read, and what this process added since,
        # so a budget keeps its spent amount while Redis is away and gets the outage's spend back after.
        self._last_counters: dict[str, dict[str, float]] = {}
        self._pending: dict[str, dict[str, float]] = {}
        self._take_script = client.register_script(_TAKE_LUA)
        where = url or _describe_client(client)
        self.description = f"redis {_redact_url(where)} (shared by every process using it)"

    # -- the fall-back-to-local step, written once ----------------------------------------------
    def _run(self, remote: Callable[[], R], local: Callable[[], R]) -> R:
        down_until = self._down_until  # read once: another thread may clear it meanwhile
        if down_until is not None and self.clock() < down_until:
            return local()
        try:
            result = remote()
        except Exception as exc:
            # Unreachable, out of memory, read-only after a failover, refused by an ACL, a damaged key:
            # whatever Redis says, the request goes on with local state (a bug of ours still raises).
            if not _is_store_failure(exc):
                raise
            with self._lock:
                first = self._down_until is None
                self._down_until = self.clock() + self.retry_after
            if first:
                logger.warning(
                    "Redis state store unavailable (%s: %s); using this process's own state until it is back "
                    "(retrying every %g s). Breakers and rate limits are per process meanwhile; budgets go on "
                    "from the last shared total and send this process's spend when Redis is back.",
                    type(exc).__name__,
                    exc,
                    self.retry_after,
                )
            return local()
        if self._down_until is not None:
            self._recovered()
        return result

    def _recovered(self) -> None:
        with self._lock:
            if self._down_until is None:
                return
            self._down_until = None
            pending, self._pending = self._pending, {}
        self.local.clear()  # the next outage starts from the shared state, not this one's leftovers
        try:
            for key, amounts in pending.items():
                self._incr_remote(key, amounts)
        except Exception as exc:
            if not _is_store_failure(exc):
                raise
            with self._lock:  # gone again: keep the spend for the next recovery
                for key, amounts in pending.items():
                    _add_into(self._pending.setdefault(key, {}), amounts)
                self._down_until = self.clock() + self.retry_after
            return
        logger.warning("Redis state store reachable again; state is shared again.")

    @property
    def available(self) -> bool:
        """Whether the last operation reached Redis."""
        return self._down_until is None

    def _k(self, key: str) -> str:
        return self.prefix + key

    # -- records (breakers) ---------------------------------------------------------------------
    def read(self, key: str) -> Record | None:
        def remote() -> Record | None:
            raw = self.client.get(self._k(key))
            return json.loads(raw) if raw is not None else None

        return self._run(remote, lambda: self.local.read(key))

    def update(self, key: str, change: Callable[[Record | None], tuple[Record | None, R]]) -> R:
        def remote() -> R:
            name = self._k(key)
            with self.client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(name)
                        raw = pipe.get(name)
                        current = json.loads(raw) if raw is not None else None
                        new, result = change(current)
                        if new is current:
                            pipe.unwatch()
                            return result
                        pipe.multi()
                        if new is None:
                            pipe.delete(name)
                        else:
                            pipe.set(name, json.dumps(new), ex=self.ttl)
                        pipe.execute()
                        return result
                    except _watch_error():
                        continue  # another process changed it between our read and write: redo

        return self._run(remote, lambda: self.local.update(key, change))

    # -- counters (budgets) ---------------------------------------------------------------------
    def _incr_remote(self, key: str, amounts: Mapping[str, float]) -> dict[str, float]:
        name = self._k(key)
        with self.client.pipeline(transaction=True) as pipe:
            for field_name, amount in amounts.items():
                pipe.hincrbyfloat(name, field_name, amount)
            pipe.expire(name, self.ttl * 30)
            pipe.hgetall(name)
            totals = _floats(pipe.execute()[-1])
        self._last_counters[key] = totals
        return totals

    def _counters_while_down(self, key: str, add: Mapping[str, float] | None = None) -> dict[str, float]:
        with self._lock:
            pending = self._pending.setdefault(key, {})
            if add:
                _add_into(pending, add)
            totals = dict(self._last_counters.get(key, {}))
            _add_into(totals, pending)
            return totals

    def incr(self, key: str, amounts: Mapping[str, float]) -> dict[str, float]:
        return self._run(lambda: self._incr_remote(key, amounts), lambda: self._counters_while_down(key, amounts))

    def counters(self, key: str) -> dict[str, float]:
        def remote() -> dict[str, float]:
            totals = _floats(self.client.hgetall(self._k(key)))
            self._last_counters[key] = totals
            return totals

        return self._run(remote, lambda: self._counters_while_down(key))

    def set_fields(self, key: str, values: Mapping[str, float]) -> None:
        def remote() -> None:
            self.client.hset(self._k(key), mapping={k: repr(float(v)) for k, v in values.items()})
            self.client.expire(self._k(key), self.ttl * 30)

        self._run(remote, lambda: self.local.set_fields(key, values))

    # -- buckets (rate limits) ------------------------------------------------------------------
    def take(self, key: str, buckets: list[Bucket], force: bool = False) -> float:
        def remote() -> float:
            args: list[Any] = ["1" if force else "0", len(buckets)]
            for capacity, rate, amount in buckets:
                args += [repr(float(capacity)), repr(float(rate)), repr(float(amount))]
            return float(self._take_script(keys=[self._k(key)], args=args))

        return self._run(remote, lambda: self.local.take(key, buckets, force))

    def buckets(self, key: str) -> list[dict[str, float]]:
        def remote() -> list[dict[str, float]]:
            raw = _floats(self.client.hgetall(self._k(key)))
            n = sum(1 for k in raw if k.startswith("level"))
            fields = ("capacity", "per_second", "level", "at")
            return [{name: raw.get(f"{name}{i}", 0.0) for name in fields} for i in range(1, n + 1)]

        return self._run(remote, lambda: self.local.buckets(key))

    def now(self) -> float:
        def remote() -> float:
            seconds, micros = self.client.time()
            return seconds + micros / 1e6

        return self._run(remote, self.local.now)

    def keys(self, kind: str) -> list[str]:
        def remote() -> list[str]:
            found = self.client.scan_iter(match=self._k(kind + ":*"), count=500)
            return sorted(_text(k)[len(self.prefix) :] for k in found)

        return self._run(remote, lambda: self.local.keys(kind))

    def clear(self) -> None:
        def remote() -> None:
            for key in self.client.scan_iter(match=self._k("*"), count=500):
                self.client.delete(key)

        self._run(remote, lambda: None)
        self.local.clear()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _floats(raw: Mapping[Any, Any]) -> dict[str, float]:
    return {_text(k): float(_text(v)) for k, v in raw.items()}


def _watch_error() -> type[BaseException]:
    import redis

    return redis.WatchError


def _is_store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the store (any Redis error, a socket error, a damaged record)."""
    if isinstance(exc, OSError | ValueError):  # ValueError: a record that is not our JSON
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover - a RedisStore given a foreign client
        return False
    return isinstance(exc, redis.RedisError)


def _add_into(totals: dict[str, float], amounts: Mapping[str, float]) -> None:
    for name, amount in amounts.items():
        totals[name] = totals.get(name, 0.0) + amount


def _describe_client(client: Any) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _redact_url(url: str) -> str:
    """A URL without its credentials (``user:password@`` or ``?password=``), for printing.

    >>> _redact_url("redis://u:secret@host:6379/0?password=other&db=1")
    'redis://***@host:6379/0?password=***&db=1'
    """
    from urllib.parse import parse_qsl, urlencode

    scheme, sep, rest = url.partition("://")
    if "@" in rest.split("?", 1)[0]:
        rest = "***@" + rest.rsplit("@", 1)[1]
    if "?" in rest:
        path, query = rest.split("?", 1)
        pairs = [(k, "***" if k.lower() in ("password", "username", "user") else v) for k, v in parse_qsl(query)]
        rest = f"{path}?{urlencode(pairs, safe='*')}"
    return f"{scheme}{sep}{rest}"


# -- the configured store ---------------------------------------------------------------------------

_store: StateStore | None = None
_store_lock = threading.Lock()


def store_from(value: StateStore | str | Any) -> StateStore:
    """A store from a store, a ``redis://`` / ``rediss://`` / ``unix://`` URL, ``"memory"``, or a redis client."""
    if isinstance(value, StateStore):
        return value
    if isinstance(value, str):
        if value == "memory":
            return MemoryStore()
        if value.split("://", 1)[0] in ("redis", "rediss", "unix"):
            return RedisStore(value)
        raise E.ConfigurationError(
            f"State store {_redact_url(value)!r} is not a redis://, rediss:// or unix:// URL, nor 'memory'."
        )
    if hasattr(value, "register_script"):
        return RedisStore(client=value)
    raise E.ConfigurationError(f"A state store is a URL, 'memory', a redis client or a StateStore; got {value!r}.")


def configure_state(store: StateStore | str | Any) -> StateStore:
    """Use ``store`` for this process's breakers, process-wide budget and rate limits.

    >>> configure_state("memory").description
    'memory (this process only)'
    """
    global _store
    with _store_lock:
        _store = store_from(store)
    return _store


def current_store() -> StateStore:
    """The configured store; at first use, ``AISA_STATE_URL`` (a Redis URL) or memory."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                url = os.environ.get("AISA_STATE_URL")
                _store = store_from(url) if url else MemoryStore()
    return _store
