"""The wire: one request, sent through the openai SDK's client, answered in plain dicts.

:func:`post` / :func:`apost` and :func:`open_stream` / :func:`aopen_stream` take an OpenAI-format
request and the wire format (``api="chat"`` or ``"gemini-native"``).

Requests go out through the SDK's documented low-level ``client.post`` (its auth, headers, retries,
timeouts and status → exception mapping are kept); the body is sent as the dict it already is
(``normalize_request`` checked it, so the SDK's per-field transform, an identity for chat
parameters, is skipped). Answers are decoded once into dicts: no pydantic object per completion or
per chunk, which the adapters would only convert again.

What the SDK's stream did still happens here, and more: every response is checked for shape (a proxy's
HTML page or a non-chat JSON body is a :class:`MalformedResponseError` with the status and the first
bytes, redacted); errors delivered in a 200 body or as an SSE ``error`` event become the matching typed
error; a stream that ends without a ``finish_reason`` is a :class:`StreamInterruptedError`, never a
truncated answer passed off as complete; the request id comes from the headers. Streams are read to
the end of the body after ``[DONE]`` so their connection goes back to the pool.

Gemini's native format (a target with ``api="gemini-native"``) goes through the same client, the same
checks and the same error mapping: ``POST /models/{model}:generateContent`` (``:streamGenerateContent
?alt=sse`` for a stream), answered with the same completion dicts and chunk streams as the chat
format; the translation both ways is :mod:`~aisa_integrations.core.gemini_native`. A gateway that does
not offer the streaming method (404/405) is answered by one ``generateContent`` delivered as chunks,
and that is remembered per base URL for the rest of the process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from . import errors as E
from . import gemini_native
from .client import get_async_client, get_client
from .config import ClientConfig
from .stream import chunk_has_content
from .timeouts import Deadline, StreamTimeouts, shutdown_socket

__all__ = [
    "AsyncChatStream",
    "ChatStream",
    "aopen_chat_stream",
    "aopen_generate_content_stream",
    "aopen_stream",
    "apost",
    "decode_generate_content",
    "forget_native_streaming",
    "native_streaming_offered",
    "open_chat_stream",
    "open_generate_content_stream",
    "open_stream",
    "post",
]

_PATH = "/chat/completions"
_BEARER = {"bearer_auth": True}
_DONE = b"[DONE]"
_DRAIN_LIMIT = 64 * 1024  # bytes read after [DONE] to reuse the connection; more means close it
_PREVIEW = 160
_WIRE_ERRORS = (openai.OpenAIError, httpx2.HTTPError)


def _body(request: Mapping[str, Any], *, stream: bool, include_usage: bool) -> bytes:
    """The request as JSON bytes (serialised here, once: the SDK sends bytes as they are).

    Gemini-native options (``extra_body={"gemini": ...}``) are for a native-format target only: a
    chat-completions target (a fallback member, say) is sent the request without them.
    """
    body = {k: v for k, v in request.items() if k not in ("extra_body", "gemini")}
    extra = request.get("extra_body")
    if extra:
        body.update({k: v for k, v in extra.items() if k != "gemini"})
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return _encode(body)


def _encode(body: Any) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        # Nothing has been sent: a value JSON cannot carry (NaN, a date, a set, a lone surrogate).
        detail = "text that is not valid Unicode (a lone surrogate)" if isinstance(exc, UnicodeEncodeError) else exc
        raise E.InvalidRequestError(
            f"The request cannot be sent as JSON: {detail}. Pass plain strings, numbers, lists and dicts "
            "(convert dates with .isoformat())."
        ) from None


def _options(
    config: ClientConfig, max_retries: int | None, timeout: float | None, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {"security": _BEARER}
    if params:
        options["params"] = dict(params)
    if max_retries is not None:
        options["max_retries"] = max_retries
    if timeout is not None:
        options["timeout"] = httpx2.Timeout(timeout)
    return options


def _first_token_limit(config: ClientConfig, timeouts: StreamTimeouts | None) -> float | None:
    """The timeout for the request itself (connect and headers) when a first-token limit is tighter."""
    if timeouts is None or timeouts.first_token is None:
        return None
    if config.timeout is not None and config.timeout <= timeouts.first_token:
        return None
    return timeouts.first_token


def _secrets(config: ClientConfig) -> tuple[str]:
    return (config.api_key.get_secret_value(),)


def _request_failed(
    exc: BaseException, config: ClientConfig, model: str | None, first_token: float | None
) -> BaseException:
    if first_token is not None and isinstance(exc, openai.APITimeoutError):
        return E.FirstTokenTimeoutError(
            f"No response within {first_token:g} s (first_token_timeout). (model={model})", model=model
        )
    return E.map_openai_error(exc, model=model, secrets=_secrets(config))


def _preview(raw: bytes, config: ClientConfig) -> str:
    text = raw[:_PREVIEW].decode("utf-8", "replace")
    return E.redact(text, *_secrets(config)) + ("..." if len(raw) > _PREVIEW else "")


def _malformed(what: str, *, model: str | None, partial_text: str = "") -> E.MalformedResponseError:
    err = E.MalformedResponseError(
        f"{what}. (model={model}) This is a gateway or proxy fault; retry, or configure a fallback model.",
        model=model,
    )
    err.partial_text = partial_text
    return err


def _check_message(message: Any) -> bool:
    if not isinstance(message, Mapping):
        return False
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        return False
    calls = message.get("tool_calls")
    return not (
        calls is not None
        and not (
            isinstance(calls, list)
            and all(isinstance(c, Mapping) and isinstance(c.get("function"), Mapping) for c in calls)
        )
    )


def _is_completion(data: Any) -> bool:
    if not isinstance(data, Mapping):
        return False
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, Mapping):
        return False
    return all(isinstance(c, Mapping) and _check_message(c.get("message")) for c in choices)


def decode_completion(
    raw: bytes, *, status: int, headers: Mapping[str, str], config: ClientConfig, model: str | None
) -> dict[str, Any]:
    """A non-streamed answer's body as a completion dict; anything else as a typed error."""
    request_id = headers.get("x-request-id")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        kind = "an event stream" if "text/event-stream" in headers.get("content-type", "") else "not JSON"
        raise _malformed(
            f"The gateway answered HTTP {status} with a body that is {kind}: {_preview(raw, config)!r}", model=model
        ) from None
    if isinstance(data, Mapping) and data.get("error") and not data.get("choices"):
        raise E.error_from_body(
            data, status=status, model=model, secrets=_secrets(config), request_id=request_id, headers=headers
        )
    if not _is_completion(data):
        raise _malformed(
            f"The gateway answered HTTP {status} with JSON that is not a chat completion: {_preview(raw, config)!r}",
            model=model,
        )
    data["_request_id"] = request_id
    return data


# -- non-streamed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Format:
    """What differs between the wire formats on a non-streamed POST: the path, the body, reading
    an SDK failure, and decoding the answer. Everything else (client, options, mapping) is shared."""

    path: Callable[[Mapping[str, Any]], str]
    body: Callable[[Mapping[str, Any]], bytes]
    failed: Callable[[BaseException, ClientConfig, str | None, float | None], BaseException]
    decode: Callable[..., dict[str, Any]]


def _post(
    wire: _Format, config: ClientConfig, request: Mapping[str, Any], max_retries: int | None, timeout: float | None
) -> dict[str, Any]:
    model = request.get("model")
    path, content = wire.path(request), wire.body(request)
    try:
        response = get_client(config).post(
            path, content=content, cast_to=httpx2.Response, options=_options(config, max_retries, timeout)
        )
    except _WIRE_ERRORS as exc:
        raise wire.failed(exc, config, model, None) from exc
    return wire.decode(
        response.content, status=response.status_code, headers=response.headers, config=config, model=model
    )


async def _apost(
    wire: _Format, config: ClientConfig, request: Mapping[str, Any], max_retries: int | None, timeout: float | None
) -> dict[str, Any]:
    model = request.get("model")
    path, content = wire.path(request), wire.body(request)
    try:
        response = await get_async_client(config).post(
            path, content=content, cast_to=httpx2.Response, options=_options(config, max_retries, timeout)
        )
    except _WIRE_ERRORS as exc:
        raise wire.failed(exc, config, model, None) from exc
    return wire.decode(
        response.content, status=response.status_code, headers=response.headers, config=config, model=model
    )


# -- SSE ------------------------------------------------------------------------------------


class _SSEParser:
    """Server-sent events from bytes: (event name, data) per event; comments and ids ignored."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: bytes | None = None
        self._data: list[bytes] = []

    def feed(self, raw: bytes) -> list[tuple[bytes | None, bytes]]:
        buffer = self._buffer + raw if self._buffer else raw
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._event, self._data = None, []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
        return events

    def finish(self) -> list[tuple[bytes | None, bytes]]:
        return self.feed(b"\n\n") if (self._buffer or self._data) else []


class _StreamState:
    """What one stream has said so far; shared by the sync and async readers (pure logic, no I/O)."""

    __slots__ = ("config", "content_seen", "done", "finished", "model", "parser", "partial", "request_id", "status")

    def __init__(self, config: ClientConfig, model: str | None, response: httpx2.Response) -> None:
        self.config = config
        self.model = model
        self.parser = _SSEParser()
        self.partial: list[str] = []
        self.content_seen = False
        self.finished = False
        self.done = False
        self.request_id = response.headers.get("x-request-id")
        self.status = response.status_code

    @property
    def partial_text(self) -> str:
        return "".join(self.partial)

    def decode(self, event: bytes | None, data: bytes) -> dict[str, Any] | None:
        """One SSE event as a chunk dict (None: [DONE] or nothing); typed errors for the rest."""
        if data == _DONE:
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise _malformed(
                f"The gateway sent a stream event that is not valid JSON: {_preview(data, self.config)!r}",
                model=self.model,
                partial_text=self.partial_text,
            ) from None
        if event == b"error" or (isinstance(chunk, Mapping) and chunk.get("error") and not chunk.get("choices")):
            raise E.error_from_body(
                chunk,
                model=self.model,
                secrets=_secrets(self.config),
                request_id=self.request_id,
                in_stream=True,
                partial_text=self.partial_text,
            )
        if not isinstance(chunk, Mapping) or not isinstance(chunk.get("choices", []), list):
            raise _malformed(
                f"The gateway sent a stream event that is not a chat completion chunk: {_preview(data, self.config)!r}",
                model=self.model,
                partial_text=self.partial_text,
            )
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or not isinstance(choice.get("delta") or {}, Mapping):
                raise _malformed(
                    f"The gateway sent a malformed choice in a stream chunk: {_preview(data, self.config)!r}",
                    model=self.model,
                    partial_text=self.partial_text,
                )
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text:
                    self.partial.append(text)
            if choice.get("finish_reason") is not None:
                self.finished = True
        if not self.content_seen and chunk_has_content(chunk):
            self.content_seen = True
        return chunk  # type: ignore[return-value]

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        """The chunks in a piece of the body (stops at [DONE]; ``done`` tells)."""
        chunks = []
        for event, data in self.parser.feed(raw):
            chunk = self.decode(event, data)
            if chunk is not None:
                chunks.append(chunk)
            elif self.done:
                break
        return chunks

    def finish(self) -> list[dict[str, Any]]:
        """The chunks left in the buffer when the body ended without [DONE]."""
        return [c for c in (self.decode(e, d) for e, d in self.parser.finish()) if c is not None]

    def json_body(self, raw: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        """A gateway that answered a stream request with one JSON body: the answer as chunks (or its error)."""
        completion = decode_completion(raw, status=self.status, headers=headers, config=self.config, model=self.model)
        self.finished = True
        return _json_body_as_chunks(completion)

    def incomplete(self) -> E.StreamInterruptedError:
        err = E.StreamInterruptedError(
            f"The stream ended before the answer was complete (no finish_reason). (model={self.model}) "
            "The partial answer is in .partial_text.",
            model=self.model,
            request_id=self.request_id,
        )
        err.partial_text = self.partial_text
        return err

    def wire_failure(self, exc: BaseException, timed_out: bool, timeouts: StreamTimeouts | None) -> BaseException:
        """A read that failed: a deadline we enforced, or the network."""
        if timed_out and timeouts is not None:
            if self.content_seen:
                err: E.StreamError = E.StreamStalledError(
                    f"The stream went silent for {timeouts.stall:g} s (stall_timeout). (model={self.model}) "
                    "The partial answer is in .partial_text.",
                    model=self.model,
                    request_id=self.request_id,
                )
                err.partial_text = self.partial_text
                return err
            return E.FirstTokenTimeoutError(
                f"No content within {timeouts.first_token:g} s (first_token_timeout). (model={self.model})",
                model=self.model,
                request_id=self.request_id,
            )
        if isinstance(exc, httpx2.TimeoutException):
            err = E.StreamStalledError(
                f"The stream stalled: no data within the read timeout. (model={self.model}) "
                "The partial answer is in .partial_text.",
                model=self.model,
                request_id=self.request_id,
            )
        else:
            detail = E.redact(str(exc), *_secrets(self.config))
            err = E.StreamInterruptedError(
                f"The stream was cut before the answer was complete: {detail or type(exc).__name__}. "
                f"(model={self.model}) The partial answer is in .partial_text.",
                model=self.model,
                request_id=self.request_id,
            )
        err.partial_text = self.partial_text
        return err

    def next_deadline(self, started: float, now: float, timeouts: StreamTimeouts) -> float | None:
        if not self.content_seen:
            if timeouts.first_token is not None:
                return started + timeouts.first_token
            return now + timeouts.stall if timeouts.stall is not None else None
        return now + timeouts.stall if timeouts.stall is not None else None


#: A gateway that answered a stream request with one JSON completion: the same answer as chunks.
_json_body_as_chunks = gemini_native.completion_as_chunks


def _is_event_stream(response: httpx2.Response) -> bool:
    ctype = response.headers.get("content-type", "")
    return "text/event-stream" in ctype or not ctype


#: A stream the consumer left is read on while data keeps arriving within this many seconds.
_SALVAGE_IDLE = 0.01


class ChatStream:
    """One streamed answer as chunk dicts (iterate once). ``close()`` abandons it at once."""

    def __init__(
        self,
        response: httpx2.Response,
        *,
        config: ClientConfig,
        model: str | None,
        timeouts: StreamTimeouts | None,
        clock: Any = time.monotonic,
        started: float | None = None,
        state: _StreamState | None = None,
    ) -> None:
        self._response = response
        self._state = state if state is not None else _StreamState(config, model, response)
        self._timeouts = timeouts if timeouts is not None and timeouts.active else None
        self._clock = clock
        self._started = clock() if started is None else started
        self._deadline: Deadline | None = None
        if self._timeouts is not None:
            sock = _socket_of(response)
            self._deadline = Deadline(lambda: shutdown_socket(sock))
        self._iterator = self._iterate()

    @property
    def request_id(self) -> str | None:
        return self._state.request_id

    @property
    def partial_text(self) -> str:
        return self._state.partial_text

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._iterator

    def __next__(self) -> dict[str, Any]:
        return next(self._iterator)

    def _reads(self) -> Iterator[bytes]:
        iterator = self._response.iter_bytes()
        deadline, timeouts, state = self._deadline, self._timeouts, self._state
        while True:
            if deadline is not None:
                at = state.next_deadline(self._started, self._clock(), timeouts)  # type: ignore[arg-type]
                if at is not None:
                    deadline.arm(at)
            try:
                raw = next(iterator)
            except StopIteration:
                return
            finally:
                if deadline is not None:
                    deadline.disarm()
            yield raw

    def _iterate(self) -> Iterator[dict[str, Any]]:
        state = self._state
        try:
            if not _is_event_stream(self._response):
                yield from state.json_body(self._response.read(), self._response.headers)
                return
            reads = self._reads()
            for raw in reads:
                yield from state.feed(raw)
                if state.done:
                    self._drain(reads)
                    break
            else:
                yield from state.finish()
        except httpx2.HTTPError as exc:
            expired = self._deadline is not None and self._deadline.expired
            raise state.wire_failure(exc, expired, self._timeouts) from None
        finally:
            self.close()
        if not state.finished:
            raise state.incomplete()

    def _drain(self, reads: Iterator[bytes]) -> None:
        # [DONE] arrives just before the end of the chunked body: read that end, and the connection is reused.
        drained = 0
        try:
            for raw in reads:
                drained += len(raw)
                if drained > _DRAIN_LIMIT:
                    return
        except httpx2.HTTPError:
            return

    def salvage(self, seconds: float, idle: float = _SALVAGE_IDLE) -> list[dict[str, Any]]:
        """The consumer left before the end: what is already on its way, read without raising, then
        the stream is closed. Reading stops when nothing arrives for ``idle`` seconds (the gateway is
        still writing, slower than it is read) or after ``seconds`` in all: the rest of an answer the
        gateway had already sent (usage chunk included) is read whole; a slow one is cut at once."""
        if self._state.done:  # the end was read: nothing more will come (a finish chunk alone is not the end)
            return []
        sock = _socket_of(self._response)
        if sock is None:  # a transport without a socket to cut (HTTP/2, a custom one): no way to bound the read
            self.close()
            return []
        limit = Deadline(lambda: shutdown_socket(sock))
        end = time.monotonic() + seconds
        chunks: list[dict[str, Any]] = []
        try:
            while (now := time.monotonic()) < end:  # bytes already read are parsed without a socket read
                limit.arm(min(now + idle, end))
                chunks.append(next(self._iterator))
        except (StopIteration, Exception):  # the end, cut at a limit, or a failed answer: what was read counts
            pass
        finally:
            limit.close()
            self.close()
        return chunks

    def close(self) -> None:
        if self._deadline is not None:
            self._deadline.close()
        self._response.close()


def _socket_of(response: httpx2.Response) -> Any:
    stream = response.extensions.get("network_stream")
    return stream.get_extra_info("socket") if stream is not None else None


def open_chat_stream(
    config: ClientConfig,
    request: Mapping[str, Any],
    *,
    include_usage: bool = True,
    max_retries: int | None = None,
    timeouts: StreamTimeouts | None = None,
    clock: Any = time.monotonic,
) -> ChatStream:
    """POST a streamed request; returns once the response headers arrived (within first_token_timeout)."""
    model = request.get("model")
    started = clock()
    first_token = _first_token_limit(config, timeouts)
    try:
        response = get_client(config).post(
            _PATH,
            content=_body(request, stream=True, include_usage=include_usage),
            cast_to=httpx2.Response,
            options=_options(config, max_retries, first_token),
            stream=True,
            stream_cls=None,
        )
    except _WIRE_ERRORS as exc:
        raise _request_failed(exc, config, model, first_token) from exc
    if first_token is not None:
        # The tighter limit covered the wait for headers; the body is watched by the deadline instead.
        response.request.extensions.get("timeout", {})["read"] = config.timeout
    return ChatStream(response, config=config, model=model, timeouts=timeouts, clock=clock, started=started)


# -- async ----------------------------------------------------------------------------------

if sys.version_info >= (3, 11):

    async def _read_within(iterator: AsyncIterator[bytes], at: float | None, loop: asyncio.AbstractEventLoop) -> bytes:
        if at is None:
            return await iterator.__anext__()
        async with asyncio.timeout_at(at - time.monotonic() + loop.time()):
            return await iterator.__anext__()

else:  # pragma: no cover - Python 3.10

    async def _read_within(iterator: AsyncIterator[bytes], at: float | None, loop: asyncio.AbstractEventLoop) -> bytes:
        if at is None:
            return await iterator.__anext__()
        return await asyncio.wait_for(iterator.__anext__(), max(0.0, at - time.monotonic()))


class AsyncChatStream:
    """Async :class:`ChatStream`: deadlines are the event loop's timers on each read."""

    def __init__(
        self,
        response: httpx2.Response,
        *,
        config: ClientConfig,
        model: str | None,
        timeouts: StreamTimeouts | None,
        started: float | None = None,
        state: _StreamState | None = None,
    ) -> None:
        self._response = response
        self._state = state if state is not None else _StreamState(config, model, response)
        self._timeouts = timeouts if timeouts is not None and timeouts.active else None
        self._started = time.monotonic() if started is None else started
        self._iterator = self._iterate()

    @property
    def request_id(self) -> str | None:
        return self._state.request_id

    @property
    def partial_text(self) -> str:
        return self._state.partial_text

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterator

    async def __anext__(self) -> dict[str, Any]:
        return await self._iterator.__anext__()

    async def _reads(self) -> AsyncIterator[bytes]:
        iterator = self._response.aiter_bytes().__aiter__()
        timeouts, state = self._timeouts, self._state
        loop = asyncio.get_running_loop()
        while True:
            at = state.next_deadline(self._started, time.monotonic(), timeouts) if timeouts is not None else None
            try:
                raw = await _read_within(iterator, at, loop)
            except StopAsyncIteration:
                return
            yield raw

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        state = self._state
        try:
            if not _is_event_stream(self._response):
                for chunk in state.json_body(await self._response.aread(), self._response.headers):
                    yield chunk
                return
            reads = self._reads()
            async for raw in reads:
                for chunk in state.feed(raw):
                    yield chunk
                if state.done:
                    await self._drain(reads)
                    break
            else:
                for chunk in state.finish():
                    yield chunk
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise state.wire_failure(exc, True, self._timeouts) from None
        except httpx2.HTTPError as exc:
            raise state.wire_failure(exc, False, self._timeouts) from None
        finally:
            await self.aclose()
        if not state.finished:
            raise state.incomplete()

    async def _drain(self, reads: AsyncIterator[bytes]) -> None:
        drained = 0
        try:
            async with asyncio.timeout(1.0) if sys.version_info >= (3, 11) else _nullcontext():
                async for raw in reads:
                    drained += len(raw)
                    if drained > _DRAIN_LIMIT:
                        return
        except (httpx2.HTTPError, TimeoutError, asyncio.TimeoutError):
            return

    async def salvage(self, seconds: float, idle: float = _SALVAGE_IDLE) -> list[dict[str, Any]]:
        """Async :meth:`ChatStream.salvage`."""
        if self._state.done:
            return []
        chunks: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        try:
            while (left := end - loop.time()) > 0:
                chunks.append(await asyncio.wait_for(self._iterator.__anext__(), min(left, idle)))
        except Exception:  # the limit, the end, or a failed answer: what was read counts (a cancel propagates)
            pass
        finally:
            await self.aclose()
        return chunks

    async def aclose(self) -> None:
        await self._response.aclose()


class _nullcontext:  # pragma: no cover - Python 3.10
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def aopen_chat_stream(
    config: ClientConfig,
    request: Mapping[str, Any],
    *,
    include_usage: bool = True,
    max_retries: int | None = None,
    timeouts: StreamTimeouts | None = None,
) -> AsyncChatStream:
    """Async :func:`open_chat_stream`."""
    model = request.get("model")
    started = time.monotonic()
    first_token = _first_token_limit(config, timeouts)
    try:
        response = await get_async_client(config).post(
            _PATH,
            content=_body(request, stream=True, include_usage=include_usage),
            cast_to=httpx2.Response,
            options=_options(config, max_retries, first_token),
            stream=True,
            stream_cls=None,
        )
    except _WIRE_ERRORS as exc:
        raise _request_failed(exc, config, model, first_token) from exc
    if first_token is not None:
        response.request.extensions.get("timeout", {})["read"] = config.timeout
    return AsyncChatStream(response, config=config, model=model, timeouts=timeouts, started=started)


# -- Gemini's native format -------------------------------------------------------------------
# The same client and checks as the chat functions; only the body, the path and the answer's shape
# differ (translated by gemini_native, pure). Sync and async below differ in their I/O only.

_SSE = {"alt": "sse"}
_NOT_OFFERED = (404, 405)  # a gateway without the streaming method
_no_native_stream: set[str] = set()
_no_native_stream_lock = threading.Lock()


def native_streaming_offered(base_url: str) -> bool:
    """Whether ``:streamGenerateContent`` is still tried at ``base_url`` (False once it answered 404/405
    and ``:generateContent`` then served the same request: later streams go straight to the fallback)."""
    return base_url not in _no_native_stream


def forget_native_streaming(base_url: str | None = None) -> None:
    """Try ``:streamGenerateContent`` again at ``base_url`` (every base URL if None)."""
    with _no_native_stream_lock:
        if base_url is None:
            _no_native_stream.clear()
        else:
            _no_native_stream.discard(base_url)


def _remember_no_native_stream(base_url: str) -> None:
    with _no_native_stream_lock:
        _no_native_stream.add(base_url)


def _native_body(request: Mapping[str, Any]) -> bytes:
    """The generateContent body as JSON bytes; what cannot be translated raises before anything is sent."""
    return _encode(gemini_native.to_generate_content(request))


def _native_path(request: Mapping[str, Any], *, stream: bool) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise E.InvalidRequestError(f"model must be a model id such as 'gemini-2.0-flash', got {model!r}.")
    return gemini_native.generate_content_path(model, stream=stream)


def _native_failed(
    exc: BaseException, config: ClientConfig, model: str | None, first_token: float | None
) -> BaseException:
    """The SDK's exception as a typed error: the usual mapping, with Google's error body read for the code."""
    err = _request_failed(exc, config, model, first_token)
    if isinstance(exc, openai.APIStatusError) and isinstance(err, E.AIsaStatusError):
        refined = gemini_native.native_error(
            exc.status_code,
            exc.body,
            model=model,
            secrets=_secrets(config),
            request_id=err.request_id,
            headers=exc.response.headers if exc.response is not None else None,
        )
        refined.request, refined.response = err.request, err.response
        return refined
    return err


def decode_generate_content(
    raw: bytes, *, status: int, headers: Mapping[str, str], config: ClientConfig, model: str | None
) -> dict[str, Any]:
    """A generateContent answer's body as a completion dict (``_request_id`` added); anything else as
    a typed error (an error body by its status or code, a blocked prompt, another shape)."""
    request_id = headers.get("x-request-id")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        kind = "an event stream" if "text/event-stream" in headers.get("content-type", "") else "not JSON"
        raise _malformed(
            f"The gateway answered HTTP {status} with a body that is {kind}: {_preview(raw, config)!r}", model=model
        ) from None
    if isinstance(data, Mapping) and data.get("error") and not data.get("candidates"):
        raise gemini_native.native_error(
            status, data, model=model, secrets=_secrets(config), request_id=request_id, headers=headers
        )
    if not isinstance(data, Mapping) or not ("candidates" in data or "promptFeedback" in data):
        raise _malformed(
            f"The gateway answered HTTP {status} with JSON that is not a generateContent response: "
            f"{_preview(raw, config)!r}",
            model=model,
        )
    try:
        completion = gemini_native.completion_from_generate_content(data, model or "")
    except E.AIsaError as exc:
        exc.request_id = request_id
        raise
    completion["_request_id"] = request_id
    return completion


class _NativeStreamState(_StreamState):
    """A ``:streamGenerateContent?alt=sse`` stream (or its one-JSON-body fallback), read into chunk dicts."""

    __slots__ = ("native",)

    def __init__(self, config: ClientConfig, model: str | None, response: httpx2.Response, include_usage: bool) -> None:
        super().__init__(config, model, response)
        self.native = gemini_native.NativeStreamState(model or "", include_usage=include_usage)

    def _track(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                text = choice["delta"].get("content")
                if text:
                    self.partial.append(text)
                if choice.get("finish_reason") is not None:
                    self.finished = True
            if not self.content_seen and chunk_has_content(chunk):
                self.content_seen = True
        return chunks

    def _event(self, event: bytes | None, data: bytes) -> list[dict[str, Any]]:
        if data == _DONE:  # not Gemini's, but a proxy may add it: the end
            self.done = True
            return gemini_native.end_of_stream(self.native)
        try:
            decoded = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise _malformed(
                f"The gateway sent a stream event that is not valid JSON: {_preview(data, self.config)!r}",
                model=self.model,
                partial_text=self.partial_text,
            ) from None
        if event == b"error" or (
            isinstance(decoded, Mapping) and decoded.get("error") and not decoded.get("candidates")
        ):
            raise gemini_native.native_error(
                self.status,
                decoded,
                model=self.model,
                secrets=_secrets(self.config),
                request_id=self.request_id,
                in_stream=True,
                partial_text=self.partial_text,
            )
        try:
            chunks = gemini_native.chunks_from_stream_event(decoded, self.model or "", self.native)
        except E.AIsaAPIError as exc:
            exc.request_id = self.request_id
            if isinstance(exc, E.StreamError):
                exc.partial_text = self.partial_text
            raise
        return self._track(chunks)

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        for event, data in self.parser.feed(raw):
            chunks += self._event(event, data)
            if self.done:
                break
        return chunks

    def finish(self) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        for event, data in self.parser.finish():
            chunks += self._event(event, data)
        return chunks + gemini_native.end_of_stream(self.native)

    def json_body(self, raw: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        """One JSON body: a generateContent answer (the fallback), or the JSON array of stream events
        ``:streamGenerateContent`` sends when the gateway leaves ``alt=sse`` out."""
        if raw.lstrip()[:1] == b"[":
            try:
                events = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                events = None
            if isinstance(events, list):
                chunks: list[dict[str, Any]] = []
                for event in events:
                    chunks += self._event(None, json.dumps(event).encode())
                return chunks + gemini_native.end_of_stream(self.native)
        completion = decode_generate_content(
            raw, status=self.status, headers=headers, config=self.config, model=self.model
        )
        self.finished = True
        chunks = gemini_native.completion_as_chunks(completion)
        if not self.native.include_usage:
            chunks = [c for c in chunks if c.get("usage") is None]
        return self._track(chunks)


def _stream_not_offered(err: BaseException) -> bool:
    return isinstance(err, E.AIsaStatusError) and err.status_code in _NOT_OFFERED


def open_generate_content_stream(
    config: ClientConfig,
    request: Mapping[str, Any],
    *,
    include_usage: bool = True,
    max_retries: int | None = None,
    timeouts: StreamTimeouts | None = None,
    clock: Any = time.monotonic,
) -> ChatStream:
    """Stream an OpenAI-format request through ``:streamGenerateContent?alt=sse``: chunk dicts, like
    :func:`open_chat_stream`. Where the gateway does not offer that method (404/405), the answer of
    ``:generateContent`` is delivered as chunks instead (and later streams to that base URL go there directly).
    """
    model = request.get("model")
    started = clock()
    first_token = _first_token_limit(config, timeouts)
    content = _native_body(request)
    client = get_client(config)
    response = None
    tried = native_streaming_offered(config.base_url)
    if tried:
        try:
            response = client.post(
                _native_path(request, stream=True),
                content=content,
                cast_to=httpx2.Response,
                options=_options(config, max_retries, first_token, _SSE),
                stream=True,
                stream_cls=None,
            )
        except _WIRE_ERRORS as exc:
            err = _native_failed(exc, config, model, first_token)
            if not _stream_not_offered(err):
                raise err from exc
    if response is None:
        # One answer, all at once: its headers come when the whole generation is done, so the wait is the
        # request's own timeout, not the first-token limit (which no non-streamed answer could meet).
        try:
            response = client.post(
                _native_path(request, stream=False),
                content=content,
                cast_to=httpx2.Response,
                options=_options(config, max_retries, None),
                stream=True,
                stream_cls=None,
            )
        except _WIRE_ERRORS as exc:
            raise _native_failed(exc, config, model, None) from exc
        if tried:
            _remember_no_native_stream(config.base_url)
    if first_token is not None:
        response.request.extensions.get("timeout", {})["read"] = config.timeout
    state = _NativeStreamState(config, model, response, include_usage)
    return ChatStream(
        response, config=config, model=model, timeouts=timeouts, clock=clock, started=started, state=state
    )


async def aopen_generate_content_stream(
    config: ClientConfig,
    request: Mapping[str, Any],
    *,
    include_usage: bool = True,
    max_retries: int | None = None,
    timeouts: StreamTimeouts | None = None,
) -> AsyncChatStream:
    """Async :func:`open_generate_content_stream`."""
    model = request.get("model")
    started = time.monotonic()
    first_token = _first_token_limit(config, timeouts)
    content = _native_body(request)
    client = get_async_client(config)
    response = None
    tried = native_streaming_offered(config.base_url)
    if tried:
        try:
            response = await client.post(
                _native_path(request, stream=True),
                content=content,
                cast_to=httpx2.Response,
                options=_options(config, max_retries, first_token, _SSE),
                stream=True,
                stream_cls=None,
            )
        except _WIRE_ERRORS as exc:
            err = _native_failed(exc, config, model, first_token)
            if not _stream_not_offered(err):
                raise err from exc
    if response is None:
        try:
            response = await client.post(
                _native_path(request, stream=False),
                content=content,
                cast_to=httpx2.Response,
                options=_options(config, max_retries, None),
                stream=True,
                stream_cls=None,
            )
        except _WIRE_ERRORS as exc:
            raise _native_failed(exc, config, model, None) from exc
        if tried:
            _remember_no_native_stream(config.base_url)
    if first_token is not None:
        response.request.extensions.get("timeout", {})["read"] = config.timeout
    state = _NativeStreamState(config, model, response, include_usage)
    return AsyncChatStream(response, config=config, model=model, timeouts=timeouts, started=started, state=state)


# -- one entry per direction, whatever the wire format ------------------------------------------


def post(
    config: ClientConfig,
    request: Mapping[str, Any],
    *,
    api: str = "chat",
    max_retries: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """POST an OpenAI-format request in the wire format ``api`` (``"chat"``: ``/chat/completions``;
    ``"gemini-native"``: ``/models/{model}:generateContent``); the answer as a completion dict
    (``_request_id`` added), or a typed error."""
    return _post(_FORMATS[api], config, request, max_retries, timeout)


async def apost(
    config: ClientConfig,
    request: Mapping[str, Any],
    *,
    api: str = "chat",
    max_retries: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Async :func:`post`."""
    return await _apost(_FORMATS[api], config, request, max_retries, timeout)


def open_stream(config: ClientConfig, request: Mapping[str, Any], *, api: str = "chat", **options: Any) -> ChatStream:
    """Stream an OpenAI-format request in the wire format ``api`` (see :func:`open_chat_stream`)."""
    opener = open_generate_content_stream if api == "gemini-native" else open_chat_stream
    return opener(config, request, **options)


async def aopen_stream(
    config: ClientConfig, request: Mapping[str, Any], *, api: str = "chat", **options: Any
) -> AsyncChatStream:
    """Async :func:`open_stream`."""
    opener = aopen_generate_content_stream if api == "gemini-native" else aopen_chat_stream
    return await opener(config, request, **options)


# The two formats' non-streamed POSTs (defined last: they name functions from the whole module).
_CHAT = _Format(
    path=lambda request: _PATH,
    body=lambda request: _body(request, stream=False, include_usage=False),
    failed=_request_failed,
    decode=decode_completion,
)
_NATIVE = _Format(
    path=lambda request: _native_path(request, stream=False),
    body=lambda request: _native_body(request),
    failed=_native_failed,
    decode=decode_generate_content,
)
_FORMATS = {"chat": _CHAT, "gemini-native": _NATIVE}
