"""What a request needs from a model, and which models can give it.

Derived once from the normalised request, before anything is sent, and checked against the catalog
on every path (a single model, each fallback member, each routing candidate). A model the catalog
does not know is never blocked: the gateway may know better.

>>> from aisa_integrations.core.catalog import default_catalog
>>> needs = requirements_of({"messages": [{"role": "user", "content": [
...     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
>>> needs.violations(default_catalog().info("deepseek-chat"))
['no image input']
>>> needs.violations(default_catalog().info("gpt-4o"))
[]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import ModelInfo
from .wire import max_output_tokens

__all__ = ["Requirements", "estimate_tokens", "requirements_of", "structured_output_method"]


@dataclass(frozen=True)
class Requirements:
    """What the request needs from a model."""

    vision: bool = False
    tools: bool = False
    json_schema: bool = False
    prompt_tokens: int = 0
    max_tokens: int | None = None

    def violations(self, info: ModelInfo) -> list[str]:
        """Why ``info``'s model cannot serve this request ([] if it can, or if the catalog does not know it)."""
        if not info.known:
            return []
        why = []
        if self.vision and info.vision is False:
            why.append("no image input")
        if self.tools and info.tools is False:
            why.append("no tool calling")
        if self.json_schema and info.json_schema is False:
            why.append("no json_schema response format")
        if (
            self.max_tokens is not None
            and info.max_output_tokens is not None
            and self.max_tokens > info.max_output_tokens
        ):
            why.append(f"max_tokens={self.max_tokens} exceeds its output limit of {info.max_output_tokens}")
        if info.context_window is not None and self.prompt_tokens > info.context_window:
            why.append(f"prompt of ~{self.prompt_tokens} tokens exceeds the {info.context_window}-token window")
        return why


def _has_images(messages: Sequence[Mapping[str, Any]]) -> int:
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if part.get("type") == "image_url")
    return count


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A cheap over-estimate of prompt tokens (chars / 3.5), images at a flat 1K each."""
    chars, images = 0, 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                kind = part.get("type")
                if kind == "text":
                    chars += len(part.get("text", ""))
                elif kind == "image_url":
                    images += 1
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
    return int(chars / 3.5) + 1000 * images + 4 * len(messages)


def requirements_of(request: Mapping[str, Any]) -> Requirements:
    """The needs of a normalised chat-completions request."""
    messages = request.get("messages") or ()
    response_format = request.get("response_format")
    return Requirements(
        vision=_has_images(messages) > 0,
        tools=bool(request.get("tools") or request.get("functions")),
        json_schema=isinstance(response_format, Mapping) and response_format.get("type") == "json_schema",
        prompt_tokens=estimate_tokens(messages),
        max_tokens=max_output_tokens(request),
    )


def image_count(request: Mapping[str, Any]) -> int:
    return _has_images(request.get("messages") or ())


def structured_output_method(info: ModelInfo) -> str:
    """How to ask a model for output matching a schema: its ``json_schema`` response format where the
    catalog says it honours one, a forced tool call otherwise."""
    return "json_schema" if info.json_schema is True else "function_calling"


#: The capabilities :func:`shared_capabilities` combines: limits take the smallest, flags need all.
_LIMITS = ("context_window", "max_output_tokens")
_FLAGS = ("vision", "tools", "json_schema", "reasoning")


def shared_capabilities(infos: Sequence[ModelInfo]) -> dict[str, Any]:
    """What every one of these models can do: the smallest limits; a flag True only if all have it,
    False if any lacks it, left out (unknown) otherwise. What a fallback chain or a set of routes
    can promise whichever model ends up answering.

    >>> from aisa_integrations.core.catalog import default_catalog
    >>> catalog = default_catalog()
    >>> shared = shared_capabilities([catalog.info("gpt-4o"), catalog.info("deepseek-chat")])
    >>> shared["vision"], shared["tools"]
    (False, True)
    """
    shared: dict[str, Any] = {}
    for name in _LIMITS:
        values = [getattr(info, name) for info in infos]
        if values and all(v is not None for v in values):
            shared[name] = min(values)
    for name in _FLAGS:
        values = [getattr(info, name) for info in infos]
        if any(v is False for v in values):
            shared[name] = False
        elif values and all(v is True for v in values):
            shared[name] = True
    return shared


def capabilities_of_models(model_ids: Sequence[str | None], catalog: Any) -> dict[str, Any] | None:
    """:func:`shared_capabilities` of these models (ids; None for a member that is not a known model),
    or None when one of them is unknown to ``catalog`` (then nothing can be promised)."""
    infos = [catalog.info(model_id) if model_id else None for model_id in dict.fromkeys(model_ids)]
    if not infos or any(info is None or not info.known for info in infos):
        return None
    return shared_capabilities(infos)  # type: ignore[arg-type]
