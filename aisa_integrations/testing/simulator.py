"""A local AIsa server for offline tests, demos and notebooks.

It speaks the documented protocol on 127.0.0.1: ``POST /v1/chat/completions`` (JSON and SSE,
``stream_options.include_usage``, tools and legacy ``functions``, vision parts, ``json_schema`` and
``json_object``), ``GET /v1/models``, the bearer-key check, ``usage.cost`` and
``usage.credits_remaining``, and the documented error bodies. Replies are deterministic and
scripted: it is a protocol double, not a model.

Gemini models are also served in Google's native format: ``POST /v1/models/{model}:generateContent``
and ``POST /v1/models/{model}:streamGenerateContent?alt=sse`` (``native_streaming=False`` answers the
streaming method 404, as a gateway without it would), with the same key, faults, scripts, billing
(``usageMetadata`` with ``cost`` and ``credits_remaining``) and request log, Google's validation
rules and Google's error body (``{"error": {"code", "message", "status"}}``).

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
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..core.catalog import ModelCatalog, default_catalog
from ._replies import (
    ScriptedReply,
    ScriptedToolCall,
    count_prompt_tokens,
    count_tokens,
    split_words,
)
from ._server import MAX_BODY_BYTES, MAX_CONNECTIONS, SimulatorServer

__all__ = ["AIsaSimulator", "Fault", "LoggedRequest", "ScriptedReply", "ScriptedToolCall", "native_view"]

SIMULATOR_KEY = "sim-key-not-secret"
_NATIVE_METHODS = (":generateContent", ":streamGenerateContent")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    raw_body: str | None = None  # answer with this body instead (a proxy's HTML page, non-chat JSON...)
    content_type: str = "application/json"  # of raw_body
    error_in_body: bool = False  # a 200 whose body is an error object
    error_event_at: int | None = None  # an in-band SSE `event: error` at this chunk, then the end
    headers: dict[str, str] | None = None  # extra response headers (a gateway that echoes things back)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            kind = _FAULT_TYPES[f.name]
            accepted = (int, float) if kind is float else kind  # a whole number of seconds is fine
            if not isinstance(value, accepted) or (kind in (int, float) and isinstance(value, bool)):
                raise ValueError(f"Fault.{f.name} must be {kind.__name__}, got {value!r}.")
            if kind in (int, float) and value < 0:
                raise ValueError(f"Fault.{f.name} must not be negative, got {value!r}.")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status (100-599), got {self.status}.")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"Fault.probability must be between 0 and 1, got {self.probability}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from JSON (the control API), checked: unknown fields and wrong types are refused."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"model"}
        if unknown:
            raise ValueError(f"Unknown fault fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: v for k, v in data.items() if k in names})


_FAULT_TYPES: dict[str, type] = {
    "status": int,
    "code": str,
    "message": str,
    "retry_after": float,
    "delay": float,
    "reset": bool,
    "stall_after": int,
    "stall_for": float,
    "drop_after": int,
    "malformed_at": int,
    "malformed_body": bool,
    "missing_done": bool,
    "chunk_delay": float,
    "times": int,
    "probability": float,
    "raw_body": str,
    "content_type": str,
    "error_in_body": bool,
    "error_event_at": int,
    "headers": dict,
}


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
    api: str = "chat"  # or "gemini-native" (``body`` is then the generateContent body)


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
        host: the interface to bind: loopback only, unless ``allow_remote=True`` (which warns: the
            simulator is a test double, anyone who can reach it can read the prompts it logged).
        max_body_bytes: larger request bodies are refused from their headers, unread.
        max_connections: open connections kept; at the cap the oldest idle one is closed.
        native_streaming: serve ``:streamGenerateContent`` (False: 404, as a gateway without it).
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
        allow_remote: bool = False,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_connections: int = MAX_CONNECTIONS,
        native_streaming: bool = True,
    ) -> None:
        if host not in _LOOPBACK:
            if not allow_remote:
                raise ValueError(
                    f"AIsaSimulator(host={host!r}) would listen beyond this machine. It is a test double whose "
                    "request log holds prompts: bind 127.0.0.1, or pass allow_remote=True if you mean it."
                )
            warnings.warn(
                f"The AIsa simulator listens on {host}: anyone who can reach it can send requests and, with "
                "its key, read the request log.",
                stacklevel=2,
            )
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.native_streaming = native_streaming
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
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> AIsaSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = SimulatorServer((self.host, self.port), max_connections=self.max_connections)
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
    @staticmethod
    def fault_from_dict(data: Mapping[str, Any]) -> Fault:
        return Fault.from_dict(data)

    @staticmethod
    def _apply_limits(reply: ScriptedReply, body: Mapping[str, Any]) -> ScriptedReply:
        return _apply_limits(reply, body)

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
        """Logged chat requests (chat completions and Gemini's native ``generateContent``; ``api`` tells
        which), optionally for one model."""
        return [
            r
            for r in list(self.requests)
            if (r.path.endswith("/chat/completions") or r.path.endswith(_NATIVE_METHODS))
            and (model is None or r.model == model)
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

    def _bill_part(self, entry: LoggedRequest, sent: int, total: int) -> None:
        """A stream the client left after ``sent`` of ``total`` events: bill the prompt and the share
        of the answer generated by then (nothing if no content had gone out)."""
        usage = entry.usage
        if not usage or sent <= 1 or total <= 1 or entry.billed_cost is None:
            self._refund(entry)
            return
        completion = round(usage["completion_tokens"] * min(1.0, (sent - 1) / max(1, total - 2)))
        info = self.catalog.info(entry.model or "")
        cost = info.estimate_cost(usage["prompt_tokens"], completion)
        cost = round(cost, 8) if cost is not None else 0.0
        with self._lock:
            self.credits = round(self.credits + entry.billed_cost - cost, 8)
        entry.billed_cost = cost
        entry.usage = {**usage, "completion_tokens": completion, "total_tokens": usage["prompt_tokens"] + completion}

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

    # -- Gemini's native format ---------------------------------------------------------------
    def _native_head(self, model: str) -> dict[str, Any]:
        return {"modelVersion": self._served_as.get(model, model), "responseId": f"sim-{next(self._ids)}"}

    def _generate_content(self, view: Mapping[str, Any], reply: ScriptedReply, entry: LoggedRequest) -> bytes:
        """A ``generateContent`` answer (``view`` is the request in chat terms)."""
        parts = _native_parts(reply)
        n = int(view.get("n") or 1)
        candidates = [
            {"content": {"role": "model", "parts": parts}, "finishReason": _native_finish(reply), "index": i}
            for i in range(n)
        ]
        payload = {"candidates": candidates, "usageMetadata": _usage_metadata(entry.usage)}
        payload.update(self._native_head(view["model"]))
        return json.dumps(payload).encode()

    def _native_events(self, view: Mapping[str, Any], reply: ScriptedReply, entry: LoggedRequest) -> list[bytes]:
        """The ``:streamGenerateContent?alt=sse`` events: a thought or text piece each, the calls together;
        the last carries ``finishReason`` and the final ``usageMetadata`` (the others a running count)."""
        head = self._native_head(view["model"])
        n = int(view.get("n") or 1)
        pieces: list[list[dict[str, Any]]] = [
            [{"text": piece, "thought": True}] for piece in split_words(reply.reasoning_content or "")
        ]
        pieces += [[{"text": piece}] for piece in split_words(reply.content or "")]
        calls = [p for p in _native_parts(reply) if "functionCall" in p]
        if calls:
            pieces.append(calls)
        if not pieces:
            pieces.append([{"text": ""}])
        usage = _usage_metadata(entry.usage)
        running = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
        events = []
        for k, parts in enumerate(pieces):
            last = k == len(pieces) - 1
            candidates = []
            for i in range(n):
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": i}
                if last:
                    candidate["finishReason"] = _native_finish(reply)
                candidates.append(candidate)
            event = {"candidates": candidates, "usageMetadata": usage if last else running, **head}
            events.append(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
        return events


def native_view(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """A ``generateContent`` body in chat-completions terms (for the scripted replies and the token
    count): written from Google's format, independently of the client's translation."""
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction") or {}
    texts = [str(p.get("text", "")) for p in system.get("parts") or () if isinstance(p, Mapping)]
    if texts:
        messages.append({"role": "system", "content": "\n".join(texts)})
    calls_seen = itertools.count(1)
    for content in body.get("contents") or ():
        parts = [p for p in content.get("parts") or () if isinstance(p, Mapping)]
        if content.get("role") == "model":
            text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            calls = [
                {
                    "id": f"native_{next(calls_seen)}",
                    "type": "function",
                    "function": {
                        "name": p["functionCall"]["name"],
                        "arguments": json.dumps(p["functionCall"].get("args") or {}),
                    },
                }
                for p in parts
                if "functionCall" in p
            ]
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
            continue
        user: list[dict[str, Any]] = []
        for part in parts:
            if "functionResponse" in part:
                response = part["functionResponse"].get("response") or {}
                result = response.get("result", response) if len(response) == 1 else response
                text = result if isinstance(result, str) else json.dumps(result)
                messages.append({"role": "tool", "tool_call_id": part["functionResponse"]["name"], "content": text})
            elif isinstance(part.get("text"), str):
                user.append({"type": "text", "text": part["text"]})
            elif isinstance(part.get("inlineData"), Mapping):
                data = part["inlineData"]
                url = f"data:{data.get('mimeType')};base64,{data.get('data')}"
                user.append({"type": "image_url", "image_url": {"url": url}})
            elif isinstance(part.get("fileData"), Mapping):
                user.append({"type": "image_url", "image_url": {"url": part["fileData"].get("fileUri")}})
        if user:
            messages.append({"role": "user", "content": user})
    view: dict[str, Any] = {"model": model, "messages": messages}
    functions = [
        {"type": "function", "function": dict(declaration)}
        for tool in body.get("tools") or ()
        for declaration in tool.get("functionDeclarations") or ()
    ]
    if functions:
        view["tools"] = functions
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode, allowed = calling.get("mode"), calling.get("allowedFunctionNames") or []
    if mode == "NONE":
        view["tool_choice"] = "none"
    elif mode == "ANY":
        view["tool_choice"] = (
            {"type": "function", "function": {"name": allowed[0]}} if len(allowed) == 1 else "required"
        )
    config = body.get("generationConfig") or {}
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema")
        view["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
            if schema
            else {"type": "json_object"}
        )
    for native, chat in (("maxOutputTokens", "max_tokens"), ("stopSequences", "stop"), ("candidateCount", "n")):
        if config.get(native) is not None:
            view[chat] = config[native]
    return view


def _native_parts(reply: ScriptedReply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.reasoning_content:
        parts.append({"text": reply.reasoning_content, "thought": True})
    if reply.content:
        parts.append({"text": reply.content})
    for k, call in enumerate(reply.tool_calls):
        arguments = call.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = {"input": arguments}
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": arguments}}
        if k == 0:  # as Gemini does: the first call of a turn carries the turn's signature
            part["thoughtSignature"] = f"sig-{call.id}"
        parts.append(part)
    return parts


_NATIVE_FINISH = {"length": "MAX_TOKENS", "content_filter": "SAFETY"}


def _native_finish(reply: ScriptedReply) -> str:
    reason = reply.finish_reason
    if reason and reason.isupper():
        return reason  # a native reason scripted as it is (RECITATION, MALFORMED_FUNCTION_CALL, ...)
    return _NATIVE_FINISH.get(reason or "", "STOP")


def _usage_metadata(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """AIsa's billing in Gemini's terms (``candidatesTokenCount`` leaves the thoughts out)."""
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    thoughts = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    metadata: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - (thoughts or 0),
        "totalTokenCount": usage.get("total_tokens", prompt + completion),
    }
    if thoughts:
        metadata["thoughtsTokenCount"] = thoughts
    for key in ("cost", "credits_remaining"):
        if usage.get(key) is not None:
            metadata[key] = usage[key]
    return metadata


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
