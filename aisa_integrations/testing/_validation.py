"""What the simulated gateway refuses, as the real one does: wrong types, out-of-range values, bad parts.

Written from the API's own rules, independently of the client's validation (the client must refuse
the same things before sending; the simulator proves the ones it does not would have failed).
Each problem is ``(status, code, message)``, answered with the documented error body.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..core.catalog import ModelCatalog

__all__ = ["MAX_N", "Problem", "validate_chat"]

Problem = tuple[int, str, str]
MAX_N = 16  # answers per request the simulator will generate
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
_INTEGERS = {"n": (1, MAX_N), "max_tokens": (1, None), "max_completion_tokens": (1, None), "top_logprobs": (0, 20)}
_BOOLS = {"stream", "logprobs", "parallel_tool_calls", "store"}
_OBJECTS = {"stream_options", "response_format", "logit_bias", "metadata"}


def _bad(message: str, code: str = "invalid_request") -> Problem:
    return 400, code, message


def _check_number(name: str, value: Any) -> Problem | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return _bad(f"'{name}' must be a number, got {value!r}.", "invalid_type")
    low, high = _NUMBERS[name]
    if not low <= value <= high:
        return _bad(f"'{name}' must be between {low:g} and {high:g}, got {value!r}.", "invalid_value")
    return None


def _check_integer(name: str, value: Any, limit: int | None) -> Problem | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return _bad(f"'{name}' must be an integer, got {value!r}.", "invalid_type")
    low, high = _INTEGERS[name]
    high = limit if name in ("max_tokens", "max_completion_tokens") and limit else high
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        return _bad(f"'{name}' must be {span}, got {value}.", "invalid_value")
    return None


def _check_part(part: Any, vision: bool | None) -> tuple[str, str] | None:
    if not isinstance(part, Mapping):
        return "invalid_request", "a content part must be an object."
    kind = part.get("type")
    if kind == "text":
        return None if isinstance(part.get("text"), str) else ("invalid_request", "text part without text.")
    if kind == "image_url":
        if vision is False:
            return "unsupported_content", "this model does not accept image input."
        url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), Mapping) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
            return "invalid_image", "image_url.url must be an http(s) URL or a data:image/... URL."
        if url.startswith("data:") and ";base64," not in url:
            return "invalid_image", "data URLs must be base64-encoded."
        return None
    if kind in ("file", "input_audio", "refusal"):
        return None
    return "invalid_request", f"unknown content part type {kind!r}."


def _check_messages(messages: Any, info: Any, model: str) -> Problem | None:
    if not isinstance(messages, list) or not messages:
        return _bad("'messages' must be a non-empty array.")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            return _bad(f"messages[{i}] has no valid role.")
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                problem = _check_part(part, info.vision)
                if problem:
                    return _bad(f"messages[{i}].content[{j}]: {problem[1]}", problem[0])
        elif content is not None and not isinstance(content, str):
            return _bad(f"messages[{i}].content must be a string or an array.", "invalid_type")
        if message.get("role") == "tool" and not message.get("tool_call_id"):
            return _bad(f"messages[{i}] (tool) needs tool_call_id.")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            return _bad(f"messages[{i}].tool_calls must be an array.", "invalid_type")
        for k, call in enumerate(calls or ()):
            if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
                return _bad(f"messages[{i}].tool_calls[{k}] must be {{'id', 'type', 'function'}}.")
            if "extra_content" in call and info.family != "gemini":
                return _bad(f"messages[{i}].tool_calls[{k}].extra_content is not accepted by {model}.")
    return None


def _check_tools(body: Mapping[str, Any], info: Any, model: str) -> Problem | None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return _bad("'tools' must be an array.", "invalid_type")
    for i, tool in enumerate(tools or ()):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or tool.get("type") != "function":
            return _bad(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}.")
        if not _TOOL_NAME.match(str(fn.get("name", ""))):
            return _bad(f"tools[{i}].function.name must match ^[a-zA-Z0-9_-]{{1,64}}$.")
    functions = body.get("functions")
    if functions is not None and not isinstance(functions, list):
        return _bad("'functions' must be an array.", "invalid_type")
    if (tools or functions) and info.tools is False:
        return _bad(f"Model '{model}' does not support tools.")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | Mapping):
        return _bad("'tool_choice' must be a string or an object.", "invalid_type")
    return None


def _check_parameters(body: Mapping[str, Any], info: Any) -> Problem | None:
    for name in _NUMBERS:
        if body.get(name) is not None and (problem := _check_number(name, body[name])):
            return problem
    for name in _INTEGERS:
        if body.get(name) is not None and (problem := _check_integer(name, body[name], info.max_output_tokens)):
            return problem
    for name in _BOOLS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            return _bad(f"'{name}' must be a boolean, got {body[name]!r}.", "invalid_type")
    for name in _OBJECTS:
        if body.get(name) is not None and not isinstance(body[name], Mapping):
            return _bad(f"'{name}' must be an object.", "invalid_type")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        return _bad("'stop' must be a string or an array of strings.", "invalid_type")
    if body.get("seed") is not None and (isinstance(body["seed"], bool) or not isinstance(body["seed"], int)):
        return _bad("'seed' must be an integer.", "invalid_type")
    if body.get("user") is not None and not isinstance(body["user"], str):
        return _bad("'user' must be a string.", "invalid_type")
    return None


def validate_chat(body: Any, catalog: ModelCatalog, serves: Any, count_prompt_tokens: Any) -> Problem | None:
    """The first reason the gateway would refuse this chat request, or None."""
    if not isinstance(body, Mapping):
        return _bad("The body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _bad("'model' is required.")
    if not serves(model):
        return 404, "model_not_found", f"Model '{model}' is not available"
    info = catalog.info(model)
    for check in (
        lambda: _check_parameters(body, info),
        lambda: _check_messages(body.get("messages"), info, model),
        lambda: _check_tools(body, info, model),
    ):
        problem = check()
        if problem:
            return problem
    prompt = count_prompt_tokens(body)
    if info.context_window and prompt > info.context_window:
        return _bad(
            f"This model's maximum context length is {info.context_window} tokens; "
            f"the messages resulted in {prompt} tokens.",
            "context_length_exceeded",
        )
    return None
