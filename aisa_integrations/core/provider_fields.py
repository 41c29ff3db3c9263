"""Fields the gateway returns beyond the OpenAI schema, kept across turns and scoped to their family.

Some providers hand back data that must come back on the next turn of a tool loop: Gemini's
``thought_signature`` (under ``extra_content.google`` on a tool call), reasoning details, ... The
adapters keep them on the framework message (:func:`extract` when a response arrives,
:func:`attach` when the conversation is sent again); the engine removes them from any request that
goes to another model family (a fallback or a route moving the conversation), where they would be
refused or misread (:func:`for_family`). Anthropic-style ``cache_control`` hints are Claude-only too.

>>> stored = extract({"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
...     "function": {"name": "f", "arguments": "{}"}, "extra_content": {"google": {"thought_signature": "sig"}}}]},
...     model="gemini-2.0-flash")
>>> stored["family"], stored["tool_calls"]["c1"]
('gemini', {'extra_content': {'google': {'thought_signature': 'sig'}}})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .catalog import family_of

__all__ = ["FAMILY_KEY", "attach", "extract", "for_family"]

# The private key an outgoing assistant message carries to say which family its extras came from.
FAMILY_KEY = "_aisa_family"
_STANDARD_MESSAGE = frozenset(
    {
        "role",
        "content",
        "name",
        "tool_calls",
        "function_call",
        "refusal",
        "audio",
        "annotations",
        "reasoning_content",
        "reasoning",
    }
)
_STANDARD_CALL = frozenset({"id", "type", "function", "index"})
_CLAUDE_ONLY = "cache_control"


def extract(message: Mapping[str, Any], *, model: str | None) -> dict[str, Any] | None:
    """The non-standard fields of a response message and its tool calls (None when there are none)."""
    fields = {k: v for k, v in message.items() if k not in _STANDARD_MESSAGE and v is not None}
    calls = {}
    for call in message.get("tool_calls") or ():
        extra = {k: v for k, v in call.items() if k not in _STANDARD_CALL and v is not None}
        if extra and call.get("id"):
            calls[call["id"]] = extra
    if not fields and not calls:
        return None
    stored: dict[str, Any] = {"family": family_of(model or "")[0]}
    if fields:
        stored["message"] = fields
    if calls:
        stored["tool_calls"] = calls
    return stored


def attach(message: dict[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Put stored fields back on an outgoing assistant message (marking their family)."""
    if not stored:
        return message
    message.update(stored.get("message") or {})
    by_id = stored.get("tool_calls") or {}
    if by_id and message.get("tool_calls"):
        message["tool_calls"] = [{**call, **by_id.get(call.get("id"), {})} for call in message["tool_calls"]]
    message[FAMILY_KEY] = stored.get("family", "unknown")
    return message


def _strip_cache_control(content: Any) -> Any:
    if isinstance(content, list) and any(_CLAUDE_ONLY in part for part in content):
        return [{k: v for k, v in part.items() if k != _CLAUDE_ONLY} for part in content]
    return content


def needs_scoping(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any message carries family-scoped fields (checked once per request)."""
    for message in messages:
        if FAMILY_KEY in message or _CLAUDE_ONLY in message:
            return True
        content = message.get("content")
        if isinstance(content, list) and any(_CLAUDE_ONLY in part for part in content):
            return True
    return False


def for_family(messages: Sequence[Mapping[str, Any]], family: str) -> list[dict[str, Any]]:
    """The conversation as ``family`` may receive it: other families' extras and the marker removed."""
    out = []
    for message in messages:
        source = message.get(FAMILY_KEY)
        clean = {k: v for k, v in message.items() if k != FAMILY_KEY}
        if source is not None and source != family and family != "unknown":
            clean = {k: v for k, v in clean.items() if k in _STANDARD_MESSAGE}
            if clean.get("tool_calls"):
                clean["tool_calls"] = [
                    {k: v for k, v in call.items() if k in _STANDARD_CALL} for call in clean["tool_calls"]
                ]
        if family != "claude" and family != "unknown":
            clean.pop(_CLAUDE_ONLY, None)
            if "content" in clean:
                clean["content"] = _strip_cache_control(clean["content"])
        out.append(clean)
    return out
