"""LlamaIndex chat messages and tools <-> OpenAI-format dicts.

Translation only: blocks become content parts (their bytes resolved by LlamaIndex's own
``resolve_*``), and completions and chunks (dicts) become ``ChatResponse`` objects. Whether a request
is valid (parts, base64, URLs, tool names, parameters) is decided by the core
(:mod:`aisa_integrations.core.wire`), which names ``messages[i].content[j]`` when it is not.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    ChatResponse,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.utils import parse_partial_json

from ..core import provider_fields
from ..core.errors import InvalidRequestError
from ..core.stream import ChunkAccumulator
from ..core.usage import parse_usage

__all__ = [
    "PROVIDER_FIELDS",
    "StreamAccumulator",
    "completion_to_response",
    "messages_to_openai",
    "tool_to_openai",
]

#: ``additional_kwargs`` key holding fields the gateway returned beyond the OpenAI schema.
PROVIDER_FIELDS = "provider_fields"
_ROLE = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "developer",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.FUNCTION: "function",
    MessageRole.TOOL: "tool",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
}


def _is_base64(data: bytes) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _resolve(resolve: Any, where: str, what: str) -> bytes:
    try:
        return resolve().read()
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"{where}: the {what} could not be read: {exc}") from None


def _image_part(block: ImageBlock, where: str) -> dict[str, Any]:
    if block.url is not None and block.image is None and block.path is None:
        url = str(block.url)
    else:
        data = _resolve(lambda: block.resolve_image(as_base64=True), where, "image")
        url = f"data:{block.image_mimetype or 'image/png'};base64,{data.decode('ascii', 'replace')}"
    image_url: dict[str, Any] = {"url": url}
    if block.detail:
        image_url["detail"] = block.detail
    return {"type": "image_url", "image_url": image_url}


def _audio_part(block: AudioBlock, where: str) -> dict[str, Any]:
    data = _resolve(lambda: block.resolve_audio(as_base64=True), where, "audio")
    fmt = (block.format or "").lower()
    return {"type": "input_audio", "input_audio": {"data": data.decode("ascii", "replace"), "format": fmt}}


def _document_part(block: DocumentBlock, where: str) -> dict[str, Any]:
    if block.url and block.data is None and block.path is None:
        raise InvalidRequestError(
            f"{where}: documents by URL cannot be sent through chat completions; pass data= or path= instead."
        )
    data = _resolve(block.resolve_document, where, "document")
    encoded = data.decode("ascii") if _is_base64(data) else base64.b64encode(data).decode()
    mimetype = block.document_mimetype or "application/pdf"
    filename = block.title or "document"
    if mimetype == "application/pdf" and not filename.endswith(".pdf"):
        filename += ".pdf"
    return {"type": "file", "file": {"file_data": f"data:{mimetype};base64,{encoded}", "filename": filename}}


def _tool_call(block: ToolCallBlock) -> dict[str, Any]:
    args = block.tool_kwargs
    try:
        arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    except TypeError as exc:
        raise InvalidRequestError(
            f"tool call {block.tool_name!r}: its arguments cannot be sent as JSON: {exc}"
        ) from None
    return {
        "id": block.tool_call_id or f"call_{block.tool_name}",
        "type": "function",
        "function": {"name": block.tool_name, "arguments": arguments},
    }


def _legacy_tool_call(call: Any) -> dict[str, Any]:
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    return {"id": call.get("id"), "type": "function", "function": dict(call.get("function") or {})}


def message_to_openai(message: ChatMessage, index: int) -> dict[str, Any]:
    """One LlamaIndex message as an OpenAI-format message dict."""
    where = f"messages[{index}]"
    role = _ROLE.get(message.role)
    if role is None:
        raise InvalidRequestError(f"{where}: role {message.role!r} has no chat-completions equivalent.")
    blocks = message.blocks
    out: dict[str, Any] = {"role": role}
    kwargs = message.additional_kwargs
    if len(blocks) == 1 and isinstance(blocks[0], TextBlock):
        out["content"] = blocks[0].text  # the common case
        tool_calls: list[dict[str, Any]] = []
        thinking: list[str] = []
    else:
        parts: list[dict[str, Any]] = []
        tool_calls, thinking = [], []
        for j, block in enumerate(blocks):
            block_where = f"{where}.blocks[{j}]"
            if isinstance(block, TextBlock):
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, ImageBlock):
                parts.append(_image_part(block, block_where))
            elif isinstance(block, AudioBlock):
                parts.append(_audio_part(block, block_where))
            elif isinstance(block, DocumentBlock):
                parts.append(_document_part(block, block_where))
            elif isinstance(block, ThinkingBlock):
                if block.content:
                    thinking.append(block.content)
            elif isinstance(block, ToolCallBlock):
                tool_calls.append(_tool_call(block))
            elif isinstance(block, CachePoint):
                # An Anthropic-style cache breakpoint: marks the content before it (Claude only; the core
                # removes it for other families).
                if parts:
                    parts[-1] = {**parts[-1], "cache_control": {"type": block.cache_control.type}}
            else:
                raise InvalidRequestError(
                    f"{block_where}: {type(block).__name__} cannot be sent through AIsa's chat completions API "
                    "(supported: TextBlock, ImageBlock, AudioBlock, DocumentBlock, ThinkingBlock, ToolCallBlock)."
                )
        out["content"] = parts
    if role == "assistant":
        if not tool_calls and kwargs.get("tool_calls"):
            tool_calls = [_legacy_tool_call(c) for c in kwargs["tool_calls"]]
        if tool_calls:
            out["tool_calls"] = tool_calls
            if not out["content"]:
                out["content"] = None
        reasoning = kwargs.get("reasoning_content") or "".join(thinking)
        if reasoning:
            out["reasoning_content"] = reasoning
        provider_fields.attach(out, kwargs.get(PROVIDER_FIELDS))
    elif role == "tool":
        out["tool_call_id"] = kwargs.get("tool_call_id")
    if kwargs.get("name") and role in ("user", "assistant", "system", "function"):
        out["name"] = kwargs["name"]
    return out


def messages_to_openai(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    return [message_to_openai(m, i) for i, m in enumerate(messages)]


def tool_to_openai(tool: Any, *, strict: bool) -> dict[str, Any]:
    """A LlamaIndex tool as an OpenAI tool spec (its own ``to_openai_tool``; the core checks it)."""
    spec = tool.metadata.to_openai_tool(skip_length_check=True)
    # The name the agent will look the call up by (to_openai_tool quietly rewrites invalid names,
    # so a call would come back under a name no tool has); the core refuses an invalid one.
    spec["function"]["name"] = tool.metadata.get_name()
    if strict:
        spec["function"]["strict"] = True
        spec["function"]["parameters"]["additionalProperties"] = False
    return spec


def partial_json(text: str) -> dict[str, Any]:
    """The complete part of a streamed JSON object so far ({} when nothing is complete yet)."""
    try:
        value = parse_partial_json(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _parse_args(arguments: str, *, partial: bool = False) -> dict[str, Any] | str:
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        if partial:
            return partial_json(arguments) or arguments
        return arguments  # kept verbatim; get_tool_calls_from_response decides what to do
    return value if isinstance(value, dict) else arguments


def _message(message: Mapping[str, Any], *, model: str | None, partial: bool = False) -> ChatMessage:
    blocks: list[Any] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        blocks.append(TextBlock(text=content))
    elif isinstance(content, list):
        blocks.extend(TextBlock(text=p.get("text", "")) for p in content if p.get("type") == "text")
    calls = [c for c in message.get("tool_calls") or () if isinstance(c.get("function"), Mapping)]
    for call in calls:
        fn = call["function"]
        blocks.append(
            ToolCallBlock(
                tool_call_id=call.get("id"),
                tool_name=fn.get("name") or "",
                tool_kwargs=_parse_args(fn.get("arguments") or "", partial=partial),
            )
        )
    kwargs: dict[str, Any] = {}
    if calls:
        # LlamaIndex's own programs still look for OpenAI-format calls here (ToolCallBlocks carry the same).
        kwargs["tool_calls"] = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {
                    "name": c["function"].get("name") or "",
                    "arguments": c["function"].get("arguments") or "",
                },
            }
            for c in calls
        ]
    if reasoning:
        kwargs["reasoning_content"] = reasoning
    stored = provider_fields.extract(message, model=model)
    if stored:
        kwargs[PROVIDER_FIELDS] = stored
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=kwargs)


def _response_kwargs(model: str | None, finish_reason: str | None, usage: Any) -> dict[str, Any]:
    parsed = parse_usage(usage)
    return {"model": model, "finish_reason": finish_reason, **(parsed.to_dict() if parsed else {})}


def completion_to_response(completion: Mapping[str, Any]) -> ChatResponse:
    """A completion dict as a ``ChatResponse`` (``raw`` is the dict itself)."""
    choice = completion["choices"][0]
    model = completion.get("model")
    return ChatResponse(
        message=_message(choice.get("message") or {}, model=model),
        raw=completion,
        additional_kwargs=_response_kwargs(model, choice.get("finish_reason"), completion.get("usage")),
    )


class StreamAccumulator:
    """Chunks (dicts) into cumulative ``ChatResponse``s: the core's accumulator holds the answer so
    far (tool calls gathered by index, ids never joined); each chunk costs the same however long the
    stream is."""

    __slots__ = ("_acc",)

    def __init__(self) -> None:
        self._acc = ChunkAccumulator()

    def add(self, chunk: Mapping[str, Any]) -> ChatResponse | None:
        acc = self._acc
        acc.add(chunk)
        choices = chunk.get("choices")
        if not choices and chunk.get("usage") is None:
            return None
        delta = (choices[0].get("delta") or {}) if choices else {}
        additional = _response_kwargs(acc.model, acc.finish_reason, acc.usage)
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        if thinking:
            additional["thinking_delta"] = thinking
        return ChatResponse(
            message=_message(acc.message(), model=acc.model, partial=True),
            delta=delta.get("content") or "",
            raw=chunk,
            additional_kwargs=additional,
        )
