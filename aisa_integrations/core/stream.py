"""Streamed chat-completion chunks (plain dicts): what they say, and the completion they add up to.

>>> acc = ChunkAccumulator()
>>> for chunk in ({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
...               {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"},
...                                                      "finish_reason": "stop"}]}):
...     acc.add(chunk)
>>> acc.completion()["choices"][0]["message"]["content"]
'Hello'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ChunkAccumulator", "chunk_has_content", "chunk_text"]

_DELTA_STANDARD = frozenset(
    {"role", "content", "tool_calls", "function_call", "reasoning_content", "reasoning", "refusal"}
)
_CALL_STANDARD = frozenset({"index", "id", "type", "function"})


def chunk_has_content(chunk: Mapping[str, Any]) -> bool:
    """Whether a chunk carries anything a caller sees (text, reasoning, a tool call, a refusal).

    Until the first such chunk, an attempt can still fail over invisibly; it also shows the model is
    alive, which is what ``first_token_timeout`` waits for.
    """
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if delta and (
            delta.get("content")
            or delta.get("tool_calls")
            or delta.get("function_call")
            or delta.get("reasoning_content")
            or delta.get("reasoning")
            or delta.get("refusal")
        ):
            return True
    return False


def chunk_text(chunk: Mapping[str, Any]) -> str:
    """The answer text a chunk adds (first choice)."""
    choices = chunk.get("choices")
    if not choices:
        return ""
    delta = choices[0].get("delta")
    return (delta.get("content") or "") if delta else ""


class _Choice:
    __slots__ = (
        "calls",
        "content",
        "extra",
        "finish_reason",
        "function_call",
        "index",
        "logprobs",
        "reasoning",
        "refusal",
    )

    # Text grows by += (amortised in place), so a long stream costs the same per chunk as a short
    # one even when a caller looks at the whole message after every chunk.
    def __init__(self, index: int) -> None:
        self.index = index
        self.content: str | None = None
        self.reasoning = ""
        self.refusal = ""
        self.calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.logprobs: list[Any] | None = None
        self.extra: dict[str, Any] = {}

    def add(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta:
            text = delta.get("content")
            if text:
                self.content = text if self.content is None else self.content + text
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if thinking:
                self.reasoning += thinking
            if delta.get("refusal"):
                self.refusal += delta["refusal"]
            for piece in delta.get("tool_calls") or ():
                self._add_call(piece)
            if delta.get("function_call"):
                fc = delta["function_call"]
                if self.function_call is None:
                    self.function_call = {"name": "", "arguments": ""}
                if fc.get("name") and not self.function_call["name"]:
                    self.function_call["name"] = fc["name"]
                self.function_call["arguments"] += fc.get("arguments") or ""
            if len(delta) > 2 or not delta.keys() <= _DELTA_STANDARD:
                for key, value in delta.items():
                    if key not in _DELTA_STANDARD and value is not None:
                        earlier = self.extra.get(key)
                        if isinstance(value, list) and isinstance(earlier, list):
                            self.extra[key] = earlier + value  # images, files, ...: each chunk adds some
                        else:
                            self.extra[key] = value
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if logprobs and logprobs.get("content"):
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(logprobs["content"])

    def _add_call(self, piece: Mapping[str, Any]) -> None:
        index = piece.get("index", len(self.calls))
        call = self.calls.get(index)
        if call is None:
            call = self.calls[index] = {"id": None, "type": "function", "name": "", "arguments": "", "extra": {}}
        if piece.get("id") and not call["id"]:
            call["id"] = piece["id"]  # providers that repeat the id on every chunk: never concatenated
        function = piece.get("function") or {}
        if function.get("name") and not call["name"]:
            call["name"] = function["name"]
        if function.get("arguments"):
            call["arguments"] += function["arguments"]
        for key, value in piece.items():
            if key not in _CALL_STANDARD and value is not None:
                call["extra"][key] = value

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                    **call["extra"],
                }
                for _, call in sorted(self.calls.items())
            ]
        if self.function_call is not None:
            message["function_call"] = dict(self.function_call)
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.refusal:
            message["refusal"] = self.refusal
        message.update(self.extra)
        return message


class ChunkAccumulator:
    """Adds streamed chunks up to the completion a non-streamed call would have returned."""

    __slots__ = ("_choices", "created", "id", "model", "request_id", "system_fingerprint", "usage")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.usage: dict[str, Any] | None = None
        self.request_id: str | None = None

    def add(self, chunk: Mapping[str, Any]) -> None:
        if self.id is None:
            self.id = chunk.get("id")
            self.created = chunk.get("created")
        if chunk.get("model"):
            self.model = chunk["model"]
        if chunk.get("system_fingerprint"):
            self.system_fingerprint = chunk["system_fingerprint"]
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice(index)
            state.add(choice)

    def message(self) -> dict[str, Any]:
        """The first choice's message so far (what a caller looking at a growing answer sees)."""
        state = self._choices.get(0)
        return state.message() if state is not None else {"role": "assistant", "content": None}

    @property
    def finish_reason(self) -> str | None:
        state = self._choices.get(0)
        return state.finish_reason if state is not None else None

    def completion(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            choice: dict[str, Any] = {
                "index": index,
                "message": state.message(),
                "finish_reason": state.finish_reason,
                "logprobs": {"content": state.logprobs} if state.logprobs is not None else None,
            }
            choices.append(choice)
        if not choices:
            choices.append(
                {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": None, "logprobs": None}
            )
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "choices": choices,
            "usage": self.usage,
        }
