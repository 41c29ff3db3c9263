"""The chat-completions request, validated and normalised in one place for every adapter.

Adapters translate their framework's messages and tools into OpenAI-format dicts; everything that
decides whether such a dict is a request the gateway will accept lives here: parameter names, types
and ranges, roles, content parts (base64 and URLs checked), tool names, the ``tool_choice``
vocabulary, response formats, and how text-only content is sent. A problem raises
:class:`InvalidRequestError` naming where it is and what to do, before anything is sent.

>>> request = normalize_request({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}],
...                              "temperature": 0.2, "tool_choice": None})
>>> sorted(request)
['messages', 'model', 'temperature']
"""

from __future__ import annotations

import base64
import binascii
import difflib
import inspect
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidRequestError

__all__ = [
    "CHAT_PARAMS",
    "TOOL_NAME",
    "check_tools",
    "json_schema_format",
    "merge_params",
    "normalize_request",
    "normalize_tool_choice",
    "pydantic_format",
    "to_legacy_functions",
]

#: Tool and function names every provider behind the gateway accepts.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MESSAGE_NAME = re.compile(r"^[^\s<|\\/>]{1,64}$")

#: Top-level fields of ``POST /chat/completions`` (the OpenAI API's, which the gateway speaks).
#: ``tests/core/test_wire.py`` keeps this in step with the openai SDK's ``create()`` signature.
CHAT_PARAMS: frozenset[str] = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
#: Accepted beside the chat fields: gateway or provider extras, sent as they are.
EXTRA_BODY = "extra_body"

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_PART_TYPES = {
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text", "image_url"}),
    "function": frozenset({"text"}),
}
_AUDIO_FORMATS = frozenset({"wav", "mp3"})
_IMAGE_DETAIL = frozenset({"auto", "low", "high"})

# name -> (low, high, integer?) ; None bounds are open.
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, False),
    "frequency_penalty": (-2.0, 2.0, False),
    "presence_penalty": (-2.0, 2.0, False),
    "n": (1, 128, True),
    "max_tokens": (1, None, True),
    "max_completion_tokens": (1, None, True),
    "top_logprobs": (0, 20, True),
    "seed": (None, None, True),
}
_BOOLS = frozenset({"logprobs", "parallel_tool_calls", "stream", "store"})
_STRINGS = frozenset({"user", "reasoning_effort", "service_tier", "verbosity", "safety_identifier", "prompt_cache_key"})
_DICTS = frozenset(
    {"logit_bias", "metadata", "stream_options", "prediction", "audio", "web_search_options", EXTRA_BODY}
)


def _fail(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


# -- parameters -------------------------------------------------------------------------------


def merge_params(
    defaults: Mapping[str, Any],
    *,
    extras: Mapping[str, Any] | None = None,
    call: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One request's parameters: the model's ``defaults``, its configured ``extras`` (gateway or
    provider fields it was built with, sent in the body as they are), then the call's keywords.

    A call keyword that is not a chat-completions field is refused (a typo such as
    ``temprature`` must not reach the gateway as an unknown field): extras go in ``extra_body``.
    """
    request = {k: v for k, v in defaults.items() if v is not None}
    if extras:
        for key, value in extras.items():
            if key in CHAT_PARAMS:
                request[key] = value
            elif key == EXTRA_BODY and isinstance(value, Mapping):
                request[EXTRA_BODY] = {**request.get(EXTRA_BODY, {}), **value}
            else:
                request.setdefault(EXTRA_BODY, {})[key] = value
    if call:
        for key, value in call.items():
            if key not in CHAT_PARAMS and key != EXTRA_BODY:
                raise _unknown_keyword(key)
            if key == EXTRA_BODY and isinstance(value, Mapping):
                request[EXTRA_BODY] = {**request.get(EXTRA_BODY, {}), **value}
            else:
                request[key] = value
    return request


def _unknown_keyword(key: str) -> InvalidRequestError:
    close = difflib.get_close_matches(key, sorted(CHAT_PARAMS), n=1, cutoff=0.75)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return _fail(
        f"Unknown request parameter {key!r}.{hint} For a gateway or provider field, pass it in "
        f"extra_body={{{key!r}: ...}} for one call, or model_kwargs= (LangChain) / additional_kwargs= "
        "(LlamaIndex) on the model."
    )


def _check_number(name: str, value: Any) -> None:
    low, high, integer = _RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise _fail(f"{name} must be {kind}, got {value!r}.")
    if integer and not isinstance(value, int) and not float(value).is_integer():
        raise _fail(f"{name} must be an integer, got {value!r}.")
    if not math.isfinite(value):
        raise _fail(f"{name} must be a finite number, got {value!r}.")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None and low is not None else f">= {low:g}"
        raise _fail(f"{name}={value!r} is out of range: it must be {span}.")


def _check_param(name: str, value: Any) -> Any:
    if name in _RANGES:
        _check_number(name, value)
        return int(value) if _RANGES[name][2] else value
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise _fail(f"{name} must be true or false, got {value!r}.")
    elif name in _STRINGS:
        if not isinstance(value, str):
            raise _fail(f"{name} must be a string, got {type(value).__name__}.")
    elif name in _DICTS:
        if not isinstance(value, Mapping):
            raise _fail(f"{name} must be an object (dict), got {type(value).__name__}.")
    elif name == "stop":
        return _normalize_stop(value)
    elif name == "modalities" and not (isinstance(value, list) and all(isinstance(m, str) for m in value)):
        raise _fail(f"modalities must be a list of strings, got {value!r}.")
    return value


def _normalize_stop(value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list | tuple) or not all(isinstance(s, str) and s for s in stops):
        raise _fail(f"stop must be a string or a list of non-empty strings, got {value!r}.")
    return list(stops)


# -- messages and content -------------------------------------------------------------------


def _check_base64(data: Any, where: str) -> None:
    if not isinstance(data, str) or not data:
        raise _fail(f"{where}: base64 data is missing or not a string.")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(
            f"{where}: the data is not valid base64. Encode the raw bytes with base64.b64encode(data).decode()."
        ) from None


def _check_data_url(url: str, where: str, *, kind: str) -> None:
    header, _, data = url.partition(",")
    mime = header[5:].split(";", 1)[0]
    if ";base64" not in header or (kind == "image" and not mime.startswith("image/")):
        example = "data:image/png;base64,<data>" if kind == "image" else "data:application/pdf;base64,<data>"
        raise _fail(f"{where}: a data URL must look like {example} (got {header[:40]!r}).")
    _check_base64(data, where)


def _check_part(part: Any, role: str, where: str) -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise _fail(f"{where}: a content part must be an object, got {type(part).__name__}.")
    kind = part.get("type")
    if kind not in _PART_TYPES[role]:
        supported = ", ".join(sorted(_PART_TYPES[role]))
        raise _fail(
            f"{where}: a {kind!r} part cannot be sent in a {role} message through chat completions "
            f"(supported there: {supported})."
        )
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise _fail(f"{where}: a text part needs a string 'text'.")
    elif kind == "refusal":
        if not isinstance(part.get("refusal"), str):
            raise _fail(f"{where}: a refusal part needs a string 'refusal'.")
    elif kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):
            part = {**part, "image_url": {"url": image}}
            image = part["image_url"]
        if not isinstance(image, Mapping):
            raise _fail(f"{where}: an image_url part needs image_url={{'url': ...}}.")
        url = image.get("url")
        if not isinstance(url, str) or not url:
            raise _fail(f"{where}: image_url.url must be a non-empty string.")
        if url.startswith("data:"):
            _check_data_url(url, where, kind="image")
        elif not url.startswith(("http://", "https://")):
            raise _fail(f"{where}: image URLs must be http(s) URLs or data:image/...;base64 URLs (got {url[:40]!r}).")
        detail = image.get("detail")
        if detail is not None and detail not in _IMAGE_DETAIL:
            raise _fail(f"{where}: image_url.detail must be one of {sorted(_IMAGE_DETAIL)}, got {detail!r}.")
    elif kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, Mapping):
            raise _fail(f"{where}: an input_audio part needs input_audio={{'data': ..., 'format': ...}}.")
        _check_base64(audio.get("data"), where)
        if audio.get("format") not in _AUDIO_FORMATS:
            raise _fail(f"{where}: input_audio.format must be 'wav' or 'mp3', got {audio.get('format')!r}.")
    elif kind == "file":
        file = part.get("file")
        if not isinstance(file, Mapping) or not (file.get("file_data") or file.get("file_id")):
            raise _fail(f"{where}: a file part needs file={{'file_data': 'data:...;base64,...'}} or a file_id.")
        data = file.get("file_data")
        if data is not None:
            if not isinstance(data, str) or not data.startswith("data:"):
                raise _fail(f"{where}: file.file_data must be a data URL (data:application/pdf;base64,...).")
            _check_data_url(data, where, kind="file")
    return dict(part)


def _join_text(parts: Sequence[Mapping[str, Any]], role: str) -> str:
    # One rule for every adapter. An assistant's text parts are pieces of one reply (as LangChain's
    # message.text joins them); other roles' parts are separate passages.
    separator = "" if role == "assistant" else "\n"
    return separator.join(p["text"] for p in parts)


def _normalize_content(content: Any, role: str, where: str) -> Any:
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list | tuple):
        raise _fail(f"{where}.content must be a string or a list of parts, got {type(content).__name__}.")
    parts = [_check_part(p, role, f"{where}.content[{j}]") for j, p in enumerate(content)]
    if parts and all(p["type"] == "text" and len(p) == 2 for p in parts):
        # Plain text travels as a string: every provider behind the gateway accepts that.
        return _join_text(parts, role)
    if not parts:
        return ""
    return parts


def _check_tool_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise _fail(f"{where}: a tool call must be an object.")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}: a tool call needs a non-empty string id.")
    function = call.get("function")
    if not isinstance(function, Mapping):
        raise _fail(f"{where}: a tool call needs function={{'name': ..., 'arguments': ...}}.")
    name = function.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise _fail(f"{where}: tool name {name!r} is invalid; {_TOOL_NAME_RULE}")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        raise _fail(f"{where}: function.arguments must be a JSON string, got {type(arguments).__name__}.")
    if call.get("type", "function") != "function":
        raise _fail(f"{where}: tool call type must be 'function', got {call.get('type')!r}.")
    return {**call, "type": "function"}


_TOOL_NAME_RULE = "names must match ^[a-zA-Z0-9_-]{1,64}$ (letters, digits, _ and -; at most 64). Rename the tool."


def _normalize_message(message: Any, where: str) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise _fail(f"{where}: a message must be an object, got {type(message).__name__}.")
    role = message.get("role")
    if role not in _ROLES:
        raise _fail(f"{where}: role {role!r} is not a chat-completions role (use one of {sorted(_ROLES)}).")
    out = dict(message)
    content = message.get("content")
    if content is None and role != "assistant":
        raise _fail(f"{where}: a {role} message needs content.")
    if content is not None and not isinstance(content, str):
        out["content"] = _normalize_content(content, role, where)
    name = message.get("name")
    if name is not None and (not isinstance(name, str) or not _MESSAGE_NAME.match(name)):
        raise _fail(f"{where}: name {name!r} is invalid; a message name has no spaces or <|\\/> (at most 64).")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _fail(f"{where}: a tool message needs a non-empty tool_call_id (the id of the call it answers).")
    elif role == "function" and not name:
        raise _fail(f"{where}: a function message needs the function's name.")
    elif role == "assistant":
        calls = message.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list | tuple):
                raise _fail(f"{where}.tool_calls must be a list.")
            out["tool_calls"] = [_check_tool_call(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(calls)]
            if not out["tool_calls"]:
                del out["tool_calls"]
        if out.get("content") is None and not (out.get("tool_calls") or out.get("function_call")):
            out["content"] = ""
    return out


def _normalize_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list | tuple):
        raise _fail(f"messages must be a list of messages, got {type(messages).__name__}.")
    if not messages:
        raise _fail("The conversation is empty: pass at least one message (for example a user message).")
    return [_normalize_message(m, f"messages[{i}]") for i, m in enumerate(messages)]


# -- tools and formats ----------------------------------------------------------------------


def check_tools(tools: Any) -> list[dict[str, Any]]:
    """OpenAI-format tools, checked: each a function with a valid name and an object schema."""
    if not isinstance(tools, list | tuple):
        raise _fail(f"tools must be a list, got {type(tools).__name__}.")
    out = []
    for k, tool in enumerate(tools):
        where = f"tools[{k}]"
        if (
            not isinstance(tool, Mapping)
            or tool.get("type") != "function"
            or not isinstance(tool.get("function"), Mapping)
        ):
            raise _fail(f"{where} must be {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}.")
        function = tool["function"]
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise _fail(f"{where}: tool name {name!r} is invalid; {_TOOL_NAME_RULE}")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise _fail(f"{where}: function.parameters must be a JSON schema object.")
        out.append(dict(tool))
    return out


def _tool_names(tools: Sequence[Mapping[str, Any]] | None) -> list[str]:
    return [t["function"]["name"] for t in tools or ()]


def normalize_tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]] | None) -> Any:
    """Every framework's ``tool_choice`` vocabulary in chat-completions form.

    "auto", "none", "required"; "any" (LangChain) → "required"; True → the only tool, else
    "required"; False → "none"; a tool name → that tool; an OpenAI dict is checked.

    >>> normalize_tool_choice("any", [])
    'required'
    """
    names = _tool_names(tools)
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    if choice is True:
        return {"type": "function", "function": {"name": names[0]}} if len(names) == 1 else "required"
    if choice is False:
        return "none"
    if isinstance(choice, str):
        if choice not in names:
            raise _fail(f"tool_choice={choice!r} names no bound tool (bound: {names}).")
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), Mapping) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise _fail(f"tool_choice={dict(choice)!r} must be {{'type': 'function', 'function': {{'name': ...}}}}.")
        if name not in names:
            raise _fail(f"tool_choice names {name!r}, which is not a bound tool (bound: {names}).")
        return {"type": "function", "function": {"name": name}}
    raise _fail(
        f"tool_choice={choice!r} is not understood; use 'auto', 'none', 'any', 'required', True or a tool name."
    )


def json_schema_format(
    schema: Mapping[str, Any],
    *,
    name: str,
    description: str | None = None,
    strict: bool | None = None,
) -> dict[str, Any]:
    """The ``json_schema`` response format for a JSON schema (one construction for every adapter).

    >>> json_schema_format({"type": "object", "properties": {}}, name="Person")["json_schema"]["name"]
    'Person'
    """
    body: dict[str, Any] = {"name": _schema_name(name), "schema": dict(schema)}
    if description:
        body["description"] = description
    if strict is not None:
        body["strict"] = strict
    return {"type": "json_schema", "json_schema": body}


def pydantic_format(model: type, *, strict: bool | None = None) -> dict[str, Any]:
    """The ``json_schema`` response format for a pydantic model: one construction for every adapter
    (its JSON schema, its class name, its own docstring as the description)."""
    own_doc = model.__dict__.get("__doc__")
    return json_schema_format(
        model.model_json_schema(),  # type: ignore[attr-defined]
        name=model.__name__,
        description=inspect.cleandoc(own_doc) if own_doc else None,
        strict=strict,
    )


def _schema_name(name: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return cleaned or "response"


def _normalize_response_format(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(
            f"response_format must be a dict such as {{'type': 'json_object'}} or a json_schema format, got {value!r}."
        )
    kind = value.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _fail(f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}.")
    if kind == "json_schema":
        body = value.get("json_schema")
        if not isinstance(body, Mapping) or not isinstance(body.get("schema"), Mapping):
            raise _fail("a json_schema response_format needs json_schema={'name': ..., 'schema': {...}}.")
        if not isinstance(body.get("name"), str) or not TOOL_NAME.match(body["name"]):
            raise _fail(f"response_format.json_schema.name {body.get('name')!r} is invalid; {_TOOL_NAME_RULE}")
    return dict(value)


def _normalize_functions(request: dict[str, Any]) -> None:
    functions = request.get("functions")
    if functions is not None:
        request["functions"] = [
            tool["function"] for tool in check_tools([{"type": "function", "function": f} for f in functions])
        ]
    choice = request.get("function_call")
    if choice is not None and choice not in ("auto", "none"):
        names = [f["name"] for f in request.get("functions") or ()]
        name = choice.get("name") if isinstance(choice, Mapping) else None
        if name not in names:
            raise _fail(f"function_call={choice!r} names no given function (given: {names}).")


def to_legacy_functions(request: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``tools`` / ``tool_choice`` as the legacy ``functions`` / ``function_call`` fields,
    and assistant tool calls / tool results as ``function_call`` / ``function`` messages."""
    tools = request.pop("tools", None)
    choice = request.pop("tool_choice", None)
    request.pop("parallel_tool_calls", None)
    if tools:
        request["functions"] = [t["function"] for t in tools]
    if choice is not None:
        if isinstance(choice, Mapping):
            request["function_call"] = {"name": choice["function"]["name"]}
        elif choice == "required":
            names = [f["name"] for f in request.get("functions", [])]
            if len(names) != 1:
                raise _fail(
                    "The legacy 'functions' format cannot require 'any' of several functions; "
                    "name one, or use tool_format='tools'."
                )
            request["function_call"] = {"name": names[0]}
        else:
            request["function_call"] = choice
    names: dict[str, str] = {}
    messages = []
    for i, message in enumerate(request.get("messages") or ()):
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and calls:
            if len(calls) > 1:
                raise _fail(
                    f"messages[{i}]: the legacy 'functions' format carries one call per message, this one has "
                    f"{len(calls)}. Use tool_format='tools' for parallel calls."
                )
            names[calls[0]["id"]] = calls[0]["function"]["name"]
            message = {k: v for k, v in message.items() if k != "tool_calls"}
            message["function_call"] = dict(calls[0]["function"])
        elif message.get("role") == "tool":
            name = message.get("name") or names.get(message.get("tool_call_id", ""))
            if not name:
                raise _fail(f"messages[{i}]: a function result needs the function's name.")
            message = {"role": "function", "name": name, "content": message.get("content")}
        messages.append(message)
    if messages:
        request["messages"] = messages
    return request


# -- the request ----------------------------------------------------------------------------


def normalize_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """Check a chat-completions request and return it normalised; raises before anything is sent.

    ``None`` values mean "not set" and are dropped. Extras in ``extra_body`` are sent unchecked.
    """
    out: dict[str, Any] = {}
    for key, value in request.items():
        if value is None:
            continue
        if key not in CHAT_PARAMS and key != EXTRA_BODY:
            raise _unknown_keyword(key)
        out[key] = value
    model = out.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail(f"model must be a model id such as 'gpt-4.1', got {model!r}.")
    out["messages"] = _normalize_messages(out.get("messages"))
    for key in list(out):
        if key not in ("messages", "model", "tools", "tool_choice", "response_format", "functions", "function_call"):
            out[key] = _check_param(key, out[key])
    if "tools" in out:
        out["tools"] = check_tools(out["tools"])
        if not out["tools"]:
            del out["tools"]
    if "tool_choice" in out:
        if out.get("tools"):
            out["tool_choice"] = normalize_tool_choice(out["tool_choice"], out["tools"])
        elif out["tool_choice"] in ("auto", "none", False):
            del out["tool_choice"]  # says nothing without tools
        else:
            raise _fail(f"tool_choice={out['tool_choice']!r} needs tools: bind the tools it names.")
    if "response_format" in out:
        out["response_format"] = _normalize_response_format(out["response_format"])
    if "functions" in out or "function_call" in out:
        _normalize_functions(out)
    if "max_tokens" in out and "max_completion_tokens" in out:
        raise _fail("Pass max_tokens or max_completion_tokens, not both.")
    return out


def max_output_tokens(request: Mapping[str, Any]) -> int | None:
    """The completion limit a request asks for, whichever field carries it."""
    value = request.get("max_completion_tokens", request.get("max_tokens"))
    return value if isinstance(value, int) else None
