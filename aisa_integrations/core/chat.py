"""One chat-completions call to AIsa, sync or async, plain or streamed, with errors mapped.

The adapters build an OpenAI-format request dict and hand it here; what comes back is the openai
SDK's own ``ChatCompletion`` / ``ChatCompletionChunk`` objects, and every failure is one of
:mod:`aisa_integrations.core.errors`. A stream that ends without a ``finish_reason`` is reported as
:class:`StreamInterruptedError`, never passed off as a complete answer.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .client import get_async_client, get_client
from .config import ClientConfig
from .errors import AIsaError, StreamInterruptedError, map_openai_error

__all__ = [
    "SDK_CHAT_PARAMS",
    "acreate_chat_completion",
    "astream_chat_completion",
    "create_chat_completion",
    "prepare_params",
    "stream_chat_completion",
]


def _sdk_chat_params() -> frozenset[str]:
    sig = inspect.signature(openai.resources.chat.completions.Completions.create)
    return frozenset(p for p in sig.parameters if p != "self")


#: Keyword arguments ``chat.completions.create`` accepts; openai 3.x rejects any other.
SDK_CHAT_PARAMS = _sdk_chat_params()


def prepare_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Move parameters the SDK does not know (gateway or provider extras) into ``extra_body``.

    ``None`` values are dropped: "not set" must not be sent as JSON ``null``.
    """
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if key in SDK_CHAT_PARAMS:
            out[key] = value
        else:
            extra[key] = value
    if extra:
        out["extra_body"] = {**(out.get("extra_body") or {}), **extra}
    return out


def _fail(exc: BaseException, config: ClientConfig, model: str | None, **kw: Any) -> BaseException:
    return map_openai_error(exc, model=model, secrets=(config.api_key.get_secret_value(),), **kw)


_WIRE_ERRORS = (openai.OpenAIError, json.JSONDecodeError)


def create_chat_completion(config: ClientConfig, params: Mapping[str, Any]) -> ChatCompletion:
    """POST /chat/completions and return the parsed completion."""
    request = prepare_params(params)
    try:
        return get_client(config).chat.completions.create(**request)
    except _WIRE_ERRORS as exc:
        raise _fail(exc, config, request.get("model")) from exc


async def acreate_chat_completion(config: ClientConfig, params: Mapping[str, Any]) -> ChatCompletion:
    """Async :func:`create_chat_completion`."""
    request = prepare_params(params)
    try:
        return await get_async_client(config).chat.completions.create(**request)
    except _WIRE_ERRORS as exc:
        raise _fail(exc, config, request.get("model")) from exc


def _stream_request(params: Mapping[str, Any], include_usage: bool) -> dict[str, Any]:
    request = prepare_params(params)
    request["stream"] = True
    if include_usage:
        request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
    return request


def _incomplete(model: str | None, partial: list[str]) -> StreamInterruptedError:
    err = StreamInterruptedError(
        f"The stream ended before the answer was complete (no finish_reason). (model={model}) "
        "The partial answer is in .partial_text.",
        model=model,
    )
    err.partial_text = "".join(partial)
    return err


def _observe(chunk: ChatCompletionChunk, partial: list[str]) -> bool:
    """Record the chunk's text; True once a choice has finished."""
    finished = False
    for choice in chunk.choices:
        content = choice.delta.content if choice.delta is not None else None
        if content:
            partial.append(content)
        if choice.finish_reason is not None:
            finished = True
    return finished


def stream_chat_completion(
    config: ClientConfig, params: Mapping[str, Any], *, include_usage: bool = True
) -> Iterator[ChatCompletionChunk]:
    """Stream chunks; the final usage-only chunk (``choices == []``) is included when requested."""
    request = _stream_request(params, include_usage)
    model = request.get("model")
    partial: list[str] = []
    finished = False
    try:
        stream = get_client(config).chat.completions.create(**request)
    except _WIRE_ERRORS as exc:
        raise _fail(exc, config, model) from exc
    try:
        for chunk in stream:
            if _observe(chunk, partial):
                finished = True
            yield chunk
    except AIsaError:
        raise
    except _WIRE_ERRORS as exc:
        raise _fail(exc, config, model, in_stream=True, partial_text="".join(partial)) from exc
    finally:
        stream.close()
    if not finished:
        raise _incomplete(model, partial)


async def astream_chat_completion(
    config: ClientConfig, params: Mapping[str, Any], *, include_usage: bool = True
) -> AsyncIterator[ChatCompletionChunk]:
    """Async :func:`stream_chat_completion`."""
    request = _stream_request(params, include_usage)
    model = request.get("model")
    partial: list[str] = []
    finished = False
    try:
        stream = await get_async_client(config).chat.completions.create(**request)
    except _WIRE_ERRORS as exc:
        raise _fail(exc, config, model) from exc
    try:
        async for chunk in stream:
            if _observe(chunk, partial):
                finished = True
            yield chunk
    except AIsaError:
        raise
    except _WIRE_ERRORS as exc:
        raise _fail(exc, config, model, in_stream=True, partial_text="".join(partial)) from exc
    finally:
        await stream.close()
    if not finished:
        raise _incomplete(model, partial)
