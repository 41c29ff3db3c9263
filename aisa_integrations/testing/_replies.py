"""Deterministic, scripted replies for the simulator. This is not a model and never pretends to be."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScriptedReply", "ScriptedToolCall", "compose_reply", "count_prompt_tokens", "count_tokens"]

_WORD = re.compile(r"\S+\s*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^'\n]{1,80})'|\"([^\"\n]{1,80})\"|“([^”\n]{1,80})”|`([^`\n]{1,80})`")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-zA-Z]+(?:\s[A-Z][a-zA-Z]+)*)")


@dataclass
class ScriptedToolCall:
    """A tool call the simulator should make: ``name`` and JSON ``arguments``."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass
class ScriptedReply:
    """One scripted answer. ``content`` and/or ``tool_calls``; ``reasoning_content`` for thinkers."""

    content: str | None = None
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)
    reasoning_content: str | None = None
    finish_reason: str | None = None


def count_tokens(text: str) -> int:
    """A stable stand-in for a tokenizer: about four characters a token."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _text_of(content: Any) -> tuple[str, int]:
    """(text, image count) of a message's content."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "image_url":
                images += 1
            elif kind == "file":
                texts.append("[file]")
            elif kind == "input_audio":
                texts.append("[audio]")
    return " ".join(texts), images


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        text, images = _text_of(message.get("content"))
        total += 4 + count_tokens(text) + 85 * images
        for call in message.get("tool_calls") or []:
            total += count_tokens(json.dumps(call))
    for tool in body.get("tools") or body.get("functions") or []:
        total += count_tokens(json.dumps(tool))
    return total


def _last_user(messages: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return "", 0


class _Hints:
    """Fills JSON-schema values from the user's words, deterministically."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.numbers = [float(n) for n in _NUMBER.findall(text)]
        names = _CAPITALISED.findall(text)
        self.place = names[0] if names else "Paris"
        self.quoted = [next(g for g in groups if g) for groups in _QUOTED.findall(text)]

    def number(self) -> float:
        return self.numbers.pop(0) if self.numbers else 1.0

    def string(self, name: str, schema: Mapping[str, Any]) -> str:
        lowered = name.lower()
        if schema.get("format") == "date":
            return "2025-01-01"
        if schema.get("format") == "date-time":
            return "2025-01-01T00:00:00Z"
        if any(k in lowered for k in ("location", "city", "place", "country", "where")):
            return self.place
        if self.quoted:  # "create a customer named 'ACME'": quoted text is what the user wants passed on
            return self.quoted[0]
        if any(k in lowered for k in ("query", "question", "input", "text", "prompt")):
            return self.text[:200] or "query"
        if "name" in lowered:
            return "Ada"
        return f"sample {name}".strip() if name else "sample"


def sample_from_schema(
    schema: Any, hints: _Hints, *, name: str = "", defs: Mapping[str, Any] | None = None, depth: int = 0
) -> Any:
    """A value that validates against ``schema`` (the subset tool and response schemas use)."""
    if not isinstance(schema, Mapping) or depth > 8:
        return None
    defs = {**(defs or {}), **(schema.get("$defs") or {}), **(schema.get("definitions") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return sample_from_schema(target, hints, name=name, defs=defs, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if options:
            non_null = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return sample_from_schema((non_null or options)[0], hints, name=name, defs=defs, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {key: sample_from_schema(sub, hints, name=key, defs=defs, depth=depth + 1) for key, sub in props.items()}
    if kind == "array":
        item = sample_from_schema(
            schema.get("items") or {"type": "string"}, hints, name=name, defs=defs, depth=depth + 1
        )
        return [item] * max(1, int(schema.get("minItems") or 1))
    if kind == "integer":
        return int(hints.number())
    if kind == "number":
        return hints.number()
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return hints.string(name, schema)


def _tool_specs(body: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], bool]:
    """(function specs, legacy?) from ``tools`` or the legacy ``functions``."""
    tools = body.get("tools")
    if tools:
        return [t.get("function", {}) for t in tools if isinstance(t, Mapping)], False
    functions = body.get("functions")
    if functions:
        return [f for f in functions if isinstance(f, Mapping)], True
    return [], False


def _wants_tools(body: Mapping[str, Any], legacy: bool) -> tuple[bool, str | None]:
    """(call a tool?, forced tool name) from tool_choice / function_call."""
    choice = body.get("function_call" if legacy else "tool_choice", "auto")
    if choice == "none":
        return False, None
    if isinstance(choice, Mapping):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        return True, name
    return True, None


def _choose_tools(specs: list[Mapping[str, Any]], text: str, forced: str | None, parallel: bool) -> list:
    if forced:
        return [s for s in specs if s.get("name") == forced][:1]
    lowered = text.lower()
    matched = []
    for spec in specs:
        name = str(spec.get("name", ""))
        words = [w for w in re.split(r"[_\-\s]+", name.lower()) if len(w) > 2 and w not in {"get", "set", "the"}]
        if name.lower() in lowered or any(w in lowered for w in words):
            matched.append(spec)
    if not matched:
        matched = specs[:1]
    return matched if parallel else matched[:1]


def _schema_in(body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> Any:
    """The JSON schema a ``json_object`` request gives: in a tool, or written out in the prompt."""
    specs, _ = _tool_specs(body)
    if specs and isinstance(specs[0].get("parameters"), Mapping):
        return specs[0]["parameters"]
    for message in reversed(messages):
        text = _text_of(message.get("content"))[0]
        for start in (i for i, ch in enumerate(text) if ch == "{"):
            try:
                candidate, _ = json.JSONDecoder().raw_decode(text[start:])
            except ValueError:
                continue
            if isinstance(candidate, Mapping) and ("properties" in candidate or candidate.get("type") == "object"):
                return candidate
    return None


def _json_reply(body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], hints: _Hints, model: str) -> Any:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return sample_from_schema((response_format.get("json_schema") or {}).get("schema") or {}, hints)
    schema = _schema_in(body, messages)
    if schema is not None:
        return sample_from_schema(schema, hints)
    # Keys the prompt asks for ("... a JSON with 'setup' and 'punchline' keys"), else a fixed shape.
    keys = [q for q in hints.quoted if _IDENTIFIER.match(q)]
    if keys:
        return {key: f"sample {key}" for key in keys}
    return {"answer": f"Simulated JSON reply to: {hints.text[:80]}", "model": model}


def compose_reply(body: Mapping[str, Any], *, model: str, reasoning: bool) -> ScriptedReply:
    """The simulator's default answer to a request: a function of the request alone.

    A trailing assistant message is a prefill: the answer continues it (the text it would have
    given, after what the prefill already says).
    """
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    if len(messages) > 1 and messages[-1].get("role") == "assistant" and not messages[-1].get("tool_calls"):
        prefill = _text_of(messages[-1].get("content"))[0]
        whole = compose_reply({**body, "messages": messages[:-1]}, model=model, reasoning=reasoning)
        content = whole.content or ""
        rest = content[len(prefill) :] if content.startswith(prefill) else " " + content
        return ScriptedReply(content=rest, tool_calls=whole.tool_calls, reasoning_content=whole.reasoning_content)
    text, images = _last_user(messages)
    last_role = messages[-1].get("role") if messages else None
    hints = _Hints(text)
    thinking = f"The user asked about: {text[:80]}" if reasoning else None

    response_format = body.get("response_format") or {}
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_schema", "json_object"):
        return ScriptedReply(content=json.dumps(_json_reply(body, messages, hints, model)), reasoning_content=thinking)

    specs, legacy = _tool_specs(body)
    if specs and last_role not in ("tool", "function"):
        wanted, forced = _wants_tools(body, legacy)
        if wanted:
            parallel = body.get("parallel_tool_calls") is not False and not legacy
            calls = [
                ScriptedToolCall(
                    name=str(spec.get("name")),
                    arguments=sample_from_schema(spec.get("parameters") or {"type": "object"}, hints) or {},
                )
                for spec in _choose_tools(specs, text, forced, parallel)
            ]
            if calls:
                return ScriptedReply(tool_calls=calls, reasoning_content=thinking)

    if last_role in ("tool", "function"):
        results = []
        for message in reversed(messages):
            if message.get("role") not in ("tool", "function"):
                break
            results.append(_text_of(message.get("content"))[0])
        content = "Based on the tool results: " + "; ".join(reversed(results)) + "."
    elif images:
        noun = "image" if images == 1 else "images"
        content = (
            f"I see {images} {noun}. This is a scripted description from the AIsa simulator; "
            f"the prompt was: {text[:80]}"
        )
    else:
        prompt = " ".join(text.split())[:80] or "(empty)"
        content = f"Simulated reply from {model}: you said “{prompt}”. The AIsa simulator scripts its answers."
    return ScriptedReply(content=content, reasoning_content=thinking)


def split_words(text: str) -> list[str]:
    """Stream pieces: one word (with its trailing space) each."""
    return _WORD.findall(text) or ([text] if text else [])
