"""The simulator's HTTP side: a small, well-behaved local service.

- The key is checked before a body is read or logged; bodies are refused from their
  ``Content-Length`` (above ``max_body_bytes``) without being read.
- Sockets time out when idle, and the number of open connections is capped: at the cap, the oldest
  idle connection is closed to make room, so idle connections can never lock a client out.
- The control API (``/_simulator/...``) and the request log need the key too, refuse cross-origin
  requests (any ``Origin`` header) and bodies that are not ``application/json``, and validate fault
  specs before taking them.
- Gemini models are served in Google's native format too (``/v1/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse``); every error on those paths is in Google's error body.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._replies import ScriptedReply, ScriptedToolCall, compose_reply, count_prompt_tokens
from ._validation import GOOGLE_STATUS, validate_chat, validate_generate_content

if TYPE_CHECKING:
    from .simulator import AIsaSimulator, Fault, LoggedRequest

__all__ = ["MAX_BODY_BYTES", "MAX_CONNECTIONS", "SimulatorServer"]

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CONNECTIONS = 256
IDLE_TIMEOUT = 30.0
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")
_NATIVE_PATH = re.compile(r"^(?:/v1)?/models/(?P<model>[^/]+):(?P<method>generateContent|streamGenerateContent)$")

DEFAULT_CODES = {
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
DEFAULT_MESSAGES = {
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


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def google_error_body(status: int, message: str, google_status: str | None = None) -> bytes:
    """Google's error body: the HTTP status as ``code``, the RPC status name as ``status``."""
    name = google_status or GOOGLE_STATUS.get(status, "UNKNOWN")
    return json.dumps({"error": {"code": status, "message": message, "status": name}}).encode()


class _Refused(Exception):
    """The request was answered with an error already."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT  # an idle or trickling connection is closed after this long
    server: SimulatorServer
    _native_format = False  # this request is on a Gemini-native path: errors in Google's format

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def setup(self) -> None:
        super().setup()
        # As production servers do: without TCP_NODELAY, a body written after its headers waits for the
        # client's delayed ACK (~40 ms), which would swamp every latency figure measured against us.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._connected()

    # -- plumbing -------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None, content_type: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", self.server.sim._next_request_id())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error_payload(self, status: int, code: str | None, message: str, *, keep_code: bool = False) -> bytes:
        if self._native_format:
            # Google names the error by its RPC status; a code given on purpose (a fault's) is kept there.
            google = code if keep_code or (code and code.isupper()) else None
            return google_error_body(status, message, google)
        return error_body(code or DEFAULT_CODES.get(status, "server_error"), message)

    def send_error_body(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        keep_code: bool = False,
    ) -> None:
        self._send(status, self._error_payload(status, code, message, keep_code=keep_code), headers)

    def _refuse(self, status: int, code: str, message: str) -> _Refused:
        # The body may be unread: the connection cannot carry another request.
        self.close_connection = True
        self.send_error_body(status, code, message, {"Connection": "close"})
        return _Refused()

    def _read_body(self, *, json_only: bool = False) -> Any:
        """The request body as JSON, refused from its headers when too large (never read)."""
        if json_only and "application/json" not in (self.headers.get("Content-Type") or ""):
            raise self._refuse(415, "unsupported_media_type", "The control API takes application/json bodies only.")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise self._refuse(411, "length_required", "Send a Content-Length; chunked request bodies are refused.")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise self._refuse(400, "invalid_request", "Content-Length is not a number.") from None
        limit = self.server.sim.max_body_bytes
        if length > limit:
            raise self._refuse(413, "request_too_large", f"The body is {length} bytes; the limit is {limit}.")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise self._refuse(400, "invalid_json", "The request body is not valid JSON.") from None

    def _authorised(self) -> bool:
        sim = self.server.sim
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        return bool(token) and (sim.api_key is None or token == sim.api_key)

    def reset_connection(self) -> None:
        # SO_LINGER 0: the client sees a reset, not an orderly close.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def client_gone(self) -> bool:
        """Whether the client closed its end (as a gateway notices, and stops generating)."""
        import select

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def hang_up(self) -> None:
        # An orderly close mid-body: what was sent arrives, the chunked body stays incomplete.
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # -- routes ---------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self.server.busy(self.connection, True)
        try:
            self._route(method)
        except _Refused:
            pass
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (its timeout); nothing left to answer
        finally:
            self.server.busy(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _route(self, method: str) -> None:
        sim = self.server.sim
        path = self.path.split("?", 1)[0].rstrip("/")
        native = _NATIVE_PATH.match(path) if method == "POST" else None
        self._native_format = native is not None
        if path.startswith("/_simulator/"):
            self._control(method, path)
            return
        known = (method == "POST" and path in _CHAT_PATHS) or (method == "GET" and path in _MODELS_PATHS)
        known = known or native is not None
        if not self._authorised():
            # Checked before the body is read or logged: nothing of an unauthorised request is kept.
            entry = sim._log(method, path, dict(self.headers), None, unquote(native["model"]) if native else None)
            entry.status = 401
            if native is not None:
                entry.api = "gemini-native"
            raise self._refuse(401, "invalid_api_key", "Invalid or missing API key.")
        if not known:
            raise self._refuse(404, "not_found", f"No route for {method} {path}")
        if method == "GET":
            entry = sim._log(method, path, dict(self.headers), None, None)
            data = [
                {"id": mid, "object": "model", "created": 1700000000, "owned_by": sim.catalog.info(mid).developer}
                for mid in sim.model_ids()
            ]
            entry.status = 200
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
            return
        body = self._read_body()
        if native is not None:
            entry = sim._log("POST", path, dict(self.headers), body, unquote(native["model"]))
            entry.api = "gemini-native"
            self._native(body, entry, stream=native["method"] == "streamGenerateContent")
            return
        model = body.get("model") if isinstance(body, Mapping) else None
        entry = sim._log("POST", path, dict(self.headers), body, model if isinstance(model, str) else None)
        self._chat(body, entry)

    def _control(self, method: str, path: str) -> None:
        sim = self.server.sim
        if self.headers.get("Origin"):
            raise self._refuse(403, "cross_origin", "The control API refuses cross-origin requests.")
        if not self._authorised():
            raise self._refuse(401, "invalid_api_key", "The control API needs the simulator's key (Bearer).")
        body = self._read_body(json_only=True) if method == "POST" else None
        try:
            if path == "/_simulator/faults" and method == "POST":
                data = dict(body or {})
                model = data.pop("model", "*")
                sim.inject(model, sim.fault_from_dict(data))
            elif path == "/_simulator/faults" and method == "DELETE":
                sim.clear_faults()
            elif path == "/_simulator/latency" and method == "POST":
                data = dict(body or {})
                sim.set_latency(float(data.get("seconds", 0.0)), model=data.get("model"))
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
                raise self._refuse(404, "not_found", f"No simulator control route {method} {path}")
        except (TypeError, ValueError) as exc:
            raise self._refuse(400, "invalid_request", str(exc)) from None
        self._send(200, b'{"ok": true}')

    # -- chat -----------------------------------------------------------------------------
    def _prelude(self, model: Any, entry: LoggedRequest) -> tuple[Fault | None, bool]:
        """The fault for this request (if any) and the latency; (fault, False) if the client left meanwhile."""
        sim = self.server.sim
        fault = sim._take_fault(model) if isinstance(model, str) else None
        if fault is not None:
            entry.fault = asdict(fault)
        latency = sim.latency_for(model)
        if latency:
            sim._sleep(latency)
        if fault and fault.delay:
            sim._sleep(fault.delay)
        if (latency or (fault and fault.delay)) and self.client_gone():
            entry.status = 499  # the client gave up while we were "thinking": nothing generated, nothing billed
            self.close_connection = True
            return fault, False
        return fault, True

    def _chat(self, body: Any, entry: LoggedRequest) -> None:
        sim = self.server.sim
        model = body.get("model") if isinstance(body, Mapping) else None
        fault, present = self._prelude(model, entry)
        if not present or (fault and self._fault_answer(fault, entry)):
            return
        problem = validate_chat(body, sim.catalog, sim.serves, count_prompt_tokens)
        if problem:
            entry.status = problem[0]
            self.send_error_body(*problem)
            return
        self._answer(body, entry, fault, stream=bool(body.get("stream")))

    def _native(self, body: Any, entry: LoggedRequest, *, stream: bool) -> None:
        """Gemini's ``generateContent`` / ``streamGenerateContent``: Gemini models only, Google's rules."""
        from .simulator import native_view

        sim = self.server.sim
        model = entry.model or ""
        if stream and not sim.native_streaming:
            entry.status = 404
            self.send_error_body(404, "NOT_FOUND", f"Method not found: models/{model}:streamGenerateContent.")
            return
        fault, present = self._prelude(model, entry)
        if not present or (fault and self._fault_answer(fault, entry)):
            return
        if not sim.serves(model) or sim.catalog.info(model).family != "gemini":
            entry.status = 404
            self.send_error_body(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
            )
            return
        problem = validate_generate_content(
            body, model, sim.catalog.info(model), lambda: count_prompt_tokens(native_view(body, model))
        )
        if problem:
            entry.status = problem[0]
            self.send_error_body(*problem)
            return
        self._answer(native_view(body, model), entry, fault, stream=stream, native=True)

    def _answer(
        self, body: Mapping[str, Any], entry: LoggedRequest, fault: Fault | None, *, stream: bool, native: bool = False
    ) -> None:
        """Generate, bill and send the answer (``body`` in chat terms; ``native``: in Gemini's format)."""
        sim = self.server.sim
        model = body["model"]
        info = sim.catalog.info(model)
        reply = sim._next_script(model) or compose_reply(body, model=model, reasoning=bool(info.reasoning))
        reply = sim._with_call_ids(sim._apply_limits(reply, body))
        if not sim._charge(info, body, reply, entry):
            entry.status = 402
            self.send_error_body(402, "insufficient_credits", "Insufficient credits. Add credits to continue.")
            return
        entry.status = 200
        # Billing follows the gateway's: an answer the server itself cut or garbled is refunded; a stream
        # the client walked away from is billed for the prompt and the part generated before it left
        # (the request log's billed_cost shows both); a plain answer nobody received is refunded.
        self._events_sent = self._events_total = 0
        try:
            if stream:
                entry.stream = True
                if native:
                    events = sim._native_events(body, reply, entry)
                else:
                    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    events = list(sim._chunks(body, reply, entry, include_usage))
                delivered = self._stream(events, fault)
            else:
                render = sim._generate_content if native else sim._completion
                payload = render(body, reply, entry)
                delivered = not (fault and fault.malformed_body)
                headers = dict(fault.headers or {}) if fault else None
                self._send(200, payload if delivered else payload[: max(1, len(payload) // 2)], headers)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            garbled = fault is not None and (
                fault.malformed_at is not None or fault.error_event_at is not None or fault.drop_after is not None
            )
            if entry.stream and not garbled:  # the client left a sound answer: it pays for what it got
                sim._bill_part(entry, self._events_sent, self._events_total)
            else:
                sim._refund(entry)
            raise
        if delivered == "abandoned":
            sim._bill_part(entry, self._events_sent, self._events_total)
        elif not delivered:
            sim._refund(entry)

    def _fault_answer(self, fault: Fault, entry: LoggedRequest) -> bool:
        """Answer with the fault instead of the reply, when the fault says so."""
        headers = dict(fault.headers or {})
        if fault.reset:
            entry.status = 0
            self.reset_connection()
            return True
        if fault.raw_body is not None:
            entry.status = fault.status or 200
            self._send(entry.status, fault.raw_body.encode(), headers, content_type=fault.content_type)
            return True
        if fault.status:
            entry.status = fault.status
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            code = fault.code or DEFAULT_CODES.get(fault.status, "server_error")
            message = fault.message or DEFAULT_MESSAGES.get(fault.status, "Simulated failure.")
            self.send_error_body(fault.status, code, message, headers, keep_code=fault.code is not None)
            return True
        if fault.error_in_body:
            entry.status = 200
            message = fault.message or "Simulated error in a 200 body."
            if self._native_format:
                payload = google_error_body(500, message, fault.code)
            else:
                payload = error_body(fault.code or "server_error", message)
            self._send(200, payload, headers)
            return True
        return False

    def _stream(self, events: list[bytes], fault: Fault | None) -> bool | str:
        """Write the SSE answer; False if it was deliberately not delivered whole, "abandoned" if the
        client left during it (``_events_sent`` of ``_events_total`` went out).

        Chat completions end with ``[DONE]``; Gemini's stream just ends (``missing_done`` drops its
        last event, the one with ``finishReason``), and its in-band error is a data event."""
        native = self._native_format
        sim = self.server.sim
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", sim._next_request_id())
        for k, v in ((fault.headers or {}) if fault else {}).items():
            self.send_header(k, v)
        self.end_headers()
        if native and fault is not None and fault.missing_done and len(events) > 1:
            events = events[:-1]
        self._events_total = len(events)
        write = self.wfile.write
        for index, event in enumerate(events):
            self._events_sent = index
            if fault is not None:
                if fault.drop_after is not None and index >= fault.drop_after:
                    self.hang_up()
                    return False
                if fault.error_event_at is not None and index == fault.error_event_at:
                    message = fault.message or "Simulated in-band error."
                    if native:
                        event = b"data: " + google_error_body(500, message, fault.code) + b"\r\n\r\n"
                    else:
                        payload = error_body(fault.code or "server_error", message)
                        event = b"event: error\ndata: " + payload + b"\n\n"
                    write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
                    self.wfile.flush()
                    return False
                if fault.stall_after is not None and index == fault.stall_after:
                    self.wfile.flush()
                    sim._sleep(fault.stall_for)
                    if self.client_gone():
                        self.close_connection = True
                        return "abandoned"  # mid-answer: the rest is never generated, what was is billed
                if fault.malformed_at is not None and index == fault.malformed_at:
                    if native:
                        event = b'data: {"candidates": [{"content": {"parts": [{"text": \r\n\r\n'
                    else:
                        event = b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n'
                if fault.chunk_delay:
                    sim._sleep(fault.chunk_delay)
            write(b"%x\r\n%s\r\n" % (len(event), event))
            if fault is not None and (fault.chunk_delay or fault.stall_after is not None):
                self.wfile.flush()
        if not native and not (fault and fault.missing_done):
            done = b"data: [DONE]\n\n"
            write(b"%x\r\n%s\r\n" % (len(done), done))
        write(b"0\r\n\r\n")
        self.wfile.flush()
        return not (fault and fault.malformed_at is not None and fault.malformed_at < len(events))


class SimulatorServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on open connections (the oldest idle one makes room)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sim: AIsaSimulator

    def __init__(self, address: tuple[str, int], *, max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(address, _Handler)
        self.max_connections = max_connections
        self._open: OrderedDict[Any, bool] = OrderedDict()  # socket -> busy with a request
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            if len(self._open) >= self.max_connections:
                idle = next((s for s, busy in self._open.items() if not busy), None)
                if idle is not None:
                    del self._open[idle]
                    with contextlib.suppress(OSError):
                        idle.shutdown(socket.SHUT_RDWR)  # its thread sees the end and exits
            self._open[request] = False
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def busy(self, request: Any, value: bool) -> None:
        with self._open_lock:
            if request in self._open:
                self._open[request] = value
                if not value:
                    self._open.move_to_end(request)  # recently active: the last to be made room for

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer is what fault tests do; anything else is worth a line.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | OSError):
            return
        super().handle_error(request, client_address)
