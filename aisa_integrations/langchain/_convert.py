"""LangChain messages and tools <-> OpenAI-format dicts.

Translation only. Messages go through langchain-core's own ``convert_to_openai_messages`` (every
block format LangChain knows: OpenAI, v1 standard blocks, Anthropic, Bedrock, Vertex), plus what
AIsa needs on top: reasoning sent back as ``reasoning_content``, malformed tool calls sent back as
they were, provider fields kept across turns, an error status said in a tool result. Whether the
result is a valid request (parts, base64, tool names, parameters) is decided by the core
(:mod:`aisa_integrations.core.wire`), which names ``messages[i].content[j]`` when it is not.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from ..core import provider_fields
from ..core.errors import InvalidRequestError
from ..core.usage import Usage, parse_usage
from ..core.wire import check_tools

__all__ = [
    "PROVIDER_FIELDS",
    "StreamState",
    "chunk_to_generation",
    "completion_to_result",
    "format_tools",
    "messages_to_openai",
    "usage_to_metadata",
]

#: ``additional_kwargs`` key holding fields the gateway returned beyond the OpenAI schema.
PROVIDER_FIELDS = "provider_fields"
# Assistant content blocks that describe what was said in structured form (calls, thinking): they
# travel in tool_calls / reasoning_content, never as content parts.
_AI_STRUCTURAL = frozenset({"tool_call", "tool_call_chunk", "invalid_tool_call", "tool_use", "function_call"})
_REASONING = frozenset({"reasoning", "thinking"})
_AUDIO_FORMAT = {"mpeg": "mp3", "x-wav": "wav", "wave": "wav", "vnd.wave": "wav"}


# -- input -----------------------------------------------------------------------------------


def _prefill_filenames(content: Any) -> Any:
    """File blocks without a name get one (instead of langchain-core's warning and placeholder)."""
    if not isinstance(content, list) or not any(isinstance(b, Mapping) and b.get("type") == "file" for b in content):
        return content
    out = []
    for block in content:
        named = isinstance(block, Mapping) and (block.get("filename") or (block.get("extras") or {}).get("filename"))
        if isinstance(block, Mapping) and block.get("type") == "file" and "file" not in block and not named:
            name = "document.pdf" if block.get("mime_type") == "application/pdf" else "file"
            block = {**block, "filename": name}
        out.append(block)
    return out


def _with_cache_control(original: Sequence[Any], parts: list[Any]) -> list[Any]:
    """langchain-core drops Anthropic-style cache_control hints; put them back on their parts."""
    marks = [b.get("cache_control") if isinstance(b, Mapping) else None for b in original]
    if not any(marks) or len(parts) != len(original):
        return parts
    return [{**p, "cache_control": m} if m and isinstance(p, Mapping) else p for p, m in zip(parts, marks, strict=True)]


def _failing_block(content: Any) -> int | None:
    """Which block of a message langchain-core could not convert (looked for only after a failure)."""
    if not isinstance(content, list):
        return None
    for j, block in enumerate(content):
        try:
            convert_to_openai_messages([HumanMessage(content=[block])], text_format="block")
        except (ValueError, KeyError, TypeError):
            return j
    return None


def _convert_one(message: BaseMessage, index: int) -> list[dict[str, Any]]:
    content = _prefill_filenames(message.content)
    if content is not message.content:
        message = message.model_copy(update={"content": content})
    try:
        converted = convert_to_openai_messages([message], text_format="block")
    except (ValueError, KeyError) as exc:
        j = _failing_block(message.content)
        where = f"messages[{index}]" + (f".content[{j}]" if j is not None else "")
        detail = str(exc).split("Full content block")[0].strip()
        raise InvalidRequestError(
            f"{where}: this block cannot be sent through AIsa's chat completions API: {detail} Supported: text, "
            "image (URL or base64), image_url, file (base64 PDF), audio (base64 WAV or MP3), input_audio."
        ) from None
    if isinstance(message.content, list) and converted and isinstance(converted[0].get("content"), list):
        converted[0]["content"] = _with_cache_control(message.content, converted[0]["content"])
    return converted


def _ai_extras(message: AIMessage, out: dict[str, Any], index: int) -> None:
    content = out.get("content")
    reasoning: list[str] = []
    if isinstance(content, list):
        kept = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in _REASONING:
                text = part.get("reasoning") or part.get("thinking") or part.get("text") or ""
                if text:
                    reasoning.append(str(text))
            elif kind not in _AI_STRUCTURAL:
                kept.append(part)
        out["content"] = kept
    calls = list(out.get("tool_calls") or ())
    for call in calls:
        if not call.get("id"):
            call["id"] = f"call_{uuid.uuid4().hex[:24]}"
    # Malformed calls the model made are sent back as they were, so it can see and fix them.
    for bad in message.invalid_tool_calls:
        if bad.get("name"):
            calls.append(
                {
                    "id": bad.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": bad["name"], "arguments": bad.get("args") or ""},
                }
            )
    if calls:
        out["tool_calls"] = calls
        if not out.get("content"):
            out["content"] = None
    kwargs = message.additional_kwargs
    if not calls and kwargs.get("function_call"):
        out["function_call"] = dict(kwargs["function_call"])
        if not out.get("content"):
            out["content"] = None
    stored = kwargs.get("reasoning_content")
    if stored:
        out["reasoning_content"] = stored
    elif reasoning:
        out["reasoning_content"] = "".join(reasoning)
    provider_fields.attach(out, kwargs.get(PROVIDER_FIELDS))


def _audio_formats(parts: list[Any]) -> None:
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "input_audio" and isinstance(part.get("input_audio"), dict):
            fmt = part["input_audio"].get("format")
            if fmt in _AUDIO_FORMAT:
                part["input_audio"] = {**part["input_audio"], "format": _AUDIO_FORMAT[fmt]}


def _file_names(parts: list[Any]) -> None:
    for part in parts:
        file = part.get("file") if isinstance(part, dict) and part.get("type") == "file" else None
        if isinstance(file, dict) and file.get("filename") == "LC_AUTOGENERATED":
            part["file"] = {**file, "filename": "file"}


def messages_to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI-format message dicts (checked by the core before sending)."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        # The common case, a plain text turn, without the general converter.
        if isinstance(message.content, str) and type(message) in (HumanMessage, SystemMessage):
            entry: dict[str, Any] = {"role": "user" if type(message) is HumanMessage else "system"}
            if message.name:
                entry["name"] = message.name
            entry["content"] = message.content
            out.append(entry)
            continue
        try:
            converted = _convert_one(message, i)
        except TypeError as exc:  # tool call arguments that are not JSON (a date, a set, ...)
            raise InvalidRequestError(f"messages[{i}]: a tool call's arguments cannot be sent as JSON: {exc}") from None
        for entry in converted:
            content = entry.get("content")
            if isinstance(content, list):
                _audio_formats(content)
                _file_names(content)
            if isinstance(message, AIMessage) and entry.get("role") == "assistant":
                _ai_extras(message, entry, i)
            elif isinstance(message, ToolMessage) and message.status == "error":
                _say_error(entry)
        out.extend(converted)
    return out


def _say_error(entry: dict[str, Any]) -> None:
    # The chat format has no status field; say it in the content so the model knows.
    content = entry.get("content")
    if isinstance(content, list) and content and content[0].get("type") == "text":
        text = content[0]["text"]
        if not text.lower().startswith("error"):
            content[0] = {**content[0], "text": f"Error: {text}"}
    elif isinstance(content, str) and not content.lower().startswith("error"):
        entry["content"] = f"Error: {content}"


# -- tools -----------------------------------------------------------------------------------


def format_tools(tools: Sequence[Any], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Tools in any LangChain form (BaseTool, function, pydantic, TypedDict, dict) as OpenAI tools,
    checked by the core (names, schemas) before anything is sent."""
    formatted = []
    for k, tool in enumerate(tools):
        if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
            formatted.append(dict(tool))
            continue
        try:
            formatted.append(convert_to_openai_tool(tool, strict=strict))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidRequestError(f"tools[{k}] cannot be converted to an OpenAI tool: {exc}") from None
    return check_tools(formatted)


# -- output ----------------------------------------------------------------------------------


def usage_to_metadata(usage: Usage) -> UsageMetadata:
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    metadata = UsageMetadata(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=usage.total_tokens if usage.total_tokens is not None else prompt + completion,
    )
    if usage.cached_tokens is not None or usage.audio_input_tokens is not None:
        details = InputTokenDetails()
        if usage.cached_tokens is not None:
            details["cache_read"] = usage.cached_tokens
        if usage.audio_input_tokens is not None:
            details["audio"] = usage.audio_input_tokens
        metadata["input_token_details"] = details
    if usage.reasoning_tokens is not None or usage.audio_output_tokens is not None:
        out_details = OutputTokenDetails()
        if usage.reasoning_tokens is not None:
            out_details["reasoning"] = usage.reasoning_tokens
        if usage.audio_output_tokens is not None:
            out_details["audio"] = usage.audio_output_tokens
        metadata["output_token_details"] = out_details
    return metadata


def _billing(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    billing: dict[str, Any] = {}
    if usage.cost is not None:
        billing["cost"] = usage.cost
    if usage.credits_remaining is not None:
        billing["credits_remaining"] = usage.credits_remaining
    return billing


def _parse_calls(raw_calls: Sequence[Mapping[str, Any]]) -> tuple[list, list]:
    tool_calls, invalid = [], []
    for raw in raw_calls:
        try:
            parsed = parse_tool_call(dict(raw), return_id=True)
        except Exception as exc:  # OutputParserException and friends: keep the call, mark it invalid
            invalid.append(make_invalid_tool_call(dict(raw), str(exc)))
            continue
        if parsed is not None:
            tool_calls.append(parsed)
    return tool_calls, invalid


def _content(value: Any) -> str | list[Any]:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return [dict(p) if isinstance(p, Mapping) else p for p in value]


def completion_to_result(completion: Mapping[str, Any], *, legacy_functions: bool = False) -> ChatResult:
    """A completion dict as a LangChain ``ChatResult``."""
    usage = parse_usage(completion.get("usage"))
    usage_metadata = usage_to_metadata(usage) if usage else None
    token_usage = usage.to_dict() if usage else {}
    billing = _billing(usage)
    model = completion.get("model")
    generations = []
    for choice in completion["choices"]:
        message = choice.get("message") or {}
        additional: dict[str, Any] = {}
        raw_calls = [c for c in message.get("tool_calls") or () if isinstance(c.get("function"), Mapping)]
        if message.get("function_call"):
            function_call = dict(message["function_call"])
            additional["function_call"] = function_call
            raw_calls = [*raw_calls, {"id": f"call_{uuid.uuid4().hex[:24]}", "function": function_call}]
        tool_calls, invalid = _parse_calls(raw_calls)
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning:
            additional["reasoning_content"] = reasoning
        if message.get("refusal"):
            additional["refusal"] = message["refusal"]
        stored = provider_fields.extract(message, model=model)
        if stored:
            additional[PROVIDER_FIELDS] = stored
        response_metadata: dict[str, Any] = {
            "model_name": model,
            "model_provider": "aisa",
            "finish_reason": choice.get("finish_reason"),
            "id": completion.get("id"),
            "system_fingerprint": completion.get("system_fingerprint"),
            "request_id": completion.get("_request_id"),
            **billing,
        }
        if usage is not None:
            response_metadata["token_usage"] = dict(token_usage)
        info: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
        if choice.get("logprobs"):
            info["logprobs"] = response_metadata["logprobs"] = choice["logprobs"]
        ai = AIMessage(
            content=_content(message.get("content")),
            additional_kwargs=additional,
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            usage_metadata=usage_metadata,
            response_metadata=response_metadata,
            id=completion.get("id"),
        )
        generations.append(ChatGeneration(message=ai, generation_info=info))
    llm_output = {
        "model_name": model,
        "system_fingerprint": completion.get("system_fingerprint"),
        "id": completion.get("id"),
        "token_usage": token_usage,
        **billing,
    }
    return ChatResult(generations=generations, llm_output=llm_output)


class StreamState:
    """What a stream has already said: each tool call's id and name go on exactly one chunk, and so do
    usage and the provider fields' family."""

    __slots__ = ("family_sent", "legacy_id", "named", "usage_sent")

    def __init__(self) -> None:
        self.named: set[int] = set()
        self.usage_sent = False
        self.legacy_id: str | None = None
        self.family_sent = False


def _chunk_provider_fields(delta: Mapping[str, Any], model: str | None, state: StreamState) -> dict[str, Any] | None:
    calls = {}
    for piece in delta.get("tool_calls") or ():
        extra = {k: v for k, v in piece.items() if k not in ("index", "id", "type", "function") and v is not None}
        if extra and piece.get("id"):
            calls[piece["id"]] = extra
    fields = {
        k: v
        for k, v in delta.items()
        if k not in ("role", "content", "tool_calls", "function_call", "reasoning_content", "reasoning", "refusal")
        and v is not None
    }
    if not calls and not fields:
        return None
    stored = provider_fields.extract({**fields, "tool_calls": [{"id": i, **e} for i, e in calls.items()]}, model=model)
    if stored is None:
        return None
    if state.family_sent:
        stored.pop("family", None)  # langchain-core joins strings across chunks: say it once
    state.family_sent = True
    return stored


def chunk_to_generation(
    chunk: Mapping[str, Any], state: StreamState, *, include_usage: bool = True
) -> ChatGenerationChunk | None:
    """One chunk dict as a LangChain generation chunk (None if it says nothing).

    langchain-core merges chunks by concatenating strings and refuses to add floats, so every string
    and float field appears on exactly one chunk: model name, id and finish reason on the finishing
    chunk; usage, cost and credits on the usage chunk.
    """
    raw_usage = chunk.get("usage")
    usage = parse_usage(raw_usage) if raw_usage is not None and include_usage and not state.usage_sent else None
    choices = chunk.get("choices")
    if not choices:
        if usage is None:
            return None
        state.usage_sent = True
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_to_metadata(usage),
            response_metadata={"model_provider": "aisa", **_billing(usage)},
            id=chunk.get("id"),
        )
        return ChatGenerationChunk(message=message)

    choice = choices[0]
    delta = choice.get("delta") or {}
    additional: dict[str, Any] = {}
    tool_chunks = []
    for piece in delta.get("tool_calls") or ():
        index = piece.get("index", 0)
        first = index not in state.named
        state.named.add(index)
        fn = piece.get("function") or {}
        tool_chunks.append(
            tool_call_chunk(
                name=fn.get("name") if first else None,
                args=fn.get("arguments"),
                id=piece.get("id") if first else None,
                index=index,
            )
        )
    fc = delta.get("function_call")
    if fc:
        first = state.legacy_id is None
        if first:
            state.legacy_id = f"call_{uuid.uuid4().hex[:24]}"
        tool_chunks.append(
            tool_call_chunk(
                name=fc.get("name") if first else None,
                args=fc.get("arguments"),
                id=state.legacy_id if first else None,
                index=0,
            )
        )
        additional["function_call"] = {
            k: v for k, v in (("name", fc.get("name") if first else None), ("arguments", fc.get("arguments"))) if v
        }
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning:
        additional["reasoning_content"] = reasoning
    if len(delta) > 1:
        stored = _chunk_provider_fields(delta, chunk.get("model"), state)
        if stored:
            additional[PROVIDER_FIELDS] = stored
    # Metadata only where it says something: langchain-core keeps every chunk of a stream until it ends.
    response_metadata: dict[str, Any] = {}
    info = None
    finish = choice.get("finish_reason")
    if finish is not None:
        response_metadata.update(
            model_provider="aisa",
            model_name=chunk.get("model"),
            finish_reason=finish,
            system_fingerprint=chunk.get("system_fingerprint"),
        )
        info = {"finish_reason": finish, "model_name": chunk.get("model")}
    usage_metadata = None
    if usage is not None:  # some providers put usage on the last choice chunk
        state.usage_sent = True
        usage_metadata = usage_to_metadata(usage)
        response_metadata.update(_billing(usage))
    content = delta.get("content") or ""
    message = AIMessageChunk(
        content=content,
        additional_kwargs=additional,
        tool_call_chunks=tool_chunks,
        usage_metadata=usage_metadata,
        response_metadata=response_metadata,
        id=chunk.get("id"),
    )
    return ChatGenerationChunk(message=message, generation_info=info)
