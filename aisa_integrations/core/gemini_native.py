"""Gemini's native ``generateContent`` format, translated at the wire (pure functions, no I/O).

The engine works on OpenAI-format requests and completions; a target with ``api="gemini-native"`` is
sent ``POST {base}/models/{model}:generateContent`` (or ``:streamGenerateContent?alt=sse``) instead
of ``/chat/completions``. This module is that translation, both ways:

- :func:`to_generate_content`: an OpenAI-format request (as :func:`~aisa_integrations.core.wire.normalize_request`
  left it) as a ``generateContent`` body. What cannot be said in Gemini's format raises
  :class:`~aisa_integrations.core.errors.InvalidRequestError` before anything is sent; nothing is
  dropped silently. Native-only options travel in ``request["gemini"]`` or ``extra_body={"gemini": {...}}``.
- :func:`completion_from_generate_content`: a ``generateContent`` response as a ``chat.completion`` dict.
- :func:`chunks_from_stream_event` (with a :class:`NativeStreamState`) and :func:`end_of_stream`: one
  SSE event of ``:streamGenerateContent`` as ``chat.completion.chunk`` dicts; :func:`completion_as_chunks`
  delivers a whole answer as chunks (a stream answered in one piece).
- :func:`native_error`: Google's error body (``{"error": {"code", "message", "status"}}``) as the
  package's typed error, by the same status → class mapping as every other error.

Gemini's thought signatures are kept where the OpenAI-compatible API puts them
(``extra_content.google.thought_signature``, on a tool call, or on the message for a text answer),
so :mod:`~aisa_integrations.core.provider_fields` keeps them across turns and they go back as the
parts' ``thoughtSignature``.

>>> body = to_generate_content({"model": "gemini-2.0-flash", "temperature": 0.2, "messages": [
...     {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})
>>> body["systemInstruction"], body["contents"], body["generationConfig"]
({'parts': [{'text': 'Be brief.'}]}, [{'role': 'user', 'parts': [{'text': 'Hi'}]}], {'temperature': 0.2})
>>> completion = completion_from_generate_content({"candidates": [{"content": {"role": "model",
...     "parts": [{"text": "Hello!"}]}, "finishReason": "STOP"}]}, "gemini-2.0-flash")
>>> completion["choices"][0]["message"]["content"], completion["choices"][0]["finish_reason"]
('Hello!', 'stop')
"""

from __future__ import annotations

import json
import mimetypes
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from . import errors as E

__all__ = [
    "NativeStreamState",
    "chunks_from_stream_event",
    "completion_as_chunks",
    "completion_from_generate_content",
    "end_of_stream",
    "gemini_schema",
    "generate_content_path",
    "native_error",
    "native_options",
    "to_generate_content",
    "usage_from_metadata",
]

_FIX = "Remove it, or send this request through chat completions (api='chat')."

# -- paths ----------------------------------------------------------------------------------


def generate_content_path(model: str, *, stream: bool = False) -> str:
    """The path (under the base URL) of a model's ``generateContent`` method; the id is URL-quoted.

    >>> generate_content_path("gemini-2.0-flash", stream=True)
    '/models/gemini-2.0-flash:streamGenerateContent'
    """
    method = "streamGenerateContent" if stream else "generateContent"
    return f"/models/{quote(model, safe='')}:{method}"


# -- request: OpenAI format → generateContent ----------------------------------------------

#: Parameters that say nothing the native format needs (bookkeeping, or the transport's business).
_IGNORED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "parallel_tool_calls",
        "extra_body",
        "gemini",
    }
)
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
}
_HANDLED = frozenset(
    {*_GENERATION, "stop", "tools", "tool_choice", "functions", "function_call", "response_format"}
    | {"reasoning_effort", "modalities"}
)
#: Google's OpenAI-compatibility table: reasoning_effort → thinking budget (tokens).
_THINKING_BUDGET = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
#: ``generationConfig`` fields: given at the top of ``gemini={...}``, they are moved into it.
_GENERATION_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    }
)
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}
_GOOGLE = "google"
_SIGNATURE = "thought_signature"


def _fail(message: str) -> E.InvalidRequestError:
    return E.InvalidRequestError(message)


def native_options(request: Mapping[str, Any]) -> dict[str, Any]:
    """The native-only options of a request: ``request["gemini"]`` and ``extra_body["gemini"]`` merged.

    >>> native_options({"extra_body": {"gemini": {"topK": 40}}})
    {'topK': 40}
    """
    options: dict[str, Any] = {}
    for source in (request.get("gemini"), (request.get("extra_body") or {}).get("gemini")):
        if source is None:
            continue
        if not isinstance(source, Mapping):
            raise _fail(f"gemini= must be a dict of native generateContent fields, got {type(source).__name__}.")
        for key, value in source.items():
            if key == "generationConfig" and isinstance(value, Mapping):
                options[key] = {**options.get(key, {}), **value}
            else:
                options[key] = value
    return options


def _signature_of(holder: Mapping[str, Any]) -> str | None:
    extra = holder.get("extra_content")
    google = extra.get(_GOOGLE) if isinstance(extra, Mapping) else None
    signature = google.get(_SIGNATURE) if isinstance(google, Mapping) else None
    return signature if isinstance(signature, str) and signature else None


def _data_url(url: str, where: str) -> dict[str, Any]:
    header, sep, data = url.partition(",")
    mime = header[5:].split(";", 1)[0]
    if not sep or ";base64" not in header or not mime:
        raise _fail(f"{where}: a data URL must look like data:<mime type>;base64,<data> (got {header[:40]!r}).")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _guess_mime(url: str, default: str) -> str:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith(default.split("/", 1)[0] + "/") else default


def _image_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise _fail(f"{where}: an image_url part needs image_url={{'url': ...}}.")
    if url.startswith("data:"):
        return _data_url(url, where)
    if url.startswith(("http://", "https://")):
        return {"fileData": {"mimeType": _guess_mime(url, "image/jpeg"), "fileUri": url}}
    raise _fail(f"{where}: image URLs must be http(s) URLs or data:image/...;base64 URLs (got {url[:40]!r}).")


def _user_part(part: Any, where: str) -> dict[str, Any] | None:
    if not isinstance(part, Mapping):
        raise _fail(f"{where}: a content part must be an object, got {type(part).__name__}.")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise _fail(f"{where}: a text part needs a string 'text'.")
        return {"text": text} if text else None
    if kind == "image_url":
        return _image_part(part, where)
    if kind == "input_audio":
        audio = part.get("input_audio")
        audio_format = audio.get("format") if isinstance(audio, Mapping) else None
        if audio_format not in _AUDIO_MIME or not isinstance(audio.get("data"), str):  # type: ignore[union-attr]
            raise _fail(f"{where}: an input_audio part needs input_audio={{'data': <base64>, 'format': 'wav'|'mp3'}}.")
        return {"inlineData": {"mimeType": _AUDIO_MIME[audio_format], "data": audio["data"]}}  # type: ignore[index]
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, Mapping) else None
        if isinstance(data, str) and data.startswith("data:"):
            return _data_url(data, where)
        raise _fail(
            f"{where}: a file part can be sent in Gemini's native format only as inline data "
            "(file={'file_data': 'data:application/pdf;base64,...'}); a file_id cannot be. Send the bytes inline, "
            "or use api='chat'."
        )
    raise _fail(f"{where}: a {kind!r} content part cannot be sent in Gemini's native format. {_FIX}")


def _content_parts(content: Any, where: str, *, role: str) -> list[dict[str, Any]]:
    """The parts of a system, user or tool message's content (empty text is left out: Gemini refuses it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list | tuple):
        raise _fail(f"{where}.content must be a string or a list of parts, got {type(content).__name__}.")
    parts = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        if role == "system" and not (isinstance(part, Mapping) and part.get("type") == "text"):
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise _fail(
                f"{here}: a system instruction takes text only, got a {kind!r} part. Move it to a user message."
            )
        translated = _user_part(part, here)
        if translated is not None:
            parts.append(translated)
    return parts


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        raise _fail(
            f"{where}: the call's arguments are not valid JSON ({str(raw)[:60]!r}); Gemini takes them as an object. "
            "Fix the arguments, or use api='chat'."
        ) from None
    if not isinstance(value, dict):
        raise _fail(f"{where}: Gemini takes a call's arguments as a JSON object, got {type(value).__name__}.")
    return value


def _model_parts(message: Mapping[str, Any], where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif isinstance(content, list | tuple):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            key = "refusal" if kind == "refusal" else "text"
            text = part.get(key) if kind in ("text", "refusal") else None  # type: ignore[union-attr]
            if not isinstance(text, str):
                raise _fail(f"{where}.content[{j}]: an assistant message takes text parts only in Gemini's format.")
            if text:
                parts.append({"text": text})
    elif content is not None:
        raise _fail(f"{where}.content must be a string or a list of parts, got {type(content).__name__}.")
    if message.get("refusal") and not parts:
        parts.append({"text": message["refusal"]})
    for j, image in enumerate(message.get("images") or ()):
        parts.append(_image_part(image, f"{where}.images[{j}]"))
    if message.get("audio"):
        raise _fail(f"{where}: an assistant audio reply cannot be sent back in Gemini's native format. {_FIX}")
    signature = _signature_of(message)
    if signature is not None:
        texts = [p for p in parts if "text" in p]
        if texts:
            texts[-1]["thoughtSignature"] = signature
        else:
            parts.insert(0, {"text": "", "thoughtSignature": signature})
    for k, call in enumerate(message.get("tool_calls") or ()):
        here = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _fail(f"{here}: a tool call needs function={{'name': ..., 'arguments': ...}}.")
        part: dict[str, Any] = {
            "functionCall": {"name": function["name"], "args": _arguments(function.get("arguments"), here)}
        }
        call_signature = _signature_of(call)
        if call_signature is not None:
            part["thoughtSignature"] = call_signature
        parts.append(part)
        if call.get("id"):
            names[call["id"]] = function["name"]
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping) and legacy.get("name"):
        args = _arguments(legacy.get("arguments"), f"{where}.function_call")
        parts.append({"functionCall": {"name": legacy["name"], "args": args}})
    return parts


def _result(content: Any, where: str) -> tuple[Any, list[dict[str, Any]]]:
    """A tool result: (its value: parsed JSON or the text, media parts that go with it)."""
    if isinstance(content, str):
        text, media = content, []
    else:
        parts = _content_parts(content, where, role="tool")
        text = "\n".join(p["text"] for p in parts if "text" in p)
        media = [p for p in parts if "text" not in p]
    try:
        return json.loads(text), media
    except (TypeError, ValueError):
        return text, media


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)  # Gemini wants the turns to alternate: same-role turns merge
    else:
        contents.append({"role": role, "parts": parts})


def _contents(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system instruction parts, contents) of a conversation."""
    if not isinstance(messages, list | tuple) or not messages:
        raise _fail("The conversation is empty: pass at least one message (for example a user message).")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _fail(f"{where}: a message must be an object, got {type(message).__name__}.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_content_parts(message.get("content"), where, role="system"))
        elif role == "user":
            _append(contents, "user", _content_parts(message.get("content"), where, role="user"))
        elif role == "assistant":
            _append(contents, "model", _model_parts(message, where, names))
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            name = names.get(call_id) if isinstance(call_id, str) else None
            name = name or message.get("name")
            if not isinstance(name, str) or not name:
                raise _fail(
                    f"{where}: this tool result answers a call ({call_id!r}) that no earlier assistant message made; "
                    "Gemini needs the function's name. Keep the assistant message with the tool call in the "
                    "conversation, or give the tool message a name."
                )
            value, media = _result(message.get("content"), where)
            response = {"functionResponse": {"name": name, "response": {"result": value}}}
            _append(contents, "user", [response, *media])
        else:
            raise _fail(f"{where}: role {role!r} cannot be sent in Gemini's native format.")
    if not contents:
        raise _fail(
            "Gemini's native format needs at least one user or assistant turn beside the system instruction: "
            "add a user message."
        )
    return system, contents


# -- schemas ----------------------------------------------------------------------------------

#: JSON-schema keys Gemini's ``Schema`` refuses (or cannot express): left out of what is sent.
_SCHEMA_DROPPED = frozenset(
    {
        "additionalProperties",
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "strict",
        "$defs",
        "definitions",
        "examples",
        "patternProperties",
        "unevaluatedProperties",
        "dependentRequired",
        "dependentSchemas",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentMediaType",
        "contentEncoding",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "if",
        "then",
        "else",
        "not",
        "discriminator",
        "prefixItems",
        "const",
        "oneOf",
        "allOf",
        "$ref",
        "type",
        "format",
    }
)
_FORMATS = frozenset({"float", "double", "int32", "int64", "enum", "date-time"})
_MAX_SCHEMA_DEPTH = 32


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON schema as Gemini's ``Schema`` takes it: ``$ref`` inlined, ``null`` types as ``nullable``,
    ``oneOf`` as ``anyOf``, ``const`` as a one-value ``enum``, keys it refuses (``additionalProperties``,
    ``$schema``, ``strict``, ...) left out. A recursive schema raises :class:`InvalidRequestError`.

    >>> gemini_schema({"type": "object", "additionalProperties": False,
    ...                "properties": {"n": {"type": ["integer", "null"]}}})
    {'type': 'object', 'properties': {'n': {'type': 'integer', 'nullable': True}}}
    """
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _schema(schema, defs, (), 0)


def _resolve(ref: str, defs: Mapping[str, Any], stack: tuple[str, ...]) -> Mapping[str, Any]:
    if ref in stack:
        raise _fail(
            f"The JSON schema refers to itself ({ref}); Gemini's native format cannot express a recursive schema. "
            "Flatten it, or use api='chat'."
        )
    target = defs.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/") else None
    if not isinstance(target, Mapping):
        raise _fail(f"The JSON schema refers to {ref!r}, which it does not define under $defs.")
    return target


def _schema(schema: Any, defs: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        return {}
    if depth > _MAX_SCHEMA_DEPTH:
        raise _fail("The JSON schema is nested too deeply for Gemini's native format; flatten it, or use api='chat'.")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        merged = {**_resolve(ref, defs, stack), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _schema(merged, defs, (*stack, ref), depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in all_of:
            sub = _resolve(sub["$ref"], defs, stack) if isinstance(sub, Mapping) and "$ref" in sub else sub
            for key, value in (sub or {}).items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return _schema(merged, defs, stack, depth + 1)
    out: dict[str, Any] = {}
    nullable = False
    kind = schema.get("type")
    if isinstance(kind, list):
        nullable = "null" in kind
        kinds = [k for k in kind if k != "null"]
        if len(kinds) == 1:
            out["type"] = kinds[0]
        elif kinds:
            out["anyOf"] = [{"type": k} for k in kinds]
    elif isinstance(kind, str):
        out["type"] = kind
    if schema.get("format") in _FORMATS:
        out["format"] = schema["format"]
    if "const" in schema and isinstance(schema["const"], str):
        out["enum"] = [schema["const"]]
        out.setdefault("type", "string")
    options = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(options, list):
        subs = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
        nullable = nullable or len(subs) < len(options)
        translated = [_schema(o, defs, stack, depth + 1) for o in subs]
        if len(translated) == 1:
            out.update({k: v for k, v in translated[0].items() if k not in out})
        elif translated:
            out["anyOf"] = translated
    for key, value in schema.items():
        if key in _SCHEMA_DROPPED or key in ("anyOf", "nullable") or key in out:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out["properties"] = {name: _schema(sub, defs, stack, depth + 1) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _schema(value, defs, stack, depth + 1)
        else:
            out[key] = value
    if nullable or schema.get("nullable") is True:
        out["nullable"] = True
    return out


def _tools(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    functions = [t.get("function") for t in request.get("tools") or ()]
    functions += list(request.get("functions") or ())
    declarations = []
    for k, function in enumerate(functions):
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _fail(f"tools[{k}] must be {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}.")
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, Mapping) and (parameters.get("properties") or parameters.get("type") != "object"):
            declaration["parameters"] = gemini_schema(parameters)
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(request: Mapping[str, Any]) -> dict[str, Any] | None:
    choice = request.get("tool_choice")
    if choice is None and request.get("function_call") is not None:
        legacy = request["function_call"]
        choice = {"type": "function", "function": legacy} if isinstance(legacy, Mapping) else legacy
    if choice is None:
        return None
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping) and choice["function"].get("name"):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}}
    raise _fail(
        f"tool_choice={choice!r} cannot be sent in Gemini's native format; use 'auto', 'none', 'required' or a tool."
    )


def _generation_config(request: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, native in _GENERATION.items():
        if request.get(name) is not None:
            config[native] = request[name]
    stop = request.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = request.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            body = response_format.get("json_schema") or {}
            if not isinstance(body.get("schema"), Mapping):
                raise _fail("a json_schema response_format needs json_schema={'name': ..., 'schema': {...}}.")
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = gemini_schema(body["schema"])
        elif kind not in (None, "text"):
            raise _fail(f"response_format type {kind!r} cannot be sent in Gemini's native format.")
    effort = request.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGET:
            raise _fail(f"reasoning_effort={effort!r} has no Gemini equivalent; use one of {sorted(_THINKING_BUDGET)}.")
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGET[effort]}
    modalities = request.get("modalities")
    if modalities is not None:
        if any(m != "text" for m in modalities):
            raise _fail(f"modalities={modalities!r}: only text output can be asked for here. {_FIX}")
        config["responseModalities"] = ["TEXT"]
    return config


def to_generate_content(request: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-format chat request as a ``generateContent`` body (the model goes in the path).

    System and developer messages become ``systemInstruction``; user/assistant turns ``contents``
    with roles ``user``/``model`` (same-role turns merged); tool calls ``functionCall`` parts and tool
    results ``functionResponse`` parts (``{"result": <parsed JSON or the text>}``); ``tools`` become
    ``functionDeclarations``, ``tool_choice`` ``toolConfig``; sampling parameters and
    ``response_format`` become ``generationConfig``. Native-only fields come from ``request["gemini"]``
    or ``extra_body={"gemini": {...}}`` (``generationConfig`` fields merged into it, the rest top-level);
    the other ``extra_body`` fields are sent top-level as they are. Anything that cannot be translated
    raises :class:`InvalidRequestError` naming it.

    >>> body = to_generate_content({"model": "gemini-2.0-flash", "messages": [
    ...     {"role": "user", "content": "Weather in Paris?"},
    ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
    ...         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "22C"}],
    ...     "gemini": {"topK": 40, "safetySettings": []}})
    >>> [content["role"] for content in body["contents"]]
    ['user', 'model', 'user']
    >>> body["contents"][2]["parts"][0]["functionResponse"]
    {'name': 'get_weather', 'response': {'result': '22C'}}
    >>> body["generationConfig"], body["safetySettings"]
    ({'topK': 40}, [])
    """
    unknown = sorted(k for k in request if k not in _IGNORED and k not in _HANDLED and request[k] is not None)
    if unknown:
        raise _fail(f"{', '.join(unknown)} cannot be sent in Gemini's native format. {_FIX}")
    system, contents = _contents(request.get("messages"))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = _tools(request)
    if tools:
        body["tools"] = tools
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    generation = _generation_config(request)
    for key, value in (request.get("extra_body") or {}).items():
        if key != "gemini":
            body[key] = value
    for key, value in native_options(request).items():
        if key == "generationConfig":
            if not isinstance(value, Mapping):
                raise _fail("gemini={'generationConfig': ...} must be a dict.")
            generation.update(value)
        elif key in _GENERATION_FIELDS:
            generation[key] = value
        elif key == "tools" and isinstance(value, list):
            body["tools"] = [*body.get("tools", []), *value]  # e.g. {"googleSearch": {}} beside the functions
        elif key == "toolConfig" and isinstance(value, Mapping):
            body["toolConfig"] = {**body.get("toolConfig", {}), **value}
        else:
            body[key] = value
    if generation:
        body["generationConfig"] = generation
    return body


# -- response: generateContent → OpenAI format ---------------------------------------------

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def _malformed(what: str, model: str | None) -> E.MalformedResponseError:
    return E.MalformedResponseError(
        f"{what}. (model={model}) The answer is unusable; retry, or configure a fallback model.",
        model=model,
    )


#: Gemini gave up on an answer it started: passed off as complete it would look like an empty reply,
#: so it is a malformed answer (retried, or failed over, like any other).
_BROKEN = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})


def _finish_reason(native: Any, has_calls: bool, model: str | None = None) -> str | None:
    if native is None or native == "FINISH_REASON_UNSPECIFIED":
        return None
    if native in _BROKEN:
        raise _malformed(f"Gemini ended the answer with finishReason {native}", model)
    reason = _FINISH.get(str(native), "stop")
    return "tool_calls" if reason == "stop" and has_calls else reason


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from_metadata(metadata: Any, usage: Any = None) -> dict[str, Any] | None:
    """OpenAI-format ``usage`` from Gemini's ``usageMetadata`` (and AIsa's ``cost`` /
    ``credits_remaining``, from it or from a top-level ``usage`` object); None if neither is there.

    >>> usage = usage_from_metadata({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3,
    ...                              "totalTokenCount": 18, "cost": 0.001})
    >>> usage["completion_tokens"], usage["completion_tokens_details"], usage["cost"]
    (8, {'reasoning_tokens': 3}, 0.001)
    """
    metadata = metadata if isinstance(metadata, Mapping) else None
    usage = usage if isinstance(usage, Mapping) else None
    if metadata is None and usage is None:
        return None
    out: dict[str, Any] = {}
    if usage is not None:
        out.update({k: v for k, v in usage.items() if k not in ("cost", "credits_remaining")})
    if metadata is not None:
        # Tool-use prompt tokens (results of Google's own tools) are billed as prompt tokens.
        prompt = (_int(metadata.get("promptTokenCount")) or 0) + (_int(metadata.get("toolUsePromptTokenCount")) or 0)
        thoughts = _int(metadata.get("thoughtsTokenCount"))
        completion = (_int(metadata.get("candidatesTokenCount")) or 0) + (thoughts or 0)
        total = _int(metadata.get("totalTokenCount"))
        out.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total or prompt + completion)
        cached = _int(metadata.get("cachedContentTokenCount"))
        if cached is not None:
            out["prompt_tokens_details"] = {"cached_tokens": cached}
        if thoughts is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    for key in ("cost", "credits_remaining"):
        for source in (metadata, usage):
            if source is not None and source.get(key) is not None:
                out[key] = source[key]
                break
    return out


class _Reading:
    """The parts of one candidate (or one streamed piece of it), read into OpenAI fields."""

    __slots__ = ("calls", "files", "images", "signature", "text", "thinking")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.signature: str | None = None

    def read(self, parts: Any, where: str, model: str | None, new_id: Any) -> _Reading:
        if parts is None:
            return self
        if not isinstance(parts, list):
            raise _malformed(f"The gateway sent {where}.content.parts that is not a list", model)
        for part in parts:
            if not isinstance(part, Mapping):
                raise _malformed(f"The gateway sent a part in {where} that is not an object", model)
            signature = part.get("thoughtSignature")
            if "functionCall" in part:
                call = part["functionCall"]
                if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                    raise _malformed(f"The gateway sent a functionCall in {where} without a name", model)
                entry: dict[str, Any] = {
                    "id": new_id(),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call.get("args") or {})},
                }
                if signature:
                    entry["extra_content"] = {_GOOGLE: {_SIGNATURE: signature}}
                self.calls.append(entry)
                continue
            if signature:
                self.signature = signature
            if isinstance(part.get("text"), str):
                (self.thinking if part.get("thought") else self.text).append(part["text"])
            elif isinstance(part.get("inlineData"), Mapping) or isinstance(part.get("fileData"), Mapping):
                self._media(part)
            elif isinstance(part.get("executableCode"), Mapping):
                code = part["executableCode"]
                language = str(code.get("language") or "").lower().replace("language_unspecified", "")
                self.text.append(f"\n```{language}\n{code.get('code', '')}\n```\n")
            elif isinstance(part.get("codeExecutionResult"), Mapping):
                self.text.append(f"\n```\n{part['codeExecutionResult'].get('output', '')}\n```\n")
        return self

    def _media(self, part: Mapping[str, Any]) -> None:
        inline = part.get("inlineData")
        if isinstance(inline, Mapping):
            mime, url = str(inline.get("mimeType") or ""), f"data:{inline.get('mimeType')};base64,{inline.get('data')}"
        else:
            mime, url = str(part["fileData"].get("mimeType") or ""), str(part["fileData"].get("fileUri"))
        if mime.startswith("image/"):
            self.images.append({"type": "image_url", "image_url": {"url": url}})
        else:
            self.files.append({"mime_type": mime, "url": url})

    def fields(self) -> dict[str, Any]:
        """The message fields besides content (tool calls, reasoning, signature, media)."""
        out: dict[str, Any] = {}
        if self.calls:
            out["tool_calls"] = self.calls
        if self.thinking:
            out["reasoning_content"] = "".join(self.thinking)
        if self.signature:
            out["extra_content"] = {_GOOGLE: {_SIGNATURE: self.signature}}
        if self.images:
            out["images"] = self.images
        if self.files:
            out["files"] = self.files
        return out


def _ids() -> Any:
    prefix = uuid.uuid4().hex[:12]
    count = iter(range(1, 1 << 30))
    return lambda: f"call_{prefix}_{next(count)}"


def _blocked(feedback: Any, model: str | None) -> E.AIsaAPIError:
    reason = feedback.get("blockReason")
    detail = feedback.get("blockReasonMessage")
    message = f"Gemini blocked the prompt ({reason})" + (f": {detail}" if detail else "")
    body = {"error": {"code": "content_policy_violation", "message": message}}
    return E.error_from_body(body, model=model)


def _check_body(body: Any, model: str | None) -> list[Any]:
    """The candidates of a response; typed errors for an error body, a blocked prompt or another shape."""
    if not isinstance(body, Mapping):
        raise _malformed(f"The gateway sent a {type(body).__name__} where a generateContent response belongs", model)
    if body.get("error") and not body.get("candidates"):
        raise native_error(200, body, model=model)
    candidates = body.get("candidates")
    feedback = body.get("promptFeedback")
    if not candidates and isinstance(feedback, Mapping) and feedback.get("blockReason"):
        raise _blocked(feedback, model)
    if not isinstance(candidates, list) or not candidates:
        raise _malformed("The gateway sent JSON that is not a generateContent response (no candidates)", model)
    return candidates


def completion_from_generate_content(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A ``generateContent`` response as an OpenAI ``chat.completion`` dict.

    Text parts make ``content``, thought parts ``reasoning_content``, ``functionCall`` parts
    ``tool_calls`` (ids ``call_<hex>_<n>``, unique per response); a part's ``thoughtSignature`` is kept as
    ``extra_content.google.thought_signature`` (on its tool call, else on the message).
    ``finishReason`` maps to ``finish_reason`` (STOP → stop, or tool_calls with calls; MAX_TOKENS →
    length; SAFETY and the other filters → content_filter); ``usageMetadata`` to ``usage`` with
    AIsa's ``cost`` / ``credits_remaining``. A blocked prompt raises :class:`ContentPolicyError`;
    another shape :class:`MalformedResponseError`.

    >>> completion = completion_from_generate_content({"candidates": [{"content": {"role": "model", "parts": [
    ...     {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig"}]},
    ...     "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4,
    ...     "totalTokenCount": 13, "cost": 0.0001}}, "gemini-2.0-flash")
    >>> choice = completion["choices"][0]
    >>> choice["finish_reason"], choice["message"]["tool_calls"][0]["function"]
    ('tool_calls', {'name': 'get_weather', 'arguments': '{"city": "Paris"}'})
    >>> choice["message"]["tool_calls"][0]["extra_content"], completion["usage"]["cost"]
    ({'google': {'thought_signature': 'sig'}}, 0.0001)
    """
    candidates = _check_body(body, model)
    new_id = _ids()
    choices = []
    for position, candidate in enumerate(candidates):
        where = f"candidates[{position}]"
        if not isinstance(candidate, Mapping):
            raise _malformed(f"The gateway sent {where} that is not an object", model)
        content = candidate.get("content")
        if content is not None and not isinstance(content, Mapping):
            raise _malformed(f"The gateway sent {where}.content that is not an object", model)
        reading = _Reading().read((content or {}).get("parts"), where, model, new_id)
        text = "".join(reading.text)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not reading.calls else None}
        message.update(reading.fields())
        finish = _finish_reason(candidate.get("finishReason"), bool(reading.calls), model)
        if finish is None:
            finish = "tool_calls" if reading.calls else "stop"
        index = candidate.get("index")
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": message,
                "finish_reason": finish,
                "logprobs": None,
            }
        )
    return {
        "id": body.get("responseId") or f"chatcmpl-gemini-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("modelVersion") or model,
        "choices": choices,
        "usage": usage_from_metadata(body.get("usageMetadata"), body.get("usage")),
    }


def completion_as_chunks(completion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A whole OpenAI-format completion as the chunks a stream of it would have carried (one content
    chunk, then a usage chunk when there is usage): how a stream answered in one piece is delivered.

    >>> chunks = completion_as_chunks({"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
    ...     "message": {"role": "assistant", "content": "Hi"}}], "usage": {"total_tokens": 3}})
    >>> [c["choices"] for c in chunks]
    [[{'index': 0, 'delta': {'role': 'assistant', 'content': 'Hi'}, 'finish_reason': 'stop'}], []]
    """
    head = {k: completion.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    choices = []
    for choice in completion["choices"]:
        message = choice.get("message") or {}
        delta = {k: v for k, v in message.items() if v is not None}
        if delta.get("tool_calls"):
            delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(delta["tool_calls"])]
        choices.append({"index": choice.get("index", 0), "delta": delta, "finish_reason": choice.get("finish_reason")})
    chunks = [{**head, "object": "chat.completion.chunk", "choices": choices}]
    if completion.get("usage") is not None:
        chunks.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]})
    return chunks


# -- streams ----------------------------------------------------------------------------------


class NativeStreamState:
    """What one ``:streamGenerateContent`` stream has said so far (per candidate), for
    :func:`chunks_from_stream_event`. ``include_usage=False`` leaves the usage chunk out."""

    __slots__ = (
        "created",
        "finished",
        "id",
        "include_usage",
        "model",
        "new_id",
        "started",
        "tools",
        "usage",
        "usage_sent",
    )

    def __init__(self, model: str, *, include_usage: bool = True) -> None:
        self.model = model
        self.id = f"chatcmpl-gemini-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.include_usage = include_usage
        self.new_id = _ids()
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.tools: dict[int, int] = {}  # candidate index -> tool calls so far
        self.usage: dict[str, Any] | None = None
        self.usage_sent = False

    @property
    def done(self) -> bool:
        """Every candidate that spoke has finished."""
        return bool(self.started) and self.started <= self.finished

    def _head(self) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}

    def usage_chunk(self) -> list[dict[str, Any]]:
        if self.usage is None or self.usage_sent or not self.include_usage:
            return []
        self.usage_sent = True
        return [{**self._head(), "choices": [], "usage": self.usage}]


def chunks_from_stream_event(event: Mapping[str, Any], model: str, state: NativeStreamState) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` dicts for one SSE event of ``:streamGenerateContent?alt=sse``.

    Text arrives as ``content`` deltas, thoughts as ``reasoning_content``, each ``functionCall`` as
    one whole tool call (with its ``index``); the event that carries a ``finishReason`` carries
    ``finish_reason``; the usage chunk follows the event that finishes the answer (Gemini repeats a
    running ``usageMetadata`` on every event: only the final one is reported, once).

    >>> state = NativeStreamState("gemini-2.0-flash")
    >>> events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]},
    ...           {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
    ...            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}]
    >>> chunks = [c for e in events for c in chunks_from_stream_event(e, "gemini-2.0-flash", state)]
    >>> [c["choices"][0]["delta"].get("content") for c in chunks[:2]], chunks[1]["choices"][0]["finish_reason"]
    (['Hel', 'lo'], 'stop')
    >>> chunks[2]["usage"]["total_tokens"]
    5
    """
    if not isinstance(event, Mapping):
        raise _malformed(f"The gateway sent a stream event that is a {type(event).__name__}", model)
    if event.get("error") and not event.get("candidates"):
        raise native_error(200, event, model=model, in_stream=True)
    if event.get("modelVersion"):
        state.model = event["modelVersion"]
    candidates = event.get("candidates")
    feedback = event.get("promptFeedback")
    if not candidates and isinstance(feedback, Mapping) and feedback.get("blockReason"):
        raise _blocked(feedback, model)
    if candidates is not None and not isinstance(candidates, list):
        raise _malformed("The gateway sent a stream event whose candidates are not a list", model)
    usage = usage_from_metadata(event.get("usageMetadata"), event.get("usage"))
    if usage is not None:
        state.usage = usage
    choices = []
    for position, candidate in enumerate(candidates or ()):
        where = f"candidates[{position}]"
        if not isinstance(candidate, Mapping):
            raise _malformed(f"The gateway sent {where} that is not an object", model)
        index = candidate.get("index") if isinstance(candidate.get("index"), int) else position
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        reading = _Reading().read(parts, where, model, state.new_id)
        delta: dict[str, Any] = {}
        if index not in state.started:
            state.started.add(index)
            delta["role"] = "assistant"
        text = "".join(reading.text)
        if text:
            delta["content"] = text
        fields = reading.fields()
        if reading.calls:
            first = state.tools.get(index, 0)
            state.tools[index] = first + len(reading.calls)
            fields["tool_calls"] = [{**call, "index": first + k} for k, call in enumerate(reading.calls)]
        delta.update(fields)
        finish = _finish_reason(candidate.get("finishReason"), bool(state.tools.get(index)), model)
        if finish is not None:
            state.finished.add(index)
        if delta or finish is not None:
            choices.append({"index": index, "delta": delta, "finish_reason": finish})
    chunks = [{**state._head(), "choices": choices}] if choices else []
    if state.done:
        chunks += state.usage_chunk()
    return chunks


def end_of_stream(state: NativeStreamState) -> list[dict[str, Any]]:
    """At the end of the body: the usage chunk, if the events reported usage that was not sent yet.

    >>> state = NativeStreamState("gemini-2.0-flash")
    >>> _ = chunks_from_stream_event({"usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1}}, "m", state)
    >>> end_of_stream(state)[0]["usage"]["prompt_tokens"]
    1
    """
    return state.usage_chunk()


# -- errors -----------------------------------------------------------------------------------

_CONTEXT_HINTS = ("exceeds the maximum number of tokens", "input token count", "context length")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _retry_delay(details: Any) -> float | None:
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and detail.get("@type") == _RETRY_INFO:
            match = _DURATION.match(str(detail.get("retryDelay") or ""))
            if match:
                return float(match.group(1))
    return None


def native_error(
    status: int,
    body: Any,
    *,
    model: str | None = None,
    secrets: Sequence[str | None] = (),
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    in_stream: bool = False,
    partial_text: str = "",
) -> E.AIsaAPIError:
    """The typed error for a Google-format error body (``{"error": {"code", "message", "status"}}``),
    by the package's one status → class mapping (:func:`~aisa_integrations.core.errors.error_from_body`).

    ``status`` is the HTTP status (a 200 for an error in the body: then the body's ``code`` says).
    Gemini's "input token count exceeds the maximum" is a :class:`ContextLengthExceededError`;
    a ``RetryInfo`` detail gives ``retry_after`` when no header does.

    >>> err = native_error(429, {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
    ...     "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}})
    >>> type(err).__name__, err.code, err.retry_after
    ('RateLimitError', 'RESOURCE_EXHAUSTED', 7.0)
    """
    inner = body.get("error", body) if isinstance(body, Mapping) else body
    if isinstance(inner, str):
        inner = {"message": inner}
    if not isinstance(inner, Mapping):
        inner = {}
    stated = inner.get("code")
    if isinstance(stated, str) and stated.isdigit():
        stated = int(stated)
    http = status if isinstance(status, int) and status >= 400 else None
    if http is None and isinstance(stated, int) and 400 <= stated <= 599:
        http = stated
    message = str(inner.get("message") or "")
    code = inner.get("status") if isinstance(inner.get("status"), str) else None
    if code is None and isinstance(stated, str):
        code = stated
    if (http in (None, 400)) and any(hint in message.lower() for hint in _CONTEXT_HINTS):
        code = "context_length_exceeded"
    normalized: dict[str, Any] = {"message": message}
    if code is not None:
        normalized["code"] = code
    if http is not None:
        normalized["status"] = http
    err = E.error_from_body(
        {"error": normalized},
        status=http,
        model=model,
        secrets=secrets,
        request_id=request_id,
        headers=headers,
        in_stream=in_stream,
        partial_text=partial_text,
    )
    if isinstance(err, E.RateLimitError | E.ServerError) and err.retry_after is None:
        err.retry_after = _retry_delay(inner.get("details"))
    return err
