"""One chat call through the engine, for code that speaks OpenAI-format dicts directly (the CLI,
``compare_models``, your own scripts): the same validation, capability checks, error types and cost
reporting as the framework adapters.

>>> from aisa_integrations.core.config import ClientConfig
>>> from aisa_integrations.testing import AIsaSimulator
>>> with AIsaSimulator() as sim:
...     config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
...     reply = chat(config, {"model": "qwen-max", "messages": [{"role": "user", "content": "Hi"}]})
...     reply["model"], reply["choices"][0]["finish_reason"]
('qwen-max', 'stop')
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from .config import ClientConfig
from .engine import Engine, make_plan

__all__ = ["achat", "astream_chat", "chat", "stream_chat"]


def _engine(config: ClientConfig, request: Mapping[str, Any], plan: dict[str, Any]) -> tuple[Engine, dict[str, Any]]:
    body = dict(request)
    model = body.pop("model", None)
    if not isinstance(model, str) or not model:
        from .errors import InvalidRequestError

        raise InvalidRequestError(f"model must be a model id such as 'gpt-4.1', got {model!r}.")
    on_retry = plan.pop("on_retry", None)
    return Engine(make_plan(config, model=model, **plan), on_retry=on_retry), body


def chat(config: ClientConfig, request: Mapping[str, Any], **plan: Any) -> dict[str, Any]:
    """The completion (a dict) for an OpenAI-format request; ``plan`` takes ``make_plan``'s options
    (``fallback_models=``, ``first_token_timeout=``, ...) and ``on_retry=`` (see :class:`Engine`)."""
    engine, body = _engine(config, request, plan)
    outcome = engine.complete(engine.prepare(body))
    assert outcome.completion is not None
    return outcome.completion


async def achat(config: ClientConfig, request: Mapping[str, Any], **plan: Any) -> dict[str, Any]:
    """Async :func:`chat`."""
    engine, body = _engine(config, request, plan)
    outcome = await engine.acomplete(engine.prepare(body))
    assert outcome.completion is not None
    return outcome.completion


def stream_chat(config: ClientConfig, request: Mapping[str, Any], **plan: Any) -> Iterator[dict[str, Any]]:
    """The chunks (dicts) of a streamed answer; the last one carries usage."""
    engine, body = _engine(config, request, plan)
    stream = engine.stream(engine.prepare(body))
    try:
        yield from stream
    finally:
        stream.close()


async def astream_chat(config: ClientConfig, request: Mapping[str, Any], **plan: Any) -> AsyncIterator[dict[str, Any]]:
    """Async :func:`stream_chat`."""
    engine, body = _engine(config, request, plan)
    stream = engine.astream(engine.prepare(body))
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()
