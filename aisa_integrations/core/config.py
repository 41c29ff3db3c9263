"""Where the key, base URL and transport settings come from.

The openai SDK silently reads ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` when it is given ``None``;
that would send a user's OpenAI key to another host. Everything here resolves to explicit values
from arguments or the ``AISA_*`` variables only, and the client factory always passes both.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from .errors import ConfigurationError, MissingAPIKeyError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ClientConfig",
    "resolve_api_key",
    "resolve_base_url",
]

API_KEY_ENV = "AISA_API_KEY"
BASE_URL_ENV = "AISA_BASE_URL"
DEFAULT_BASE_URL = "https://api.aisa.one/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2


def resolve_api_key(api_key: str | SecretStr | None = None) -> SecretStr:
    """The AIsa key from the argument, else ``AISA_API_KEY``; never ``OPENAI_API_KEY``.

    Raises :class:`MissingAPIKeyError` (before any request) when neither is set.
    """
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    value = api_key if api_key else os.environ.get(API_KEY_ENV, "")
    value = value.strip()
    if not value:
        raise MissingAPIKeyError(
            f"No AIsa API key. Pass api_key=... or set {API_KEY_ENV} "
            f"(export {API_KEY_ENV}=your-key; get one at https://aisa.one). "
            "OPENAI_API_KEY is deliberately not used: it belongs to another service."
        )
    return SecretStr(value)


_ENDPOINTS = ("/chat/completions", "/completions", "/models")


def resolve_base_url(base_url: str | None = None) -> str:
    """The base URL from the argument, else ``AISA_BASE_URL``, else the public AIsa endpoint.

    >>> resolve_base_url("https://api.aisa.one/v1/chat/completions")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aisa_integrations.core.errors.ConfigurationError: ... is an endpoint, not the API root: use 'https://api.aisa.one/v1'...
    """
    given = base_url or os.environ.get(BASE_URL_ENV)
    value = (given or DEFAULT_BASE_URL).strip()
    source = "base_url" if base_url else BASE_URL_ENV
    if not value.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"Invalid AIsa base URL {value!r} ({source}): it must start with http:// or https:// "
            f"(for example {DEFAULT_BASE_URL})."
        )
    value = value.rstrip("/")
    path = value.split("?", 1)[0]
    if "/models/" in path and "generateContent" in path:
        root, endpoint = path[: path.rindex("/models/")], "/models/{model}:generateContent"
    else:
        endpoint = next((e for e in _ENDPOINTS if path.endswith(e)), "")
        root = path[: -len(endpoint)] if endpoint else ""
    if endpoint:
        raise ConfigurationError(
            f"The AIsa base URL {value!r} ({source}) is an endpoint, not the API root: use {root!r} "
            f"(the client adds {endpoint} itself)."
        )
    return value


@dataclass(frozen=True)
class ClientConfig:
    """Everything needed to build (and share) one openai client for AIsa.

    Two equal configs share one client, and so one connection pool.

    >>> cfg = ClientConfig.resolve(api_key="my-key", base_url="http://127.0.0.1:8000/v1")
    >>> cfg.base_url
    'http://127.0.0.1:8000/v1'
    >>> "my-key" in repr(cfg)
    False
    """

    api_key: SecretStr
    base_url: str = DEFAULT_BASE_URL
    timeout: float | None = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    default_headers: tuple[tuple[str, str], ...] = ()
    # Injected httpx2 clients are shared by identity, never copied.
    http_client: Any = field(default=None, compare=False)
    http_async_client: Any = field(default=None, compare=False)

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int | None = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: Any = None,
        http_async_client: Any = None,
    ) -> ClientConfig:
        """Resolve arguments and ``AISA_*`` variables into a config; raises before any request."""
        if max_retries is None:
            max_retries = DEFAULT_MAX_RETRIES
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}.")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds or None, got {timeout}.")
        return cls(
            api_key=resolve_api_key(api_key),
            base_url=resolve_base_url(base_url),
            timeout=timeout,
            max_retries=int(max_retries),
            default_headers=tuple(sorted((default_headers or {}).items())),
            http_client=http_client,
            http_async_client=http_async_client,
        )

    @functools.cached_property
    def pool_key(self) -> tuple[Any, ...]:
        """Identity of the connection pool this config should use (a digest of the key, never the key)."""
        return (
            hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest(),
            self.base_url,
            self.timeout,
            self.max_retries,
            self.default_headers,
            id(self.http_client),
            id(self.http_async_client),
        )
