"""A plain local OpenAI-compatible server: someone else's gateway, with no AIsa extras.

It stands for a server this package knows nothing about, so it deliberately shares no code with
``aisa_integrations.testing``: no control API (every path but the two below is a 404), no faults,
and a ``usage`` without ``cost`` or ``credits_remaining``.

- ``POST /v1/chat/completions``: JSON or SSE (``stream=True``; a final usage chunk when
  ``stream_options.include_usage``). With ``tools`` and the last message from the user, it calls the
  first tool (or the one ``tool_choice`` names) with arguments that satisfy its required properties;
  with a ``json_schema`` response format it answers JSON that fits the schema; otherwise plain text.
- ``GET /v1/models``: a short list.

>>> with PlainOpenAIServer() as server:
...     server.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MODELS", "TEXT_REPLY", "PlainOpenAIServer", "example_for"]

MODELS = ["gpt-4.1", "gpt-4o-mini", "llama-3.1-8b-instruct"]
TEXT_REPLY = "This answer comes from a plain OpenAI-compatible server."


def example_for(schema: Any, defs: dict[str, Any] | None = None, *, all_properties: bool = False) -> Any:
    """A small value that fits a JSON schema: strings "x", numbers 1, the first enum value, ...

    Objects get their required properties (every property with ``all_properties``).

    >>> example_for({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
    ...              "required": ["a", "b"]})
    {'a': 'x', 'b': 1}
    """
    if not isinstance(schema, dict):
        return "x"
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_for(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, all_properties=all_properties)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if not (isinstance(s, dict) and s.get("type") == "null")]
            return example_for((options or schema[key])[0], defs, all_properties=all_properties)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        names = list(properties) if all_properties else schema.get("required", [])
        return {name: example_for(properties.get(name, {}), defs, all_properties=all_properties) for name in names}
    if kind == "array":
        return [example_for(schema.get("items", {}), defs, all_properties=all_properties)] * schema.get("minItems", 0)
    return {"string": "x", "integer": 1, "number": 1, "boolean": True, "null": None}.get(kind, "x")


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PlainOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self) -> None:
        self._send_json(404, {"error": {"message": f"Not found: {self.path}", "type": "not_found", "code": None}})

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    # -- routes -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "plain"} for m in MODELS]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._not_found()

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/chat/completions":
            self._read_body()
            self._not_found()
            return
        try:
            body = self._read_body()
        except ValueError:
            self._send_json(400, {"error": {"message": "Invalid JSON body", "type": "invalid_request_error"}})
            return
        if not body.get("model") or not body.get("messages"):
            self._send_json(400, {"error": {"message": "model and messages are required", "type": "invalid_request"}})
            return
        content, tool_call = _answer(body)
        usage = {"prompt_tokens": _tokens(body["messages"]), "completion_tokens": _tokens(content or tool_call)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        if body.get("stream"):
            self._stream(body, ident, created, content, tool_call, usage)
            return
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_call:
            message["tool_calls"] = [tool_call]
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_call else "stop"}
        self._send_json(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [choice],
                "usage": usage,
            },
        )

    def _stream(
        self,
        body: dict[str, Any],
        ident: str,
        created: int,
        content: str | None,
        tool_call: dict[str, Any] | None,
        usage: dict[str, int],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": choices,
                **extra,
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if tool_call:
            function = tool_call["function"]
            head = {"index": 0, "id": tool_call["id"], "type": "function", "function": {"name": function["name"]}}
            event([{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}])
            arguments = function["arguments"]
            for start in range(0, len(arguments), 8):
                piece = {"index": 0, "function": {"arguments": arguments[start : start + 8]}}
                event([{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}])
        else:
            for i, word in enumerate((content or "").split(" ")):
                event([{"index": 0, "delta": {"content": word if i == 0 else " " + word}, "finish_reason": None}])
        event([{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_call else "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _answer(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(text, None) or (None, a tool call) for a chat request."""
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    last_role = (body["messages"][-1] or {}).get("role")
    choice = body.get("tool_choice")
    if tools and last_role == "user" and choice != "none":
        tool = tools[0]
        if isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
            tool = next((t for t in tools if t["function"]["name"] == choice["function"]["name"]), tool)
        function = tool["function"]
        arguments = example_for(function.get("parameters") or {"type": "object"})
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        return None, {
            "id": call_id,
            "type": "function",
            "function": {"name": function["name"], "arguments": json.dumps(arguments)},
        }
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(example_for(schema, all_properties=True)), None
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": "x"}), None
    return TEXT_REPLY, None


class PlainOpenAIServer:
    """The server on 127.0.0.1 (a free port) in a daemon thread; a context manager."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> PlainOpenAIServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="plain-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PlainOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"
