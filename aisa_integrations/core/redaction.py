"""Keeping the key out of everything an error carries.

A gateway or proxy that echoes the key (in an error message, a body, a header) must not put it into
a traceback, a log line, an error tracker or a LangSmith trace. Errors cross one boundary on their
way out, :func:`aisa_integrations.core.errors.map_openai_error`; there, :func:`scrub` redacts the
whole chain: each exception's message and arguments, its ``body``, its ``response`` (text and
headers) and its ``request`` (whose ``Authorization`` header always holds the key).

>>> redact("Authorization: Bearer abcdefghijkl and sk-1234567890abcdef")
'Authorization: Bearer *** and ***'
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SENSITIVE_HEADERS", "guard_logs", "redact", "redact_value", "scrub", "secrets_of"]

#: Header names whose values are credentials: dropped from any request or response an error keeps.
SENSITIVE_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie", "set-cookie"})
_KEY_SHAPED = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{6,}|\bsk-[A-Za-z0-9_-]{8,}")


def redact(text: str, *secrets: str | None) -> str:
    """Remove the given secrets and anything key-shaped (``Bearer …``, ``sk-…``) from text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_SHAPED.sub(lambda m: (m.group(1) or "") + "***", text)


def redact_value(value: Any, secrets: Sequence[str | None]) -> Any:
    """A JSON-like value with every string redacted (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        return redact(value, *secrets)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"), *secrets).encode()
    if isinstance(value, Mapping):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, secrets) for v in value)
    return value


def secrets_of(request: Any) -> list[str]:
    """The credential values a request carries (its Authorization and api-key headers, the token alone too)."""
    headers = getattr(request, "headers", None)
    if headers is None:
        return []
    found = []
    for name, value in headers.items():
        if name.lower() in SENSITIVE_HEADERS and value:
            found.append(value)
            if value.lower().startswith("bearer "):
                found.append(value[7:].strip())
    return found


def _safe_headers(headers: Any, secrets: Sequence[str | None]) -> list[tuple[str, str]]:
    return [(k, redact(v, *secrets)) for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS]


def _safe_request(request: Any, secrets: Sequence[str | None]) -> Any:
    import httpx2

    if not isinstance(request, httpx2.Request):
        return request
    try:
        content = request.content
    except Exception:  # a streamed body that was never read: nothing to keep
        content = b""
    return httpx2.Request(
        request.method,
        request.url,
        headers=_safe_headers(request.headers, secrets),
        content=redact_value(content, secrets),
    )


def _safe_response(response: Any, secrets: Sequence[str | None]) -> Any:
    import httpx2

    if not isinstance(response, httpx2.Response):
        return response
    try:
        content = response.content
    except Exception:
        content = b""
    request = None
    with contextlib.suppress(RuntimeError):  # a response built without a request has none
        request = _safe_request(response.request, secrets)
    safe = httpx2.Response(
        response.status_code,
        headers=_safe_headers(response.headers, secrets),
        content=redact_value(content, secrets),
        request=request,
    )
    return safe


def scrub(exc: BaseException | None, secrets: Sequence[str | None]) -> None:
    """Redact an exception and every exception chained to it, in place."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        request = getattr(exc, "request", None)
        everything = [*secrets, *secrets_of(request)]
        exc.args = tuple(redact_value(a, everything) for a in exc.args)
        for name in ("message", "server_message", "body"):
            value = getattr(exc, name, None)
            if value is not None:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(exc, name, redact_value(value, everything))
        for name, safe in (("request", _safe_request), ("response", _safe_response)):
            try:
                value = getattr(exc, name, None)
            except RuntimeError:  # httpx's .request on an error raised without one
                value = None
            if value is None:
                continue
            try:
                setattr(exc, name, safe(value, everything))
            except (AttributeError, TypeError):  # a read-only property (httpx keeps it in _request)
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(exc, f"_{name}", safe(value, everything))
        exc = exc.__cause__ or exc.__context__


# The libraries under the wire log at DEBUG what a gateway sends back (httpcore: every response
# header; the SDK: error bodies). A gateway that echoes the key would put it there; a filter on the
# loggers those records are made on redacts it (logging applies a logger's filters only to records
# made on that very logger, so each is named).
_WIRE_LOGGERS = (
    "httpx2",
    "httpcore2",
    "httpcore2.connection",
    "httpcore2.connection_pool",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "httpcore2.socks",
    "openai",
    "openai._base_client",
    "openai._client",
    "openai._response",
    "openai._legacy_response",
)
_known_secrets: dict[str, None] = {}  # insertion-ordered; bounded like the client cache
_MAX_SECRETS = 1024


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(_known_secrets)
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, *secrets)
        else:
            record.msg = redact(str(record.msg), *secrets)
        return True


_filter = _RedactingFilter()


def guard_logs(secret: str) -> None:
    """Redact ``secret`` (and anything key-shaped) from what the wire's libraries log."""
    if secret and secret not in _known_secrets:
        _known_secrets[secret] = None
        while len(_known_secrets) > _MAX_SECRETS:
            del _known_secrets[next(iter(_known_secrets))]
    for name in _WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
