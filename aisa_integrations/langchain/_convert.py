"""LangChain messages and tools <-> OpenAI chat-completions dicts, as AIsa speaks them.

Plain functions beside the chat model. Nothing is dropped silently: a content block that cannot be
expressed in the chat-completions format raises :class:`InvalidRequestError` naming the block,
before any request is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
    is_data_content_block,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.block_translators.openai import convert_to_openai_data_block
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from ..core.errors import InvalidRequestError
from ..core.usage import Usage, parse_usage

__all__ = [
    "StreamState",
    "chunk_to_generation",
    "completion_to_result",
    "format_tool_choice",
    "format_tools",
    "messages_to_openai",
    "usage_to_metadata",
]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Blocks describing what the assistant already said in structured form (tool calls, thinking):
# carried in tool_calls / reasoning_content, never as content parts.
_AI_STRUCTURAL_BLOCKS = {"tool_call", "tool_call_chunk", "invalid_tool_call", "tool_use", "function_call"}
_REASONING_BLOCKS = {"reasoning", "thinking"}
# mime type -> the chat-completions input_audio format (as langchain-core derives it: after the slash)
_AUDIO_FORMATS = {
    "audio/wav": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/mp3": "audio/mp3",
    "audio/mpeg": "audio/mp3",
}


# -- input -----------------------------------------------------------------------------------


def _check_base64(data: Any, where: str) -> None:
    if not isinstance(data, str) or not data:
        raise InvalidRequestError(f"{where}: base64 data is missing or not a string.")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"{where}: the base64 data is not valid base64. Encode the raw bytes with base64.b64encode(data).decode()."
        ) from None


def _check_image_url(url: Any, where: str) -> None:
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"{where}: image_url.url must be a non-empty string.")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if ";base64" not in header or not header[5:].startswith("image/"):
            raise InvalidRequestError(
                f"{where}: a data URL must look like data:image/png;base64,<data> (got {header[:40]!r})."
            )
        _check_base64(data, where)
    elif not url.startswith(("http://", "https://")):
        raise InvalidRequestError(f"{where}: image URLs must be http(s) or data:image/...;base64 URLs.")


def _block_to_part(block: Any, where: str) -> dict[str, Any]:
    """One LangChain content block as an OpenAI content part."""
    if isinstance(block, str):
        return {"type": "text", "text": block}
    if not isinstance(block, Mapping):
        raise InvalidRequestError(f"{where}: a content block must be a string or a dict, got {type(block).__name__}.")
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{where}: a 'text' block needs a string 'text'.")
        return {"type": "text", "text": text}
    if kind == "image_url":
        image_url = block.get("image_url")
        if isinstance(image_url, str):
            image_url = {"url": image_url}
        if not isinstance(image_url, Mapping):
            raise InvalidRequestError(f"{where}: an 'image_url' block needs image_url={{'url': ...}}.")
        _check_image_url(image_url.get("url"), where)
        return {"type": "image_url", "image_url": dict(image_url)}
    if kind in ("input_audio", "file") and isinstance(block.get(kind), Mapping):
        # Already in chat-completions form.
        inner = block[kind]
        if kind == "input_audio":
            _check_base64(inner.get("data"), where)
            if inner.get("format") not in ("wav", "mp3"):
                raise InvalidRequestError(
                    f"{where}: input_audio needs format 'wav' or 'mp3', got {inner.get('format')!r}."
                )
        elif "file_data" in inner and isinstance(inner["file_data"], str) and inner["file_data"].startswith("data:"):
            _check_base64(inner["file_data"].partition(",")[2], where)
        return {"type": kind, kind: dict(inner)}
    if isinstance(kind, str) and is_data_content_block(dict(block)):
        return _data_block_to_part(dict(block), kind, where)
    # Anthropic, Bedrock Converse and VertexAI image blocks: langchain-core knows those formats.
    try:
        converted = convert_to_openai_messages(
            HumanMessage(content=[dict(block)]), text_format="block", pass_through_unknown_blocks=False
        )
    except (ValueError, KeyError, TypeError):
        converted = None
    if converted and isinstance(converted.get("content"), list) and len(converted["content"]) == 1:
        part = converted["content"][0]
        if part.get("type") == "image_url":
            _check_image_url(part["image_url"].get("url"), where)
            return part
        if part.get("type") == "text" and kind in ("json", "guard_content"):
            return part
    raise InvalidRequestError(
        f"{where}: content block type {kind!r} cannot be sent through AIsa's chat completions API. "
        "Supported: text, image (url or base64), image_url, file (base64 PDF), audio (base64 wav/mp3), "
        "input_audio."
    )


def _data_block_to_part(block: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    if kind not in ("image", "file", "audio"):
        raise InvalidRequestError(
            f"{where}: {kind!r} blocks are not supported by AIsa's chat completions API "
            "(supported: image, file as base64, audio as base64)."
        )
    source_type = block.get("source_type")
    if "base64" in block or source_type == "base64":
        data = block.get("base64") if "base64" in block else block.get("data")
        _check_base64(data, where)
        mime = block.get("mime_type")
        if not mime:
            raise InvalidRequestError(f"{where}: a base64 {kind} block needs 'mime_type' (e.g. 'image/png').")
        if kind == "image" and not str(mime).startswith("image/"):
            raise InvalidRequestError(f"{where}: an image block's mime_type must be image/..., got {mime!r}.")
        if kind == "audio" and mime not in _AUDIO_FORMATS:
            raise InvalidRequestError(
                f"{where}: audio must be WAV or MP3 for chat completions (mime_type audio/wav or audio/mpeg), "
                f"got {mime!r}."
            )
        if kind == "audio":
            block = {**block, "mime_type": _AUDIO_FORMATS[mime]}
    elif "url" in block or source_type == "url":
        if kind != "image":
            raise InvalidRequestError(
                f"{where}: {kind} blocks by URL cannot be sent through chat completions; "
                "download the file and send it as base64."
            )
        _check_image_url(block.get("url"), where)
    elif kind == "image":
        raise InvalidRequestError(f"{where}: an image block needs 'url' or 'base64' (with 'mime_type').")
    if kind == "file" and not (block.get("filename") or (block.get("extras") or {}).get("filename")):
        # The chat-completions file part wants a name; use one instead of the library's warning placeholder.
        block = {**block, "filename": "document.pdf" if block.get("mime_type") == "application/pdf" else "file"}
    try:
        part = convert_to_openai_data_block(block, api="chat/completions")
    except (ValueError, KeyError) as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    if kind == "image" and (detail := block.get("detail") or (block.get("extras") or {}).get("detail")):
        part["image_url"]["detail"] = detail
    return part


def _content_to_openai(content: str | list[Any], where: str, *, role: str) -> tuple[Any, list[str]]:
    """(content for the wire, reasoning texts found in it)."""
    if isinstance(content, str):
        return content, []
    parts: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for j, block in enumerate(content):
        block_where = f"{where}.content[{j}]"
        if isinstance(block, Mapping):
            kind = block.get("type")
            if kind in _REASONING_BLOCKS and role == "assistant":
                text = block.get("reasoning") or block.get("thinking") or block.get("text") or ""
                if text:
                    reasoning.append(str(text))
                continue
            if kind in _AI_STRUCTURAL_BLOCKS and role == "assistant":
                continue  # represented by the message's tool_calls
        parts.append(_block_to_part(block, block_where))
    if all(p["type"] == "text" for p in parts):
        # Plain text travels as a string: every provider behind the gateway accepts that.
        return "".join(p["text"] for p in parts) if role != "user" else "\n".join(p["text"] for p in parts), reasoning
    return parts, reasoning


def _tool_call_to_openai(call: Mapping[str, Any], where: str) -> dict[str, Any]:
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where}: a tool call needs a name.")
    args = call.get("args")
    arguments = args if isinstance(args, str) else json.dumps(args if args is not None else {}, ensure_ascii=False)
    return {
        "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _ai_to_openai(message: AIMessage, where: str, *, legacy_functions: bool) -> dict[str, Any]:
    content, reasoning = _content_to_openai(message.content, where, role="assistant")
    out: dict[str, Any] = {"role": "assistant", "content": content}
    calls = [_tool_call_to_openai(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(message.tool_calls)]
    # Malformed calls the model made are sent back as they were, so the model can see and fix them.
    calls += [
        _tool_call_to_openai(c, f"{where}.invalid_tool_calls[{k}]")
        for k, c in enumerate(message.invalid_tool_calls)
        if c.get("name")
    ]
    if legacy_functions:
        function_call = message.additional_kwargs.get("function_call")
        if calls:
            if len(calls) > 1:
                raise InvalidRequestError(
                    f"{where}: the legacy 'functions' format carries one call per message, this one has "
                    f"{len(calls)}. Use tool_format='tools' for parallel calls."
                )
            function_call = calls[0]["function"]
        if function_call:
            out["function_call"] = dict(function_call)
    elif calls:
        out["tool_calls"] = calls
    if (calls or out.get("function_call")) and not content:
        out["content"] = None
    stored_reasoning = message.additional_kwargs.get("reasoning_content")
    if stored_reasoning:
        out["reasoning_content"] = stored_reasoning
    elif reasoning:
        out["reasoning_content"] = "".join(reasoning)
    if message.name:
        out["name"] = message.name
    return out


def _tool_names_by_id(messages: Sequence[BaseMessage]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id"):
                    names[call["id"]] = call["name"]
    return names


def messages_to_openai(messages: Sequence[BaseMessage], *, legacy_functions: bool = False) -> list[dict[str, Any]]:
    """LangChain messages as chat-completions ``messages``; raises before sending on bad input."""
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] | None = None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(message, HumanMessage):
            content, _ = _content_to_openai(message.content, where, role="user")
            entry: dict[str, Any] = {"role": "user", "content": content}
        elif isinstance(message, AIMessage):
            entry = _ai_to_openai(message, where, legacy_functions=legacy_functions)
        elif isinstance(message, SystemMessage):
            content, _ = _content_to_openai(message.content, where, role="system")
            entry = {"role": "system", "content": content}
        elif isinstance(message, ToolMessage):
            content, _ = _content_to_openai(message.content, where, role="tool")
            if message.status == "error" and isinstance(content, str) and not content.lower().startswith("error"):
                # The chat format has no status field; say it in the content so the model knows.
                content = f"Error: {content}"
            if legacy_functions:
                if tool_names is None:
                    tool_names = _tool_names_by_id(messages)
                name = message.name or tool_names.get(message.tool_call_id)
                if not name:
                    raise InvalidRequestError(f"{where}: a function result needs the function's name.")
                entry = {"role": "function", "name": name, "content": content}
            else:
                entry = {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
        elif isinstance(message, FunctionMessage):
            content, _ = _content_to_openai(message.content, where, role="function")
            entry = {"role": "function", "name": message.name, "content": content}
        elif isinstance(message, ChatMessage):
            role = message.role
            if role not in _OPENAI_ROLES:
                raise InvalidRequestError(
                    f"{where}: ChatMessage role {role!r} is not a chat-completions role "
                    f"(use one of {sorted(_OPENAI_ROLES)})."
                )
            content, _ = _content_to_openai(message.content, where, role=role)
            entry = {"role": role, "content": content}
        else:
            raise InvalidRequestError(f"{where}: unsupported message type {type(message).__name__}.")
        if message.name and "name" not in entry and entry["role"] in ("user", "system", "assistant"):
            entry["name"] = message.name
        out.append(entry)
    return out


# -- tools -----------------------------------------------------------------------------------


def format_tools(tools: Sequence[Any], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Tools in any LangChain form (BaseTool, function, pydantic, TypedDict, dict) as OpenAI tools."""
    formatted = []
    for k, tool in enumerate(tools):
        try:
            spec = convert_to_openai_tool(tool, strict=strict)
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidRequestError(f"tools[{k}] cannot be converted to an OpenAI tool: {exc}") from None
        if spec.get("type") == "function":
            name = spec.get("function", {}).get("name", "")
            if not TOOL_NAME.match(str(name)):
                raise InvalidRequestError(
                    f"tools[{k}]: tool name {name!r} is invalid; names must match ^[a-zA-Z0-9_-]{{1,64}}$ "
                    "(letters, digits, _ and -; at most 64). Rename the tool."
                )
        formatted.append(spec)
    return formatted


def format_tool_choice(tool_choice: Any, tools: Sequence[Mapping[str, Any]]) -> Any:
    """LangChain's tool_choice vocabulary in chat-completions form."""
    names = [t["function"]["name"] for t in tools if t.get("type") == "function"]
    if tool_choice is None or tool_choice in ("auto", "none", "required"):
        return tool_choice
    if tool_choice == "any":
        return "required"
    if tool_choice is True:
        return {"type": "function", "function": {"name": names[0]}} if len(names) == 1 else "required"
    if tool_choice is False:
        return "none"
    if isinstance(tool_choice, str):
        if tool_choice not in names:
            raise InvalidRequestError(f"tool_choice={tool_choice!r} names no bound tool (bound: {names}).")
        return {"type": "function", "function": {"name": tool_choice}}
    if isinstance(tool_choice, Mapping):
        return dict(tool_choice)
    raise InvalidRequestError(
        f"tool_choice={tool_choice!r} is not understood; use 'auto', 'none', 'any', 'required', True or a tool name."
    )


def to_legacy_functions(request: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``tools``/``tool_choice`` into the legacy ``functions``/``function_call`` fields."""
    tools = request.pop("tools", None)
    choice = request.pop("tool_choice", None)
    request.pop("parallel_tool_calls", None)
    if tools:
        request["functions"] = [t["function"] for t in tools if t.get("type") == "function"]
    if choice is not None:
        if isinstance(choice, Mapping):
            request["function_call"] = {"name": choice["function"]["name"]}
        elif choice == "required":
            names = [f["name"] for f in request.get("functions", [])]
            if len(names) != 1:
                raise InvalidRequestError(
                    "The legacy 'functions' format cannot require 'any' of several functions; "
                    "name one, or use tool_format='tools'."
                )
            request["function_call"] = {"name": names[0]}
        else:
            request["function_call"] = choice
    return request


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


def _extra(obj: Any, name: str) -> Any:
    extra = getattr(obj, "model_extra", None)
    return extra.get(name) if extra else None


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


def completion_to_result(completion: Any, *, legacy_functions: bool = False) -> ChatResult:
    """An openai ``ChatCompletion`` as a LangChain ``ChatResult``."""
    usage = parse_usage(completion.usage)
    usage_metadata = usage_to_metadata(usage) if usage else None
    token_usage = usage.to_dict() if usage else {}
    billing = _billing(usage)
    generations = []
    for choice in completion.choices:
        message = choice.message
        additional: dict[str, Any] = {}
        raw_calls = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls or []
            if getattr(c, "function", None) is not None
        ]
        if message.function_call is not None:
            function_call = {"name": message.function_call.name, "arguments": message.function_call.arguments}
            additional["function_call"] = function_call
            raw_calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "function": function_call})
        tool_calls, invalid = _parse_calls(raw_calls)
        reasoning = _extra(message, "reasoning_content") or _extra(message, "reasoning")
        if reasoning:
            additional["reasoning_content"] = reasoning
        if message.refusal:
            additional["refusal"] = message.refusal
        response_metadata = {
            "model_name": completion.model,
            "model_provider": "aisa",
            "finish_reason": choice.finish_reason,
            "id": completion.id,
            "system_fingerprint": completion.system_fingerprint,
            "request_id": getattr(completion, "_request_id", None),
            **billing,
        }
        if usage is not None:
            response_metadata["token_usage"] = dict(token_usage)
        ai = AIMessage(
            content=message.content or "",
            additional_kwargs=additional,
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            usage_metadata=usage_metadata,
            response_metadata=response_metadata,
            id=completion.id,
        )
        info = {"finish_reason": choice.finish_reason}
        if choice.logprobs is not None:
            info["logprobs"] = choice.logprobs.model_dump()
        generations.append(ChatGeneration(message=ai, generation_info=info))
    llm_output = {
        "model_name": completion.model,
        "system_fingerprint": completion.system_fingerprint,
        "id": completion.id,
        "token_usage": token_usage,
        **billing,
    }
    return ChatResult(generations=generations, llm_output=llm_output)


class StreamState:
    """What a stream has already said: each tool call's id and name go on exactly one chunk."""

    __slots__ = ("legacy_id", "named", "usage_sent")

    def __init__(self) -> None:
        self.named: set[int] = set()
        self.usage_sent = False
        self.legacy_id: str | None = None


def chunk_to_generation(chunk: Any, state: StreamState) -> ChatGenerationChunk | None:
    """One openai ``ChatCompletionChunk`` as a LangChain generation chunk (None if it says nothing).

    langchain-core merges chunks by concatenating strings and refuses to add floats, so every string
    and float field appears on exactly one chunk: model name, id and finish reason on the finishing
    chunk; usage, cost and credits on the usage chunk.
    """
    usage = parse_usage(chunk.usage) if chunk.usage is not None and not state.usage_sent else None
    if not chunk.choices:
        if usage is None:
            return None
        state.usage_sent = True
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_to_metadata(usage),
            response_metadata={"model_provider": "aisa", **_billing(usage)},
            id=chunk.id,
        )
        return ChatGenerationChunk(message=message)

    choice = chunk.choices[0]
    delta = choice.delta
    additional: dict[str, Any] = {}
    tool_chunks = []
    if delta is not None:
        for tc in delta.tool_calls or []:
            index = tc.index
            first = index not in state.named
            state.named.add(index)
            fn = tc.function
            tool_chunks.append(
                tool_call_chunk(
                    name=(fn.name if fn is not None else None) if first else None,
                    args=fn.arguments if fn is not None else None,
                    id=tc.id if first else None,
                    index=index,
                )
            )
        if delta.function_call is not None:
            first = state.legacy_id is None
            if first:
                state.legacy_id = f"call_{uuid.uuid4().hex[:24]}"
            fc = delta.function_call
            tool_chunks.append(
                tool_call_chunk(
                    name=fc.name if first else None,
                    args=fc.arguments,
                    id=state.legacy_id if first else None,
                    index=0,
                )
            )
            additional["function_call"] = {
                k: v for k, v in (("name", fc.name if first else None), ("arguments", fc.arguments)) if v
            }
        reasoning = _extra(delta, "reasoning_content") or _extra(delta, "reasoning")
        if reasoning:
            additional["reasoning_content"] = reasoning
    # Metadata only where it says something: langchain-core keeps every chunk of a stream until it ends.
    response_metadata: dict[str, Any] = {}
    info = None
    if choice.finish_reason is not None:
        response_metadata.update(
            model_provider="aisa",
            model_name=chunk.model,
            finish_reason=choice.finish_reason,
            system_fingerprint=chunk.system_fingerprint,
        )
        info = {"finish_reason": choice.finish_reason, "model_name": chunk.model}
    usage_metadata = None
    if usage is not None:  # some providers put usage on the last choice chunk
        state.usage_sent = True
        usage_metadata = usage_to_metadata(usage)
        response_metadata.update(_billing(usage))
    message = AIMessageChunk(
        content=(delta.content or "") if delta is not None else "",
        additional_kwargs=additional,
        tool_call_chunks=tool_chunks,
        usage_metadata=usage_metadata,
        response_metadata=response_metadata,
        id=chunk.id,
    )
    return ChatGenerationChunk(message=message, generation_info=info)
