"""What the simulated gateway refuses, as the real one does: wrong types, out-of-range values, bad parts.

Written from the API's own rules, independently of the client's validation (the client must refuse
the same things before sending; the simulator proves the ones it does not would have failed).
Each problem is ``(status, code, message)``, answered with the documented error body. Gemini's native
``generateContent`` body is checked by Google's rules (:func:`validate_generate_content`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..core.catalog import ModelCatalog

__all__ = ["GOOGLE_STATUS", "MAX_N", "Problem", "validate_chat", "validate_generate_content"]

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


# -- Gemini's native generateContent format ----------------------------------------------------
# Google's rules, checked independently of the client's translation; a problem is answered in
# Google's error format, so its ``code`` here is the status string (INVALID_ARGUMENT, NOT_FOUND).

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_NATIVE_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
}
# Written out here, not imported from core/gemini_native.py: the simulator stands for the gateway, so it
# checks the client's translation against its own copy of Google's schema instead of agreeing with it.
_GENERATION_FIELDS = {
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
_PART_DATA = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
_PART_EXTRAS = {"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
_SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
_TOOL_KINDS = {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"}
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
_MODES = {"AUTO", "ANY", "NONE", "VALIDATED"}
_MIME_TYPES = {"text/plain", "application/json", "text/x.enum"}
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _invalid(message: str) -> Problem:
    return 400, "INVALID_ARGUMENT", message


def _unknown(name: str, where: str) -> Problem:
    return _invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.")


def _check_schema(schema: Any, where: str) -> Problem | None:
    if not isinstance(schema, Mapping):
        return _invalid(f"{where} must be a Schema object.")
    for key, value in schema.items():
        if key not in _SCHEMA_FIELDS:
            return _unknown(key, where)
        if key == "properties":
            if not isinstance(value, Mapping):
                return _invalid(f"{where}.properties must be an object.")
            for name, sub in value.items():
                if problem := _check_schema(sub, f"{where}.properties[{name}]"):
                    return problem
        elif key == "items" and (problem := _check_schema(value, f"{where}.items")):
            return problem
        elif key == "anyOf":
            for k, sub in enumerate(value if isinstance(value, list) else [None]):
                if problem := _check_schema(sub, f"{where}.any_of[{k}]"):
                    return problem
    if str(schema.get("type", "")).upper() == "OBJECT" and "properties" in schema and not schema["properties"]:
        return _invalid(f"{where}.properties: should be non-empty for OBJECT type")
    return None


def _check_part_native(part: Any, where: str, vision: bool | None) -> Problem | None:
    if not isinstance(part, Mapping):
        return _invalid(f"{where} must be a Part object.")
    for key in part:
        if key not in _PART_DATA and key not in _PART_EXTRAS:
            return _unknown(key, where)
    data = [k for k in part if k in _PART_DATA]
    if len(data) != 1:
        return _invalid(f"{where}: a part holds exactly one of {sorted(_PART_DATA)} (got {data or 'none'}).")
    kind, value = data[0], part[data[0]]
    if kind == "text":
        if not isinstance(value, str):
            return _invalid(f"{where}.text must be a string.")
        if not value and not part.get("thoughtSignature"):
            return _invalid(
                "Unable to submit request because it has an empty text parameter. Add a value to the parameter "
                "and try again."
            )
    elif kind in ("inlineData", "fileData"):
        if not isinstance(value, Mapping) or not isinstance(value.get("mimeType"), str) or not value["mimeType"]:
            return _invalid(f"{where}.{kind}.mimeType is required.")
        if kind == "inlineData":
            raw = value.get("data")
            if not isinstance(raw, str) or not raw or not _BASE64.match(raw):
                return _invalid(f"{where}.inlineData.data must be base64-encoded bytes.")
        elif not isinstance(value.get("fileUri"), str) or not value["fileUri"]:
            return _invalid(f"{where}.fileData.fileUri is required.")
        if value["mimeType"].startswith("image/") and vision is False:
            return _invalid("This model does not accept image input.")
    elif kind == "functionCall":
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            return _invalid(f"{where}.functionCall.name is required.")
        if value.get("args") is not None and not isinstance(value["args"], Mapping):
            return _invalid(f"{where}.functionCall.args must be an object.")
    elif kind == "functionResponse":
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            return _invalid(f"{where}.functionResponse.name is required.")
        if not isinstance(value.get("response"), Mapping):
            return _invalid(f"{where}.functionResponse.response must be an object.")
    return None


def _check_contents(contents: Any, vision: bool | None) -> Problem | None:
    if not isinstance(contents, list) or not contents:
        return _invalid("* GenerateContentRequest.contents: contents is not specified")
    previous: Mapping[str, Any] | None = None
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, Mapping):
            return _invalid(f"{where} must be a Content object.")
        for key in content:
            if key not in ("role", "parts"):
                return _unknown(key, where)
        role = content.get("role")
        if role is not None and role not in ("user", "model"):
            return _invalid(f"Please use a valid role: user, model. ({where}.role={role!r})")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return _invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            if problem := _check_part_native(part, f"{where}.parts[{j}]", vision):
                return problem
        responses = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
        if responses:
            calls = [p["functionCall"]["name"] for p in (previous or {}).get("parts") or () if "functionCall" in p]
            if role == "model" or not calls or (previous or {}).get("role") != "model":
                return _invalid(
                    "Please ensure that function response turn comes immediately after a function call turn."
                )
            if len(responses) != len(calls):
                return _invalid(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )
            if sorted(responses) != sorted(calls):
                return _invalid(f"{where}: function responses {responses} do not answer the calls {calls}.")
        previous = content
    return None


def _check_native_tools(body: Mapping[str, Any], info: Any, model: str) -> Problem | None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None and not isinstance(tools, list):
        return _invalid("tools must be an array of Tool objects.")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, Mapping):
            return _invalid(f"tools[{i}] must be a Tool object.")
        for key in tool:
            if key not in _TOOL_KINDS:
                return _unknown(key, f"tools[{i}]")
        for k, declaration in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].function_declarations[{k}]"
            if not isinstance(declaration, Mapping):
                return _invalid(f"{where} must be a FunctionDeclaration object.")
            for key in declaration:
                if key not in ("name", "description", "parameters", "parametersJsonSchema", "response", "behavior"):
                    return _unknown(key, where)
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                return _invalid(f"* GenerateContentRequest.{where}.name: Invalid function name.")
            names.add(name)
            if "parameters" in declaration and (
                problem := _check_schema(declaration["parameters"], f"{where}.parameters")
            ):
                return problem
    if names and info.tools is False:
        return _invalid(f"Function calling is not enabled for models/{model}")
    config = body.get("toolConfig")
    if config is not None:
        calling = config.get("functionCallingConfig") if isinstance(config, Mapping) else None
        if not isinstance(calling, Mapping):
            return _invalid("toolConfig.functionCallingConfig must be an object.")
        mode = calling.get("mode", "AUTO")
        if mode not in _MODES:
            return _invalid(f"toolConfig.functionCallingConfig.mode: invalid value {mode!r}.")
        allowed = calling.get("allowedFunctionNames")
        if allowed is not None:
            if mode != "ANY":
                return _invalid("allowed_function_names should only be set when the Function Calling Mode is ANY.")
            if not isinstance(allowed, list) or any(n not in names for n in allowed):
                return _invalid(f"allowedFunctionNames {allowed!r} names functions that are not declared.")
    return None


def _check_generation(config: Any, info: Any) -> Problem | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        return _invalid("generationConfig must be an object.")
    for key in config:
        if key not in _GENERATION_FIELDS:
            return _unknown(key, "generation_config")
    for name, low, high in (("temperature", 0.0, 2.0), ("topP", 0.0, 1.0)):
        value = config.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
        ):
            return _invalid(f"generationConfig.{name} must be between {low:g} and {high:g}, got {value!r}.")
    for name in ("presencePenalty", "frequencyPenalty"):
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return _invalid(f"generationConfig.{name} must be a number, got {value!r}.")
    for name, low, high in (
        ("candidateCount", 1, min(8, MAX_N)),
        ("maxOutputTokens", 1, info.max_output_tokens),
        ("topK", 1, None),
        ("seed", None, None),
    ):
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            return _invalid(f"generationConfig.{name} must be an integer, got {value!r}.")
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            return _invalid(f"generationConfig.{name} must be {span}, got {value}.")
    stops = config.get("stopSequences")
    if stops is not None and (
        not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(s, str) for s in stops)
    ):
        return _invalid("generationConfig.stopSequences must be at most 5 strings.")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        return _invalid(f"generationConfig.responseMimeType: allowed mimetypes are {sorted(_MIME_TYPES)}.")
    if "responseSchema" in config:
        if mime not in ("application/json", "text/x.enum"):
            return _invalid("generationConfig.responseSchema needs responseMimeType application/json.")
        if problem := _check_schema(config["responseSchema"], "generation_config.response_schema"):
            return problem
    return None


def validate_generate_content(body: Any, model: str, info: Any, prompt_tokens: Any) -> Problem | None:
    """The first reason Gemini would refuse this ``generateContent`` body, or None (``prompt_tokens()``
    counts the prompt for the context-window check)."""
    if not isinstance(body, Mapping):
        return _invalid("The body must be a JSON object (a GenerateContentRequest).")
    for key in body:
        if key not in _NATIVE_FIELDS:
            return _unknown(key, "")
    system = body.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, Mapping) else None
        if not isinstance(parts, list) or not parts or not all(isinstance(p, Mapping) and "text" in p for p in parts):
            return _invalid("systemInstruction must be a Content with text parts.")
    settings = body.get("safetySettings")
    if settings is not None and not (
        isinstance(settings, list)
        and all(isinstance(s, Mapping) and isinstance(s.get("category"), str) for s in settings)
    ):
        return _invalid("safetySettings must be an array of {category, threshold}.")
    for check in (
        lambda: _check_contents(body.get("contents"), info.vision),
        lambda: _check_native_tools(body, info, model),
        lambda: _check_generation(body.get("generationConfig"), info),
    ):
        if problem := check():
            return problem
    tokens = prompt_tokens()
    if info.context_window and tokens > info.context_window:
        return _invalid(
            f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({info.context_window})."
        )
    return None
