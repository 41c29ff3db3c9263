"""A local AIsa server for offline tests, demos and notebooks.

It speaks the documented protocol on 127.0.0.1: ``POST /v1/chat/completions`` (JSON and SSE,
``stream_options.include_usage``, tools and legacy ``functions``, vision parts, ``json_schema`` and
``json_object``), ``GET /v1/models``, the bearer-key check, ``usage.cost`` and
``usage.credits_remaining``, and the documented error bodies. Replies are deterministic and
scripted: it is a protocol double, not a model.

Faults are injected per model to exercise real sockets, the real openai SDK and its retries:
an error status (with Retry-After), a delay before the first byte, a stall mid-stream, a dropped
connection after k chunks, a malformed chunk or body, a missing ``[DONE]``, or a reset before any
response.

>>> from aisa_integrations.testing import AIsaSimulator
>>> import openai
>>> with AIsaSimulator() as sim:
...     client = openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url)
...     reply = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "Hi"}])
...     reply.choices[0].message.content.startswith("Simulated reply from gpt-4.1")
True
"""

from __future__ import annotations

import itertools
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..core.catalog import ModelCatalog, default_catalog
from ._replies import (
    ScriptedReply,
    ScriptedToolCall,
    compose_reply,
    count_prompt_tokens,
    count_tokens,
    split_words,
)

__all__ = ["AIsaSimulator", "Fault", "LoggedRequest", "ScriptedReply", "ScriptedToolCall"]

SIMULATOR_KEY = "sim-key-not-secret"
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass
class Fault:
    """A misbehaviour for requests to one model (or ``"*"``, every model).

    ``times`` is how many requests it affects (``None``: until cleared). Timings are seconds.
    """

    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    reset: bool = False
    stall_after: int | None = None
    stall_for: float = 0.0
    drop_after: int | None = None
    malformed_at: int | None = None
    malformed_body: bool = False
    missing_done: bool = False
    chunk_delay: float = 0.0
    times: int | None = None
    probability: float = 1.0  # applies to this share of matching requests (seeded: runs repeat exactly)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"model"}
        if unknown:
            raise ValueError(f"Unknown fault fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class LoggedRequest:
    """One request the simulator received (header names lower-cased; Authorization is never kept)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None
    status: int = 0
    stream: bool = False
    fault: dict[str, Any] | None = None
    at: float = field(default_factory=time.time)
    billed_cost: float | None = None
    usage: dict[str, Any] | None = None


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def setup(self) -> None:
        super().setup()
        # As production servers do: without TCP_NODELAY, a body written after its headers waits for the
        # client's delayed ACK (~40 ms), which would swamp every latency figure measured against us.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._connected()

    # -- plumbing -------------------------------------------------------------------------
    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        return json.loads(raw)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", self.server.sim._next_request_id())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, _error_body(code, message), headers)

    def _reset(self) -> None:
        # SO_LINGER 0: the client sees a reset, not an orderly close.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _client_gone(self) -> bool:
        """Whether the client closed its end (as a gateway notices, and stops generating)."""
        import select

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _hang_up(self) -> None:
        # An orderly close mid-body: what was sent arrives, the chunked body stays incomplete.
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        sim = self.server.sim
        path = self.path.split("?", 1)[0]
        if path.startswith("/_simulator/"):
            self._control("GET", path, None)
            return
        entry = sim._log("GET", path, dict(self.headers), None, None)
        if not self._authorised(entry):
            return
        if path.rstrip("/") in ("/v1/models", "/models"):
            data = [
                {"id": mid, "object": "model", "created": 1700000000, "owned_by": sim.catalog.info(mid).developer}
                for mid in sim.model_ids()
            ]
            entry.status = 200
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
            return
        entry.status = 404
        self._send_error(404, "not_found", f"No route for GET {path}")

    def do_DELETE(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/_simulator/"):
            self._control("DELETE", path, None)
            return
        self._send_error(404, "not_found", f"No route for DELETE {path}")

    def do_POST(self) -> None:
        sim = self.server.sim
        path = self.path.split("?", 1)[0]
        try:
            body = self._read_json()
        except (ValueError, UnicodeDecodeError):
            self._send_error(400, "invalid_json", "The request body is not valid JSON.")
            return
        if path.startswith("/_simulator/"):
            self._control("POST", path, body)
            return
        model = body.get("model") if isinstance(body, Mapping) else None
        entry = sim._log("POST", path, dict(self.headers), body, model if isinstance(model, str) else None)
        if path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            entry.status = 404
            self._send_error(404, "not_found", f"No route for POST {path}")
            return
        if not self._authorised(entry):
            return
        try:
            self._chat(body, entry)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client gave up (its timeout); nothing left to answer.
            self.close_connection = True

    def _authorised(self, entry: LoggedRequest) -> bool:
        sim = self.server.sim
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not token or (sim.api_key is not None and token != sim.api_key):
            entry.status = 401
            self._send_error(401, "invalid_api_key", "Invalid or missing API key.")
            return False
        return True

    def _control(self, method: str, path: str, body: Any) -> None:
        sim = self.server.sim
        try:
            if path == "/_simulator/faults" and method == "POST":
                data = dict(body or {})
                sim.inject(data.pop("model", "*"), Fault.from_dict(data))
            elif path == "/_simulator/faults" and method == "DELETE":
                sim.clear_faults()
            elif path == "/_simulator/latency" and method == "POST":
                sim.set_latency(float((body or {}).get("seconds", 0.0)), model=(body or {}).get("model"))
            elif path == "/_simulator/script" and method == "POST":
                data = dict(body or {})
                calls = [ScriptedToolCall(**c) for c in data.pop("tool_calls", [])]
                reply = ScriptedReply(tool_calls=calls, **data.pop("reply", {}))
                if data.get("persistent"):
                    sim.fix_reply(reply, model=data.get("model"))
                else:
                    sim.script(reply, model=data.get("model"))
            elif path == "/_simulator/requests" and method == "GET":
                self._send(200, json.dumps([asdict(r) for r in sim.requests]).encode())
                return
            elif path == "/_simulator/stats" and method == "GET":
                stats = {"connections": sim.connections, "requests": len(sim.requests), "billed": sim.total_billed}
                self._send(200, json.dumps(stats).encode())
                return
            elif path == "/_simulator/reset" and method == "POST":
                sim.reset()
            else:
                self._send_error(404, "not_found", f"No simulator control route {method} {path}")
                return
        except (TypeError, ValueError) as exc:
            self._send_error(400, "invalid_request", str(exc))
            return
        self._send(200, b'{"ok": true}')

    # -- chat -----------------------------------------------------------------------------
    def _validate(self, body: Any) -> tuple[int, str, str] | None:
        sim = self.server.sim
        if not isinstance(body, Mapping):
            return 400, "invalid_request", "The body must be a JSON object."
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return 400, "invalid_request", "'model' is required."
        if not sim.serves(model):
            return 404, "model_not_found", f"Model '{model}' is not available"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "invalid_request", "'messages' must be a non-empty array."
        info = sim.catalog.info(model)
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
                return 400, "invalid_request", f"messages[{i}] has no valid role."
            content = message.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    problem = self._check_part(part, info.vision)
                    if problem:
                        return 400, problem[0], f"messages[{i}].content[{j}]: {problem[1]}"
            elif content is not None and not isinstance(content, str):
                return 400, "invalid_request", f"messages[{i}].content must be a string or an array."
            if message.get("role") == "tool" and not message.get("tool_call_id"):
                return 400, "invalid_request", f"messages[{i}] (tool) needs tool_call_id."
            for k, call in enumerate(message.get("tool_calls") or ()):
                if isinstance(call, Mapping) and "extra_content" in call and info.family != "gemini":
                    return (
                        400,
                        "invalid_request",
                        f"messages[{i}].tool_calls[{k}].extra_content is not accepted by {model}.",
                    )
        for i, tool in enumerate(body.get("tools") or []):
            fn = tool.get("function") if isinstance(tool, Mapping) else None
            if not isinstance(fn, Mapping) or tool.get("type") != "function":
                return 400, "invalid_request", f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}."
            if not _TOOL_NAME.match(str(fn.get("name", ""))):
                return 400, "invalid_request", f"tools[{i}].function.name must match ^[a-zA-Z0-9_-]{{1,64}}$."
        if (body.get("tools") or body.get("functions")) and info.tools is False:
            return 400, "invalid_request", f"Model '{model}' does not support tools."
        prompt = count_prompt_tokens(body)
        if info.context_window and prompt > info.context_window:
            return (
                400,
                "context_length_exceeded",
                f"This model's maximum context length is {info.context_window} tokens; "
                f"the messages resulted in {prompt} tokens.",
            )
        return None

    @staticmethod
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
        if kind in ("file", "input_audio"):
            return None
        return "invalid_request", f"unknown content part type {kind!r}."

    def _chat(self, body: Any, entry: LoggedRequest) -> None:
        sim = self.server.sim
        model = body.get("model") if isinstance(body, Mapping) else None
        fault = sim._take_fault(model) if isinstance(model, str) else None
        if fault is not None:
            entry.fault = asdict(fault)
        latency = sim.latency_for(model)
        if latency:
            sim._sleep(latency)
        if fault and fault.delay:
            sim._sleep(fault.delay)
        if (latency or (fault and fault.delay)) and self._client_gone():
            entry.status = 499  # the client gave up while we were "thinking": nothing generated, nothing billed
            self.close_connection = True
            return
        if fault and fault.reset:
            entry.status = 0
            self._reset()
            return
        if fault and fault.status:
            entry.status = fault.status
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            code = fault.code or _DEFAULT_CODES.get(fault.status, "server_error")
            message = fault.message or _DEFAULT_MESSAGES.get(fault.status, "Simulated failure.")
            self._send_error(fault.status, code, message, headers)
            return
        problem = self._validate(body)
        if problem:
            entry.status = problem[0]
            self._send_error(*problem)
            return
        info = sim.catalog.info(model)
        reply = sim._next_script(model) or compose_reply(body, model=model, reasoning=bool(info.reasoning))
        reply = sim._with_call_ids(_apply_limits(reply, body))
        if not sim._charge(info, body, reply, entry):
            entry.status = 402
            self._send_error(402, "insufficient_credits", "Insufficient credits. Add credits to continue.")
            return
        entry.status = 200
        # An answer is billed only once it is fully delivered: a cut, malformed or abandoned response never
        # reaches the client's usage, so it is refunded (as the request log's billed_cost shows).
        try:
            if body.get("stream"):
                entry.stream = True
                delivered = self._stream(body, reply, entry, fault)
            else:
                payload = sim._completion(body, reply, entry)
                delivered = not (fault and fault.malformed_body)
                self._send(200, payload if delivered else payload[: max(1, len(payload) // 2)])
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            sim._refund(entry)
            raise
        if not delivered:
            sim._refund(entry)

    def _stream(self, body: Mapping[str, Any], reply: ScriptedReply, entry: LoggedRequest, fault: Fault | None) -> bool:
        """Write the SSE answer; False if it was deliberately not delivered whole."""
        sim = self.server.sim
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", sim._next_request_id())
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = list(sim._chunks(body, reply, entry, include_usage))
        write = self.wfile.write
        for index, event in enumerate(events):
            if fault is not None:
                if fault.drop_after is not None and index >= fault.drop_after:
                    self._hang_up()
                    return False
                if fault.stall_after is not None and index == fault.stall_after:
                    self.wfile.flush()
                    sim._sleep(fault.stall_for)
                    if self._client_gone():
                        self.close_connection = True
                        return False  # abandoned mid-answer: the rest is never generated nor billed
                if fault.malformed_at is not None and index == fault.malformed_at:
                    event = b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n'
                if fault.chunk_delay:
                    sim._sleep(fault.chunk_delay)
            write(b"%x\r\n%s\r\n" % (len(event), event))
            if fault is not None and (fault.chunk_delay or fault.stall_after is not None):
                self.wfile.flush()
        if not (fault and fault.missing_done):
            done = b"data: [DONE]\n\n"
            write(b"%x\r\n%s\r\n" % (len(done), done))
        write(b"0\r\n\r\n")
        self.wfile.flush()
        return not (fault and fault.malformed_at is not None and fault.malformed_at < len(events))


_DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "insufficient_credits",
    403: "permission_denied",
    404: "model_not_found",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Invalid or missing API key.",
    402: "Insufficient credits. Add credits to continue.",
    403: "Permission denied.",
    404: "Model not found.",
    429: "Rate limit exceeded.",
    500: "Internal server error (simulated).",
    502: "Upstream provider error (simulated).",
    503: "Service unavailable (simulated).",
    504: "Upstream timeout (simulated).",
}


def _apply_limits(reply: ScriptedReply, body: Mapping[str, Any]) -> ScriptedReply:
    """Honour ``stop`` and ``max_tokens`` like a server would."""
    content = reply.content
    finish = reply.finish_reason
    if content:
        stop = body.get("stop")
        for seq in [stop] if isinstance(stop, str) else (stop or []):
            if seq and seq in content:
                content = content[: content.index(seq)]
                finish = finish or "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and limit > 0 and count_tokens(content) > limit:
            content = content[: limit * 4]
            finish = "length"
    return ScriptedReply(
        content=content, tool_calls=reply.tool_calls, reasoning_content=reply.reasoning_content, finish_reason=finish
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sim: AIsaSimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer is what fault tests do; anything else is worth a line.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | OSError):
            return
        super().handle_error(request, client_address)


class AIsaSimulator:
    """A real HTTP server on 127.0.0.1 that behaves like the AIsa gateway, for offline use.

    Use it as a context manager (or ``start()`` / ``stop()``); point any client at
    ``sim.base_url`` with ``sim.api_key``. ``AISA_BASE_URL`` / ``AISA_API_KEY`` can be set for
    code that reads the environment: ``with sim.environ(): ...``.

    >>> with AIsaSimulator() as sim:
    ...     _ = sim.inject("gpt-4.1", Fault(status=429, retry_after=1, times=1))
    ...     sim.base_url.startswith("http://127.0.0.1:")
    True

    Args:
        port: 0 for an ephemeral port.
        api_key: the key it accepts; ``None`` accepts any non-empty bearer token.
        credits: starting balance in USD; each answer costs the catalog's list price.
        latency: seconds added to every chat request (a number, or per model via ``set_latency``).
        models: extra model ids to serve beside the catalog's.
        catalog: model capabilities and prices (the process-wide catalog by default).
        seed: for faults with a ``probability`` below 1, so a run can be repeated exactly.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = SIMULATOR_KEY,
        credits: float = 100.0,
        latency: float = 0.0,
        models: list[str] | None = None,
        catalog: ModelCatalog | None = None,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.catalog = catalog or default_catalog()
        self.initial_credits = credits
        self.credits = credits
        self._extra_models = set(models or ())
        self._latency: dict[str | None, float] = {None: latency}
        self._faults: list[tuple[str, Fault]] = []
        self._scripts: dict[str | None, list[ScriptedReply]] = {}
        self._served_as: dict[str, str] = {}
        self._fixed: dict[str | None, ScriptedReply] = {}
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.connections = 0  # TCP connections accepted (a client that reuses its pool opens few)
        self._random = random.Random(seed)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> AIsaSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sim = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="aisa-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> AIsaSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the foreground until interrupted (``aisa simulate``)."""
        self.start()
        try:
            while not self._stopping.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def environ(self) -> Any:
        """Context manager setting ``AISA_BASE_URL`` and ``AISA_API_KEY`` to this simulator."""
        import contextlib
        import os

        @contextlib.contextmanager
        def _env() -> Iterator[None]:
            saved = {k: os.environ.get(k) for k in ("AISA_BASE_URL", "AISA_API_KEY")}
            os.environ["AISA_BASE_URL"] = self.base_url
            os.environ["AISA_API_KEY"] = self.api_key or SIMULATOR_KEY
            try:
                yield
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

        return _env()

    # -- configuration --------------------------------------------------------------------
    def inject(self, model: str, fault: Fault | None = None, **fields_: Any) -> Fault:
        """Add a fault for ``model`` (``"*"`` for all): ``inject("gpt-4.1", status=503, times=2)``."""
        fault = fault or Fault(**fields_)
        with self._lock:
            self._faults.append((model, fault))
        return fault

    def clear_faults(self, model: str | None = None) -> None:
        with self._lock:
            self._faults = [(m, f) for m, f in self._faults if model is not None and m != model]

    def script(self, *replies: ScriptedReply | str, model: str | None = None) -> None:
        """Queue exact replies (for ``model``, or any model) ahead of the default ones."""
        with self._lock:
            queue = self._scripts.setdefault(model, [])
            queue.extend(ScriptedReply(content=r) if isinstance(r, str) else r for r in replies)

    def fix_reply(self, reply: ScriptedReply | str, *, model: str | None = None) -> None:
        """Answer every request (to ``model``, or to any) with this reply until reset (benchmarks, demos)."""
        with self._lock:
            self._fixed[model] = ScriptedReply(content=reply) if isinstance(reply, str) else reply

    def set_latency(self, seconds: float, *, model: str | None = None) -> None:
        """Server-side latency for every chat request (or one model's)."""
        with self._lock:
            self._latency[model] = seconds

    def serve_as(self, model: str, served_id: str) -> None:
        """Report ``served_id`` as the response's ``model`` for requests to ``model`` (a dated id, say)."""
        with self._lock:
            self._served_as[model] = served_id

    def add_model(self, model_id: str) -> None:
        with self._lock:
            self._extra_models.add(model_id)

    def reset(self) -> None:
        """Forget faults, scripts, latency, the request log; restore the credit balance."""
        with self._lock:
            self._faults.clear()
            self._scripts.clear()
            self._served_as.clear()
            self._fixed.clear()
            self._latency = {None: 0.0}
            self.requests.clear()
            self.credits = self.initial_credits

    # -- introspection --------------------------------------------------------------------
    def model_ids(self) -> list[str]:
        return sorted(set(self.catalog.ids()) | self._extra_models)

    def serves(self, model: str) -> bool:
        return model in self._extra_models or self.catalog.get(model) is not None

    def latency_for(self, model: str | None) -> float:
        return self._latency.get(model, self._latency.get(None, 0.0))

    def chat_requests(self, model: str | None = None) -> list[LoggedRequest]:
        """Logged chat requests, optionally for one model."""
        return [
            r
            for r in list(self.requests)
            if r.path.endswith("/chat/completions") and (model is None or r.model == model)
        ]

    @property
    def total_billed(self) -> float:
        return sum(r.billed_cost or 0.0 for r in list(self.requests))

    # -- internals used by the handler ----------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _next_request_id(self) -> str:
        return f"req_sim_{next(self._ids)}"

    def _log(self, method: str, path: str, headers: dict[str, str], body: Any, model: str | None) -> LoggedRequest:
        kept = {k.lower(): v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
        entry = LoggedRequest(method=method, path=path, headers=kept, body=body, model=model)
        with self._lock:
            self.requests.append(entry)
        return entry

    def _take_fault(self, model: str) -> Fault | None:
        with self._lock:
            for i, (target, fault) in enumerate(self._faults):
                if target == model or target == "*":
                    if fault.probability < 1.0 and self._random.random() >= fault.probability:
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self._faults[i]
                    return fault
        return None

    def _next_script(self, model: str) -> ScriptedReply | None:
        with self._lock:
            for key in (model, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.pop(0)
            for key in (model, None):
                fixed = self._fixed.get(key)
                if fixed is not None:
                    return ScriptedReply(
                        content=fixed.content,
                        tool_calls=list(fixed.tool_calls),
                        reasoning_content=fixed.reasoning_content,
                        finish_reason=fixed.finish_reason,
                    )
        return None

    def _charge(self, info: Any, body: Mapping[str, Any], reply: ScriptedReply, entry: LoggedRequest) -> bool:
        prompt = count_prompt_tokens(body)
        completion = _completion_tokens(reply)
        cost = info.estimate_cost(prompt, completion)
        cost = round(cost, 8) if cost is not None else 0.0
        with self._lock:
            if self.credits <= 0:
                return False
            self.credits = round(self.credits - cost, 8)
            remaining = self.credits
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost": cost,
            "credits_remaining": remaining,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if reply.reasoning_content:
            usage["completion_tokens_details"] = {"reasoning_tokens": count_tokens(reply.reasoning_content)}
        entry.billed_cost = cost
        entry.usage = usage
        return True

    def _refund(self, entry: LoggedRequest) -> None:
        with self._lock:
            if entry.billed_cost:
                self.credits = round(self.credits + entry.billed_cost, 8)
            entry.billed_cost = None

    def _with_call_ids(self, reply: ScriptedReply) -> ScriptedReply:
        for call in reply.tool_calls:
            if call.id is None:
                call.id = f"call_sim_{next(self._ids)}"
        return reply

    def _completion(self, body: Mapping[str, Any], reply: ScriptedReply, entry: LoggedRequest) -> bytes:
        model = self._served_as.get(body["model"], body["model"])
        legacy = bool(body.get("functions")) and not body.get("tools")
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        calls = _wire_calls(reply, self.catalog.info(body["model"]).family)
        finish = reply.finish_reason or "stop"
        if calls and legacy:
            message["function_call"] = calls[0]["function"]
            finish = reply.finish_reason or "function_call"
        elif calls:
            message["tool_calls"] = calls
            finish = reply.finish_reason or "tool_calls"
        if reply.reasoning_content:
            message["reasoning_content"] = reply.reasoning_content
        n = int(body.get("n") or 1)
        payload = {
            "id": f"chatcmpl-sim-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_aisa_sim",
            "choices": [{"index": i, "message": message, "finish_reason": finish, "logprobs": None} for i in range(n)],
            "usage": entry.usage,
        }
        return json.dumps(payload).encode()

    def _chunks(
        self, body: Mapping[str, Any], reply: ScriptedReply, entry: LoggedRequest, include_usage: bool
    ) -> Iterator[bytes]:
        model = self._served_as.get(body["model"], body["model"])
        legacy = bool(body.get("functions")) and not body.get("tools")
        head = {
            "id": f"chatcmpl-sim-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_aisa_sim",
        }

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n"

        yield event({"role": "assistant", "content": ""})
        for piece in split_words(reply.reasoning_content or ""):
            yield event({"reasoning_content": piece})
        for piece in split_words(reply.content or ""):
            yield event({"content": piece})
        calls = _wire_calls(reply, self.catalog.info(body["model"]).family)
        finish = reply.finish_reason or "stop"
        if calls and legacy:
            call = calls[0]["function"]
            yield event({"function_call": {"name": call["name"], "arguments": ""}})
            for piece in _arg_pieces(call["arguments"]):
                yield event({"function_call": {"arguments": piece}})
            finish = reply.finish_reason or "function_call"
        elif calls:
            for index, call in enumerate(calls):
                first = {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                if "extra_content" in call:
                    first["extra_content"] = call["extra_content"]
                yield event({"tool_calls": [first]})
                for piece in _arg_pieces(call["function"]["arguments"]):
                    yield event({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            finish = reply.finish_reason or "tool_calls"
        yield event({}, finish)
        if include_usage:
            usage_event = {**head, "choices": [], "usage": entry.usage}
            yield b"data: " + json.dumps(usage_event).encode() + b"\n\n"


def _completion_tokens(reply: ScriptedReply) -> int:
    total = count_tokens(reply.content or "") + count_tokens(reply.reasoning_content or "")
    for call in reply.tool_calls:
        total += count_tokens(call.name) + count_tokens(json.dumps(call.arguments))
    return max(total, 1)


def _wire_calls(reply: ScriptedReply, family: str = "") -> list[dict[str, Any]]:
    calls = []
    for call in reply.tool_calls:
        arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        wire: dict[str, Any] = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": arguments},
        }
        if family == "gemini":
            # As Gemini's OpenAI-compatible API does: a signature that must come back with the call next turn.
            wire["extra_content"] = {"google": {"thought_signature": f"sig-{call.id}"}}
        calls.append(wire)
    return calls


def _arg_pieces(arguments: str) -> list[str]:
    size = max(1, len(arguments) // 3 + 1)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
