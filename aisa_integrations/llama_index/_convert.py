"""LlamaIndex chat messages and tools <-> OpenAI chat-completions dicts.

Plain functions beside the LLM. A block the chat format cannot carry raises
:class:`InvalidRequestError` naming it, before any request is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
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

from ..core.errors import InvalidRequestError
from ..core.usage import Usage, parse_usage

__all__ = ["StreamAccumulator", "completion_to_response", "messages_to_openai", "tool_to_openai"]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
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


def _b64(data: bytes | str, where: str) -> str:
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{where}: the data is not valid base64.") from None
    return text


def _image_part(block: ImageBlock, where: str) -> dict[str, Any]:
    if block.url is not None and block.image is None and block.path is None:
        url = str(block.url)
        if not url.startswith(("http://", "https://", "data:image/")):
            raise InvalidRequestError(f"{where}: image URLs must be http(s) or data:image/... URLs, got {url[:40]!r}.")
    else:
        try:
            data = block.resolve_image(as_base64=True).read()
        except (OSError, ValueError) as exc:
            raise InvalidRequestError(f"{where}: the image could not be read: {exc}") from None
        mimetype = block.image_mimetype or "image/png"
        url = f"data:{mimetype};base64,{_b64(data, where)}"
    image_url: dict[str, Any] = {"url": url}
    if block.detail:
        image_url["detail"] = block.detail
    return {"type": "image_url", "image_url": image_url}


def _audio_part(block: AudioBlock, where: str) -> dict[str, Any]:
    fmt = (block.format or "").lower()
    if fmt not in ("wav", "mp3"):
        raise InvalidRequestError(f"{where}: audio must be 'wav' or 'mp3' (set AudioBlock(format=...)), got {fmt!r}.")
    try:
        data = block.resolve_audio(as_base64=True).read()
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"{where}: the audio could not be read: {exc}") from None
    return {"type": "input_audio", "input_audio": {"data": _b64(data, where), "format": fmt}}


def _document_part(block: DocumentBlock, where: str) -> dict[str, Any]:
    if block.url and block.data is None and block.path is None:
        raise InvalidRequestError(
            f"{where}: documents by URL cannot be sent through chat completions; pass data= or path= instead."
        )
    try:
        data = block.resolve_document().read()
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"{where}: the document could not be read: {exc}") from None
    encoded = _b64(data, where) if _looks_base64(data) else base64.b64encode(data).decode()
    mimetype = block.document_mimetype or "application/pdf"
    filename = block.title or "document"
    if mimetype == "application/pdf" and not filename.endswith(".pdf"):
        filename += ".pdf"
    return {"type": "file", "file": {"file_data": f"data:{mimetype};base64,{encoded}", "filename": filename}}


def _looks_base64(data: bytes) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _tool_call_dict(block: ToolCallBlock) -> dict[str, Any]:
    if not TOOL_NAME.match(block.tool_name or ""):
        raise InvalidRequestError(
            f"tool call name {block.tool_name!r} is invalid; names must match ^[a-zA-Z0-9_-]{{1,64}}$."
        )
    args = block.tool_kwargs
    arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return {
        "id": block.tool_call_id or f"call_{block.tool_name}",
        "type": "function",
        "function": {"name": block.tool_name, "arguments": arguments},
    }


def message_to_openai(message: ChatMessage, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    role = _ROLE.get(message.role)
    if role is None:
        raise InvalidRequestError(f"{where}: role {message.role!r} has no chat-completions equivalent.")
    parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    for j, block in enumerate(message.blocks):
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
            tool_calls.append(_tool_call_dict(block))
        elif isinstance(block, CachePoint):
            continue  # a provider cache hint, not content; the chat format has no place for it
        else:
            raise InvalidRequestError(
                f"{block_where}: {type(block).__name__} cannot be sent through AIsa's chat completions API "
                "(supported: TextBlock, ImageBlock, AudioBlock, DocumentBlock, ThinkingBlock, ToolCallBlock)."
            )
    if parts and all(p["type"] == "text" for p in parts):
        content: Any = "\n".join(p["text"] for p in parts) if len(parts) > 1 else parts[0]["text"]
    else:
        content = parts or ""
    out: dict[str, Any] = {"role": role, "content": content}
    kwargs = message.additional_kwargs
    if role == "assistant":
        if not tool_calls and kwargs.get("tool_calls"):
            tool_calls = [_legacy_tool_call(c) for c in kwargs["tool_calls"]]
        if tool_calls:
            out["tool_calls"] = tool_calls
            if not content:
                out["content"] = None
        reasoning = kwargs.get("reasoning_content") or "".join(thinking)
        if reasoning:
            out["reasoning_content"] = reasoning
    elif role == "tool":
        call_id = kwargs.get("tool_call_id")
        if not call_id:
            raise InvalidRequestError(f"{where}: a tool message needs additional_kwargs['tool_call_id'].")
        out["tool_call_id"] = call_id
    if kwargs.get("name") and role in ("user", "assistant", "system", "function"):
        out["name"] = kwargs["name"]
    return out


def _legacy_tool_call(call: Any) -> dict[str, Any]:
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    return {"id": call.get("id"), "type": "function", "function": dict(call.get("function") or {})}


def messages_to_openai(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    return [message_to_openai(m, i) for i, m in enumerate(messages)]


def tool_to_openai(tool: Any, *, strict: bool) -> dict[str, Any]:
    """A LlamaIndex tool as an OpenAI tool spec (its own ``to_openai_tool``, with a name check)."""
    name = tool.metadata.get_name()
    if not TOOL_NAME.match(name):
        raise InvalidRequestError(
            f"tool name {name!r} is invalid; names must match ^[a-zA-Z0-9_-]{{1,64}}$. Rename the tool."
        )
    spec = tool.metadata.to_openai_tool(skip_length_check=True)
    if strict:
        spec["function"]["strict"] = True
        spec["function"]["parameters"]["additionalProperties"] = False
    return spec


def _partial_json(text: str) -> dict[str, Any]:
    """The complete part of a streamed JSON object so far ({} when nothing is complete yet)."""
    try:
        value = parse_partial_json(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage_kwargs(usage: Usage | None) -> dict[str, Any]:
    return usage.to_dict() if usage else {}


def _parse_args(arguments: str) -> dict[str, Any] | str:
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments  # kept verbatim; get_tool_calls_from_response decides what to do
    return value if isinstance(value, dict) else arguments


def completion_to_response(completion: Any) -> ChatResponse:
    choice = completion.choices[0]
    message = choice.message
    blocks: list[Any] = []
    extra = message.model_extra or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning))
    if message.content:
        blocks.append(TextBlock(text=message.content))
    for call in message.tool_calls or []:
        fn = getattr(call, "function", None)
        if fn is None:
            continue
        blocks.append(ToolCallBlock(tool_call_id=call.id, tool_name=fn.name, tool_kwargs=_parse_args(fn.arguments)))
    usage = parse_usage(completion.usage)
    msg_kwargs: dict[str, Any] = {}
    if message.tool_calls:
        # LlamaIndex's own programs still look for OpenAI-format calls here (ToolCallBlocks carry the same).
        msg_kwargs["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
            if getattr(c, "function", None) is not None
        ]
    additional = {
        "model": completion.model,
        "finish_reason": choice.finish_reason,
        **_usage_kwargs(usage),
    }
    if reasoning:
        msg_kwargs["reasoning_content"] = reasoning
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=msg_kwargs),
        raw=completion,
        additional_kwargs=additional,
    )


class StreamAccumulator:
    """Turns chunks into cumulative ChatResponses; tool calls gathered by index, ids never joined."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def _message(self) -> ChatMessage:
        blocks: list[Any] = []
        reasoning = "".join(self.reasoning)
        if reasoning:
            blocks.append(ThinkingBlock(content=reasoning))
        text = "".join(self.content)
        if text:
            blocks.append(TextBlock(text=text))
        for index in sorted(self.calls):
            call = self.calls[index]
            raw = "".join(call["args"])
            try:
                args: dict[str, Any] | str = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                partial = _partial_json(raw)
                args = partial if partial else raw
            blocks.append(ToolCallBlock(tool_call_id=call["id"], tool_name=call["name"] or "", tool_kwargs=args))
        kwargs: dict[str, Any] = {"reasoning_content": reasoning} if reasoning else {}
        if self.calls:
            kwargs["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"] or "", "arguments": "".join(c["args"])},
                }
                for _, c in sorted(self.calls.items())
            ]
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=kwargs)

    def add(self, chunk: Any) -> ChatResponse | None:
        delta_text = ""
        thinking_delta = ""
        if chunk.usage is not None:
            self.usage = parse_usage(chunk.usage)
        if chunk.model:
            self.model = chunk.model
        if chunk.choices:
            choice = chunk.choices[0]
            delta = choice.delta
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            if delta is not None:
                if delta.content:
                    delta_text = delta.content
                    self.content.append(delta_text)
                extra = delta.model_extra or {}
                thinking_delta = extra.get("reasoning_content") or extra.get("reasoning") or ""
                if thinking_delta:
                    self.reasoning.append(thinking_delta)
                for tc in delta.tool_calls or []:
                    call = self.calls.setdefault(tc.index, {"id": None, "name": None, "args": []})
                    if tc.id and not call["id"]:
                        call["id"] = tc.id
                    if tc.function is not None:
                        if tc.function.name and not call["name"]:
                            call["name"] = tc.function.name
                        if tc.function.arguments:
                            call["args"].append(tc.function.arguments)
        elif chunk.usage is None:
            return None
        additional: dict[str, Any] = {
            "model": self.model,
            "finish_reason": self.finish_reason,
            **_usage_kwargs(self.usage),
        }
        if thinking_delta:
            additional["thinking_delta"] = thinking_delta
        return ChatResponse(message=self._message(), delta=delta_text, raw=chunk, additional_kwargs=additional)
