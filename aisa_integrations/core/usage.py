"""Token usage and cost as the gateway reports them.

AIsa's ``usage`` carries the OpenAI token counts plus ``cost`` (USD) and ``credits_remaining``.
A figure the server did not send stays ``None``: a missing cost is not a zero cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Usage", "parse_usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """One response's usage.

    >>> u = parse_usage({"prompt_tokens": 50, "completion_tokens": 200, "total_tokens": 250, "cost": 0.0025})
    >>> (u.total_tokens, u.cost, u.credits_remaining)
    (250, 0.0025, None)
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    credits_remaining: float | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_input_tokens: int | None = None
    audio_output_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The reported figures only (absent ones left out)."""
        # Not dataclasses.asdict: it deep-copies, and this runs on every response.
        return {name: value for name in _FIELDS if (value := getattr(self, name)) is not None}


_FIELDS = tuple(f.name for f in fields(Usage))


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        # openai models keep fields they do not declare (like ``cost``) in model_extra.
        extra = getattr(obj, "model_extra", None)
        if extra:
            value = extra.get(name)
    return value


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if type(value) is float:
        return value
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _from_dict(usage: dict[str, Any]) -> Usage:
    # The wire's own form (a JSON object): read directly, on every response of every call.
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cost=_float(usage.get("cost")),
        credits_remaining=_float(usage.get("credits_remaining")),
        cached_tokens=_int(prompt_details.get("cached_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        audio_input_tokens=_int(prompt_details.get("audio_tokens")),
        audio_output_tokens=_int(completion_details.get("audio_tokens")),
    )


def parse_usage(usage: Any) -> Usage | None:
    """Parse a ``usage`` object (a dict or the openai SDK's model); ``None`` when there is none."""
    if usage is None:
        return None
    if type(usage) is dict:
        return _from_dict(usage)
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    total = _int(_get(usage, "total_tokens"))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cost=_float(_get(usage, "cost")),
        credits_remaining=_float(_get(usage, "credits_remaining")),
        cached_tokens=_int(_get(prompt_details, "cached_tokens")),
        reasoning_tokens=_int(_get(completion_details, "reasoning_tokens")),
        audio_input_tokens=_int(_get(prompt_details, "audio_tokens")),
        audio_output_tokens=_int(_get(completion_details, "audio_tokens")),
    )
