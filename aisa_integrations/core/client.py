"""openai SDK clients pointed at AIsa, one per configuration.

Building an ``openai.OpenAI`` costs a connection pool; sharing one per configuration keeps
connections warm across model instances, chains and threads (the SDK client is thread-safe).
Async clients are additionally kept per event loop: an httpx2 async pool must not outlive or
cross the loop it was made in (``asyncio.run`` twice, or pytest's loop per test).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import openai

from .._version import __version__
from .config import ClientConfig

__all__ = ["USER_AGENT_HEADER", "get_async_client", "get_client"]

USER_AGENT_HEADER = "X-AIsa-Client"

_lock = threading.Lock()
_sync_clients: dict[tuple[Any, ...], openai.OpenAI] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)
_no_loop_async: dict[tuple[Any, ...], openai.AsyncOpenAI] = {}


def _headers(config: ClientConfig) -> dict[str, str]:
    headers = {USER_AGENT_HEADER: f"aisa-integrations/{__version__}"}
    headers.update(dict(config.default_headers))
    return headers


def _kwargs(config: ClientConfig) -> dict[str, Any]:
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
    key = config.cache_key()
    client = _sync_clients.get(key)
    if client is None:
        with _lock:
            client = _sync_clients.get(key)
            if client is None:
                client = openai.OpenAI(**_kwargs(config), http_client=config.http_client)
                _sync_clients[key] = client
    return client


def get_async_client(config: ClientConfig) -> openai.AsyncOpenAI:
    """The shared asynchronous client for ``config`` in the running event loop."""
    key = config.cache_key()
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if config.http_async_client is not None:
        # An injected client belongs to the caller, whatever loop it was made for.
        per_loop = _no_loop_async
    elif loop is None:
        per_loop = _no_loop_async
    else:
        per_loop = _async_clients.get(loop)  # type: ignore[assignment]
        if per_loop is None:
            with _lock:
                per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        with _lock:
            client = per_loop.get(key)
            if client is None:
                client = openai.AsyncOpenAI(**_kwargs(config), http_client=config.http_async_client)
                per_loop[key] = client
    return client


def clear_client_cache() -> None:
    """Forget every shared client (tests; or after changing the process's network settings)."""
    with _lock:
        for client in _sync_clients.values():
            client.close()
        _sync_clients.clear()
        _async_clients.clear()
        _no_loop_async.clear()
