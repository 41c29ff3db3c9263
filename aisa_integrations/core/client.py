"""openai SDK clients pointed at AIsa, shared per configuration, bounded in number.

Building an ``openai.OpenAI`` costs a connection pool; sharing one per configuration keeps
connections warm across model instances, chains and threads (the SDK client is thread-safe). Async
clients are kept per event loop as well: an httpx2 async pool must not outlive or cross the loop it
was made in (``asyncio.run`` twice, or pytest's loop per test). Every client uses one TLS context,
made once per process, so a new event loop costs a new pool, not a new TLS set-up (~20 ms).

The caches hold at most :data:`MAX_CLIENTS` clients each (least recently used first out), keyed by a
digest of the key, never the key itself: a service that serves many tenants' keys does not grow
without bound. An evicted client is closed when the last call using it lets go of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import OrderedDict
from typing import Any

import httpx2
import openai

from .._version import __version__
from .config import ClientConfig
from .redaction import guard_logs

__all__ = ["MAX_CLIENTS", "USER_AGENT_HEADER", "clear_client_cache", "get_async_client", "get_client"]

USER_AGENT_HEADER = "X-AIsa-Client"
#: Clients kept per cache (the sync one, and each event loop's).
MAX_CLIENTS = 64

_lock = threading.Lock()
_tls_lock = threading.Lock()
_ssl_context: Any = None


def _tls() -> Any:
    """The process's TLS context (the default trust store, loaded once)."""
    global _ssl_context
    if _ssl_context is None:
        with _tls_lock:
            if _ssl_context is None:
                _ssl_context = httpx2.create_ssl_context()
    return _ssl_context


class _PooledClient(openai.DefaultHttpxClient):  # type: ignore[misc, valid-type]
    def __del__(self) -> None:  # an evicted client closes its pool once nothing uses it
        try:
            if not self.is_closed:
                self.close()
        except Exception:
            pass


_closing: set[Any] = set()  # closing tasks, referenced until done


class _PooledAsyncClient(openai.DefaultAsyncHttpxClient):  # type: ignore[misc, valid-type]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:  # weakly: the client must not keep its (per-loop cache's) event loop alive
            self._loop_ref: Any = weakref.ref(asyncio.get_running_loop())
        except RuntimeError:
            self._loop_ref = lambda: None

    def __del__(self) -> None:
        # Closed on the loop it belongs to, if that loop still runs; a closed loop's sockets go with it.
        if self.is_closed:
            return
        with contextlib.suppress(Exception):
            loop = asyncio.get_running_loop()
            if loop is self._loop_ref():
                _closing.add(task := loop.create_task(self.aclose()))
                task.add_done_callback(_closing.discard)


class _LRU:
    """A small least-recently-used map; the caller holds the lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_sync_clients = _LRU(MAX_CLIENTS)
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LRU] = weakref.WeakKeyDictionary()
_no_loop_async = _LRU(MAX_CLIENTS)


def _headers(config: ClientConfig) -> dict[str, str]:
    headers = {USER_AGENT_HEADER: f"aisa-integrations/{__version__}"}
    headers.update(dict(config.default_headers))
    return headers


def _kwargs(config: ClientConfig) -> dict[str, Any]:
    guard_logs(config.api_key.get_secret_value())
    # api_key and base_url are always explicit: given None, the SDK would read OPENAI_* instead.
    return {
        "api_key": config.api_key.get_secret_value(),
        "base_url": config.base_url,
        "timeout": config.timeout,
        "max_retries": config.max_retries,
        "default_headers": _headers(config),
    }


def get_client(config: ClientConfig) -> openai.OpenAI:
    """The shared synchronous client for ``config``."""
    key = config.pool_key
    with _lock:
        client = _sync_clients.get(key)
        if client is None:
            http_client = config.http_client or _PooledClient(verify=_tls())
            client = openai.OpenAI(**_kwargs(config), http_client=http_client)
            _sync_clients.put(key, client)
    return client


def get_async_client(config: ClientConfig) -> openai.AsyncOpenAI:
    """The shared asynchronous client for ``config`` in the running event loop."""
    key = config.pool_key
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _lock:
        if config.http_async_client is not None or loop is None:
            # An injected client belongs to the caller, whatever loop it was made for.
            cache = _no_loop_async
        else:
            cache = _async_clients.get(loop)
            if cache is None:
                cache = _async_clients[loop] = _LRU(MAX_CLIENTS)
        client = cache.get(key)
        if client is None:
            http_client = config.http_async_client or _PooledAsyncClient(verify=_tls())
            client = openai.AsyncOpenAI(**_kwargs(config), http_client=http_client)
            cache.put(key, client)
    return client


def cached_clients() -> int:
    """How many clients the caches hold (sync, plus async across live loops)."""
    with _lock:
        return len(_sync_clients.items) + len(_no_loop_async.items) + sum(len(c.items) for c in _async_clients.values())


def clear_client_cache() -> None:
    """Forget every shared client (tests; or after changing the process's network settings)."""
    with _lock:
        for client in _sync_clients.items.values():
            client.close()
        _sync_clients.items.clear()
        _async_clients.clear()
        _no_loop_async.items.clear()
