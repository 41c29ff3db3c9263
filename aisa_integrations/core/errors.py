"""The error tree: what went wrong, with which model, and what to do next.

Every error a request can end in is mapped from the openai SDK's exception into one of these. Each
keeps ``status_code``, ``code`` (the server's error code), ``model``, ``request_id`` and
``server_message``, and stays catchable as the openai exception it came from (``except
openai.RateLimitError`` still works). Errors found before a request is sent (configuration, bad
input) derive from ``ValueError`` as well.

    AIsaError
    ├── ConfigurationError (ValueError)
    │   └── MissingAPIKeyError
    ├── InvalidRequestError (ValueError)       bad input, caught before sending
    │   └── NoEligibleModelError               no candidate model can serve the request
    ├── BudgetExceededError                    a spend cap is reached; raised before sending
    └── AIsaAPIError                           anything the gateway or the wire did
        ├── AIsaStatusError (openai.APIStatusError)
        │   ├── AuthenticationError            401
        │   ├── InsufficientCreditsError       402
        │   ├── PermissionDeniedError          403
        │   ├── ModelNotFoundError             404, with close-match suggestions
        │   ├── RateLimitError                 429, with retry_after
        │   ├── BadRequestError                400 (and 409/422), with the server's code
        │   │   ├── ContextLengthExceededError
        │   │   └── ContentPolicyError
        │   └── ServerError                    5xx
        ├── APIConnectionError (openai.APIConnectionError)
        │   └── APITimeoutError (openai.APITimeoutError)
        │       └── FirstTokenTimeoutError     no content within first_token_timeout
        └── StreamError (openai.APIError)      carries the partial text received
            ├── StreamInterruptedError         cut, incomplete, or an error event mid-stream
            ├── StreamStalledError             no bytes for too long (also an APITimeoutError)
            └── MalformedResponseError         a body or chunk that is not the protocol
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import openai

from .redaction import redact, redact_value, scrub, secrets_of

__all__ = [
    "AIsaAPIError",
    "AIsaError",
    "AIsaStatusError",
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextLengthExceededError",
    "FirstTokenTimeoutError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "ModelNotFoundError",
    "NoEligibleModelError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "StreamInterruptedError",
    "StreamStalledError",
    "error_from_body",
    "map_openai_error",
    "parse_retry_after",
    "redact",
]

CREDITS_URL = "https://console.aisa.one"
_PARTIAL_HINT = "The partial answer is in .partial_text."


class AIsaError(Exception):
    """Base class of every error raised by aisa-integrations."""

    status_code: int | None = None
    code: str | None = None
    model: str | None = None
    request_id: str | None = None
    server_message: str | None = None
    #: When the error ends a fallback or routed call: every attempt made (a FallbackReport).
    fallback_report: Any = None

    def __init__(self, message: str) -> None:
        # Not super(): the openai exception bases further along the MRO need a response object.
        Exception.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AIsaError, ValueError):
    """The client is misconfigured (bad base URL, negative retries, ...); raised before any request."""


class MissingAPIKeyError(ConfigurationError):
    """No key was given and ``AISA_API_KEY`` is not set."""


class InvalidRequestError(AIsaError, ValueError):
    """The input cannot become a valid request (unknown content block, bad base64, bad tool name...).

    Raised before anything is sent; the message names the problem and the fix.
    """


class NoEligibleModelError(InvalidRequestError):
    """No candidate model can serve this request (raised before anything is sent)."""


class BudgetExceededError(AIsaError):
    """A spend cap (``CostTracker(max_cost=...)``, ``get_aisa_callback(max_cost=...)``) is reached,
    or the next request's worst case would pass it (``strict=True``); raised before anything is sent.
    ``spent`` and ``max_cost`` say where the cap stands."""

    def __init__(self, message: str, *, spent: float = 0.0, max_cost: float = 0.0) -> None:
        super().__init__(message)
        self.spent = spent
        self.max_cost = max_cost

    def __reduce__(self) -> Any:
        return (_rebuild_budget_error, (str(self), self.spent, self.max_cost))


def _rebuild_budget_error(message: str, spent: float, max_cost: float) -> BudgetExceededError:
    return BudgetExceededError(message, spent=spent, max_cost=max_cost)


class AIsaAPIError(AIsaError):
    """A request reached the wire and failed: an error status, a broken connection or stream."""

    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        server_message: str | None = None,
        request: Any = None,
        response: Any = None,
        body: object | None = None,
    ) -> None:
        AIsaError.__init__(self, message)
        self.status_code = status_code
        self.code = code
        self.model = model
        self.request_id = request_id
        self.server_message = server_message
        # Attributes the openai exception bases expose, so handlers written for them keep working.
        self.request = request
        self.response = response
        self.body = body
        self.param = None
        self.type = None


class AIsaStatusError(AIsaAPIError, openai.APIStatusError):
    """The gateway answered with an error status."""


class AuthenticationError(AIsaStatusError, openai.AuthenticationError):
    """401: the key is missing, wrong or revoked."""


class InsufficientCreditsError(AIsaStatusError):
    """402: the AIsa account is out of credits."""


class PermissionDeniedError(AIsaStatusError, openai.PermissionDeniedError):
    """403: the key may not use this model or endpoint."""


class ModelNotFoundError(AIsaStatusError, openai.NotFoundError):
    """404: the gateway does not serve this model id. ``suggestions`` holds close catalog matches."""

    suggestions: tuple[str, ...] = ()


class RateLimitError(AIsaStatusError, openai.RateLimitError):
    """429: too many requests. ``retry_after`` is the server's Retry-After in seconds, if it sent one."""


class BadRequestError(AIsaStatusError, openai.BadRequestError):
    """400: the gateway rejected the request; ``code`` is its reason."""


class ContextLengthExceededError(BadRequestError):
    """400 ``context_length_exceeded``: the prompt does not fit the model's context window."""


class ContentPolicyError(BadRequestError):
    """400 ``content_policy_violation``: the provider's content filter refused the request."""


class ServerError(AIsaStatusError, openai.InternalServerError):
    """5xx: the gateway or the provider behind it failed."""


class APIConnectionError(AIsaAPIError, openai.APIConnectionError):
    """The gateway could not be reached or the connection broke before a response."""


class APITimeoutError(APIConnectionError, openai.APITimeoutError):
    """No response within the timeout."""


class FirstTokenTimeoutError(APITimeoutError):
    """The model produced no content within ``first_token_timeout`` (the attempt was abandoned)."""


class StreamError(AIsaAPIError, openai.APIError):
    """A streamed answer failed. ``partial_text`` holds what had arrived; it is not a complete answer."""

    partial_text: str = ""


class StreamInterruptedError(StreamError):
    """The stream ended before the answer was complete (connection cut, no end marker, error event)."""


class StreamStalledError(StreamError, openai.APITimeoutError):
    """The stream went silent for longer than the read timeout."""


class MalformedResponseError(StreamError):
    """A response body or stream chunk that does not follow the protocol (e.g. invalid JSON)."""


_STATUS_CLASSES: dict[int, type[AIsaStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    409: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}

# Error codes gateways and providers put in bodies, for errors that arrive without an HTTP status.
_CODE_CLASSES: dict[str, type[AIsaStatusError]] = {
    "invalid_api_key": AuthenticationError,
    "authentication_error": AuthenticationError,
    "unauthorized": AuthenticationError,
    "insufficient_credits": InsufficientCreditsError,
    "insufficient_quota": InsufficientCreditsError,
    "payment_required": InsufficientCreditsError,
    "permission_denied": PermissionDeniedError,
    "permission_error": PermissionDeniedError,
    "model_not_found": ModelNotFoundError,
    "rate_limit_exceeded": RateLimitError,
    "rate_limit_error": RateLimitError,
    "too_many_requests": RateLimitError,
    "invalid_request": BadRequestError,
    "invalid_request_error": BadRequestError,
    "bad_request": BadRequestError,
    "server_error": ServerError,
    "internal_error": ServerError,
    "internal_server_error": ServerError,
    "api_error": ServerError,
    "service_unavailable": ServerError,
    "overloaded": ServerError,
    "overloaded_error": ServerError,
    "bad_gateway": ServerError,
    "gateway_timeout": ServerError,
    "upstream_error": ServerError,
}

_CONTEXT_CODES = {"context_length_exceeded", "context_window_exceeded", "string_above_max_length"}
_POLICY_CODES = {"content_policy_violation", "content_filter", "content_filtered", "safety"}


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = float("nan")
        if ms == ms and ms != float("inf"):
            return max(0.0, ms / 1000.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None  # neither seconds nor an HTTP date ("soon"): ignored
        if parsed is None or parsed.tzinfo is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def _body_fields(body: object) -> tuple[str | None, str | None]:
    """(code, message) from an error body, whether or not the SDK already unwrapped ``error``."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            message = inner.get("message")
            return (str(code) if code is not None else None, str(message) if message else None)
        if isinstance(inner, str):
            return None, inner
    return None, None


def _hint(cls: type[AIsaError], model: str | None, suggestions: Sequence[str]) -> str:
    if cls is AuthenticationError:
        return "Check the key: set AISA_API_KEY (or pass api_key=) to a valid AIsa key."
    if cls is InsufficientCreditsError:
        return f"The AIsa account is out of credits: add credits at {CREDITS_URL} (pay-as-you-go)."
    if cls is ModelNotFoundError:
        if suggestions:
            return f"Did you mean {', '.join(repr(s) for s in suggestions)}?"
        return "List the available models with `aisa models` or aisa_integrations.list_models()."
    if cls is RateLimitError:
        return "Slow down, retry later, or configure a fallback model."
    if cls is ContextLengthExceededError:
        return "Shorten the prompt or use a model with a larger context window."
    if cls is ContentPolicyError:
        return "The provider's content filter refused this request; rephrase it."
    if cls is ServerError:
        return "The gateway or provider failed; retry, or configure a fallback model."
    return ""


def _compose(
    what: str, *, model: str | None, status: int | None, code: str | None, request_id: str | None, hint: str
) -> str:
    details = ", ".join(
        f"{k}={v}" for k, v in (("model", model), ("status", status), ("code", code), ("request_id", request_id)) if v
    )
    text = what.rstrip(".") + "." + (f" ({details})" if details else "")
    return f"{text} {hint}".strip()


def _status_class(status: int | None, code: str | None, server_message: str | None) -> type[AIsaStatusError] | None:
    """The error class for a status and/or an error code (None: neither says)."""
    cls: type[AIsaStatusError] | None
    if status is not None and status >= 500:
        cls = ServerError
    elif status is not None and status >= 400:
        cls = _STATUS_CLASSES.get(status, AIsaStatusError)
    else:
        cls = _CODE_CLASSES.get((code or "").lower())
    lowered = (server_message or "").lower()
    if cls is BadRequestError or (cls is None and code):
        if code in _CONTEXT_CODES or "context length" in lowered or "maximum context" in lowered:
            cls = ContextLengthExceededError
        elif code in _POLICY_CODES or "content polic" in lowered or "content filter" in lowered:
            cls = ContentPolicyError
    return cls


def _build_status_error(
    cls: type[AIsaStatusError],
    *,
    status: int | None,
    code: str | None,
    server_message: str,
    model: str | None,
    request_id: str | None,
    request: Any = None,
    response: Any = None,
    body: object | None = None,
    headers: Mapping[str, str] | None = None,
) -> AIsaStatusError:
    suggestions: tuple[str, ...] = ()
    if cls is ModelNotFoundError and model:
        from .catalog import default_catalog

        suggestions = tuple(default_catalog().suggest(model))
    message = _compose(
        server_message or (f"HTTP {status}" if status else "The gateway reported an error"),
        model=model,
        status=status,
        code=code,
        request_id=request_id,
        hint=_hint(cls, model, suggestions),
    )
    err = cls(
        message,
        status_code=status,
        code=code,
        model=model,
        request_id=request_id,
        server_message=server_message,
        request=request,
        response=response,
        body=body,
    )
    if isinstance(err, ModelNotFoundError):
        err.suggestions = suggestions
    if isinstance(err, RateLimitError | ServerError):
        err.retry_after = parse_retry_after(headers)
    return err


def _status_error(exc: openai.APIStatusError, *, model: str | None, secrets: Sequence[str | None]) -> AIsaStatusError:
    status = exc.status_code
    code, server_message = _body_fields(exc.body)
    if code is None and exc.code:
        code = exc.code
    server_message = redact(server_message or exc.message or "", *secrets)
    cls = _status_class(status, code, server_message) or AIsaStatusError
    return _build_status_error(
        cls,
        status=status,
        code=code,
        server_message=server_message,
        model=model,
        request_id=getattr(exc, "request_id", None),
        request=getattr(exc, "request", None),
        response=exc.response,
        body=exc.body,
        headers=exc.response.headers if exc.response is not None else None,
    )


def error_from_body(
    body: Any,
    *,
    status: int | None = None,
    model: str | None = None,
    secrets: Sequence[str | None] = (),
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    in_stream: bool = False,
    partial_text: str = "",
) -> AIsaAPIError:
    """An error the gateway delivered in a body (a 200 response or an SSE ``error`` event).

    Classified like its HTTP equivalent: by the status it states, else by its code; an error of no
    known kind is a :class:`StreamInterruptedError` mid-stream and a :class:`ServerError` otherwise.
    """
    body = redact_value(body, secrets)
    code, server_message = _body_fields(body)
    inner = body.get("error", body) if isinstance(body, Mapping) else None
    stated = inner.get("status") if isinstance(inner, Mapping) else None
    if isinstance(stated, int) and 400 <= stated <= 599:
        status = stated
    elif isinstance(code, str) and code.isdigit() and 400 <= int(code) <= 599:
        status = int(code)
    elif status is not None and status < 400:
        status = None  # the HTTP status was 200; the body is what says what went wrong
    server_message = redact(server_message or "", *secrets)
    cls = _status_class(status, code, server_message)
    if cls is None and in_stream:
        err: AIsaAPIError = StreamInterruptedError(
            _compose(
                f"The gateway reported an error mid-stream: {server_message or code or 'unknown error'}",
                model=model,
                status=status,
                code=code,
                request_id=request_id,
                hint=_PARTIAL_HINT,
            ),
            model=model,
            code=code,
            request_id=request_id,
            server_message=server_message,
            body=body,
        )
        err.partial_text = partial_text  # type: ignore[attr-defined]
        return err
    return _build_status_error(
        cls or ServerError,
        status=status,
        code=code,
        server_message=server_message,
        model=model,
        request_id=request_id,
        body=body,
        headers=headers,
    )


def map_openai_error(
    exc: BaseException,
    *,
    model: str | None = None,
    secrets: Sequence[str | None] = (),
    in_stream: bool = False,
    partial_text: str = "",
) -> BaseException:
    """Translate an exception from the openai SDK (or the wire under it) into this package's tree.

    ``in_stream`` says the failure happened while reading a streamed body, after the response
    headers; then broken connections become :class:`StreamInterruptedError` and read timeouts
    :class:`StreamStalledError`, carrying ``partial_text``. Exceptions that are not about the request
    (KeyboardInterrupt, our own errors, programming errors) are returned unchanged.
    """
    if isinstance(exc, AIsaError):
        return exc
    # The boundary: the SDK's exception, and everything chained to it, loses the key before it is
    # kept (as this error's cause) anywhere a traceback, a log or a trace could show it.
    secrets = [*secrets, *secrets_of(getattr(exc, "request", None))]
    scrub(exc, secrets)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, model=model, secrets=secrets)
    request = getattr(exc, "request", None)
    code: str | None = None
    server_message: str | None = None
    cls: type[AIsaAPIError]
    if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError):
        cls, hint = MalformedResponseError, "This is a gateway fault; retry or configure a fallback model."
        what = (
            f"The gateway sent a body that is not valid JSON ({exc})"
            if isinstance(exc, json.JSONDecodeError)
            else "The gateway sent a response that does not match the chat completion schema"
        )
    elif isinstance(exc, openai.APITimeoutError):
        if in_stream:
            cls, what = StreamStalledError, "The stream stalled: no data within the read timeout"
        else:
            cls, what = APITimeoutError, "The request timed out"
        hint = _PARTIAL_HINT if in_stream else "Raise timeout=, or configure a fallback model."
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {redact(str(cause), *secrets)}" if cause else ""
        if in_stream:
            cls, what = StreamInterruptedError, f"The stream was cut before the answer was complete{detail}"
        else:
            cls, what = APIConnectionError, f"Could not reach the AIsa gateway{detail}"
        hint = _PARTIAL_HINT if in_stream else "Check the network and AISA_BASE_URL."
    elif isinstance(exc, openai.APIError):
        # An error event inside an SSE stream, or another protocol-level failure.
        code, server_message = _body_fields(exc.body)
        server_message = redact(server_message or exc.message, *secrets)
        cls, what, hint = StreamInterruptedError, f"The gateway reported an error mid-stream: {server_message}", ""
    else:
        return exc
    err = cls(
        _compose(what, model=model, status=None, code=code, request_id=None, hint=hint),
        model=model,
        code=code,
        server_message=server_message,
        request=request,
        body=getattr(exc, "body", None),
    )
    if isinstance(err, StreamError):
        err.partial_text = partial_text
    return err
