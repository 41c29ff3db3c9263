"""Model fallback, written once for every adapter.

The policy classifies each failure and decides: retry the same model, fail over to the next, or
raise. Adapters supply the candidates and a function that tries one of them (plain, async, or as
a stream of chunks); this module owns the loop, the waits, the first-token and stall timeouts,
the circuit breakers and the record of every attempt.

    429                    → honour Retry-After up to a cap (else backoff with jitter), one retry, fail over
    5xx / reset / cut      → one retry on the same model, then fail over
    timeout / no first token / stall before content → fail over at once (a silent model is not retried)
    context_length_exceeded → no retry; next model with a larger context window
    content_policy         → raise (no fail-over unless asked for)
    401 / 402              → raise at once (they fail every model)
    404                    → fail over, with a warning
    other 4xx              → raise (the request is wrong)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import random
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar

from . import errors as E

__all__ = [
    "AllModelsFailedError",
    "AttemptRecord",
    "Candidate",
    "CircuitBreaker",
    "FallbackPolicy",
    "FallbackReport",
    "FallbackRunner",
    "FirstTokenTimeoutError",
    "breakers",
    "classify",
]

T = TypeVar("T")
C = TypeVar("C")

FailureClass = Literal[
    "rate_limit",
    "server",
    "connection",
    "incomplete",
    "timeout",
    "context_length",
    "content_policy",
    "auth",
    "credits",
    "not_found",
    "bad_request",
    "other",
]

DEFAULT_FALLBACK_ON: frozenset[str] = frozenset(
    {"rate_limit", "server", "connection", "incomplete", "timeout", "context_length", "not_found"}
)
# Failures that say something about the model's health (and so count toward its circuit breaker).
_UNHEALTHY: frozenset[str] = frozenset({"rate_limit", "server", "connection", "incomplete", "timeout", "not_found"})


class FirstTokenTimeoutError(E.APITimeoutError):
    """The model produced no content within ``first_token_timeout``."""


class AllModelsFailedError(E.AIsaAPIError):
    """Every candidate failed or was skipped; ``attempts`` lists them all, the primary's first."""

    attempts: list[AttemptRecord]


def classify(exc: BaseException) -> FailureClass:
    """Which kind of failure an exception is, for the policy."""
    if isinstance(exc, E.ContextLengthExceededError):
        return "context_length"
    if isinstance(exc, E.ContentPolicyError):
        return "content_policy"
    if isinstance(exc, E.RateLimitError):
        return "rate_limit"
    if isinstance(exc, E.AuthenticationError | E.PermissionDeniedError):
        return "auth"
    if isinstance(exc, E.InsufficientCreditsError):
        return "credits"
    if isinstance(exc, E.ModelNotFoundError):
        return "not_found"
    if isinstance(exc, E.ServerError):
        return "server"
    if isinstance(exc, E.BadRequestError | E.InvalidRequestError):
        return "bad_request"
    if isinstance(exc, E.APITimeoutError | E.StreamStalledError):
        return "timeout"
    if isinstance(exc, E.StreamInterruptedError | E.MalformedResponseError):
        return "incomplete"
    if isinstance(exc, E.APIConnectionError):
        return "connection"
    if isinstance(exc, E.AIsaStatusError):
        return "server" if (exc.status_code or 0) >= 500 else "bad_request"
    return "other"


@dataclass(frozen=True)
class FallbackPolicy:
    """How failures are treated. Every timing is in seconds.

    >>> FallbackPolicy(first_token_timeout=5, fallback_on={"server", "timeout"}).fallback_on
    frozenset({'server', 'timeout'})
    """

    fallback_on: frozenset[str] = DEFAULT_FALLBACK_ON
    rate_limit_retries: int = 1
    max_retry_after: float = 5.0
    rate_limit_min_interval: float = 1.5
    backoff_initial: float = 0.5
    backoff_max: float = 4.0
    server_retries: int = 1
    first_token_timeout: float | None = 10.0
    stall_timeout: float | None = 30.0
    circuit_breaker: bool = True
    failure_threshold: int = 3
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback_on", frozenset(self.fallback_on))
        unknown = set(self.fallback_on) - set(FailureClass.__args__)  # type: ignore[attr-defined]
        if unknown:
            raise E.ConfigurationError(
                f"Unknown failure classes in fallback_on: {sorted(unknown)}; known: {sorted(FailureClass.__args__)}."  # type: ignore[attr-defined]
            )

    def retry_wait(self, failure: str, exc: BaseException, retry_number: int) -> float | None:
        """Seconds to wait before retrying the same model, or None to move on."""
        if failure == "rate_limit" and retry_number < self.rate_limit_retries:
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                if retry_after > self.max_retry_after:
                    return None  # the server asks for longer than we will wait here: fail over
                # Never hammer: a retry waits at least rate_limit_min_interval (2 attempts in 1.5 s at most).
                return max(retry_after, self.rate_limit_min_interval)
            backoff = min(self.backoff_initial * (2**retry_number), self.backoff_max)
            return max(self.rate_limit_min_interval, backoff * (1 + random.random()))
        if failure in ("server", "connection", "incomplete") and retry_number < self.server_retries:
            return min(self.backoff_initial * (2**retry_number), self.backoff_max) * random.uniform(0.1, 0.3)
        return None


class CircuitBreaker:
    """Per (base URL, model): open after consecutive failures, one probe after the cooldown.

    Thread- and task-safe (every operation is a short critical section, never awaited inside).
    """

    def __init__(self, threshold: int = 3, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.open_until: float | None = None
        self.probing = False
        self.opened_count = 0

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        with self._lock:
            return self._state()

    def _state(self) -> Literal["closed", "open", "half_open"]:
        if self.open_until is None:
            return "closed"
        return "open" if self._clock() < self.open_until else "half_open"

    def allow(self) -> bool:
        """May a request go to this model now? After the cooldown, exactly one probe is let through."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "open" or self.probing:
                return False
            self.probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.open_until = None
            self.probing = False

    def failure(self, retry_after: float | None = None) -> None:
        with self._lock:
            self.failures += 1
            if self.probing or self.failures >= self.threshold:
                self.open_until = self._clock() + max(self.cooldown, retry_after or 0.0)
                self.opened_count += 1
            self.probing = False

    def release_probe(self) -> None:
        """The probe ended in a failure that says nothing about the model's health (a bad request)."""
        with self._lock:
            self.probing = False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            remaining = max(0.0, self.open_until - self._clock()) if self.open_until is not None else 0.0
            return {
                "state": self._state(),
                "consecutive_failures": self.failures,
                "reopens_in": remaining,
                "times_opened": self.opened_count,
            }


class _Breakers:
    """The process-wide circuit breakers, shared by every runnable and LLM."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, base_url: str, model: str, policy: FallbackPolicy) -> CircuitBreaker:
        key = (base_url, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.setdefault(key, CircuitBreaker(policy.failure_threshold, policy.cooldown))
        return breaker

    def state(self) -> dict[str, dict[str, Any]]:
        """Every breaker's state, keyed ``"base_url model"``."""
        return {f"{url} {model}": b.snapshot() for (url, model), b in list(self._breakers.items())}

    def reset(self) -> None:
        with self._lock:
            self._breakers.clear()


breakers = _Breakers()


@dataclass
class Candidate(Generic[C]):
    """One model to try: its id, where it lives, and the adapter's handle for it."""

    model: str
    base_url: str
    target: C
    context_window: int | None = None
    accepts_prefill: bool = False


@dataclass
class AttemptRecord:
    model: str
    outcome: Literal["ok", "error", "skipped"]
    error: str | None = None
    error_type: str | None = None
    failure: str | None = None
    status: int | None = None
    latency_ms: float = 0.0
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FallbackReport:
    requested_model: str
    served_model: str | None = None
    fallback_index: int | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def total_cost(self) -> float:
        """The sum of what every billed attempt reported."""
        return sum(a.cost for a in self.attempts if a.cost is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested_model": self.requested_model,
            "served_model": self.served_model,
            "fallback_index": self.fallback_index,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def _all_failed(report: FallbackReport, first: BaseException | None) -> AllModelsFailedError:
    lines = [
        f"{i + 1}. {a.model}: {a.outcome}" + (f" — {a.error_type}: {a.error}" if a.error else "")
        for i, a in enumerate(report.attempts)
    ]
    err = AllModelsFailedError(
        "Every model failed:\n" + "\n".join(lines),
        model=report.requested_model,
        status_code=getattr(first, "status_code", None),
        code=getattr(first, "code", None),
    )
    err.attempts = report.attempts
    return err


class _Stop(Exception):
    """Internal: raise this error now (wrapped so the loop can tell it from a failure)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Attempts:
    """The loop's bookkeeping, shared by the sync, async and streaming runners."""

    def __init__(self, candidates: list[Candidate[Any]], policy: FallbackPolicy) -> None:
        if not candidates:
            raise E.ConfigurationError("A fallback needs at least one model.")
        self.candidates = candidates
        self.policy = policy
        self.report = FallbackReport(requested_model=candidates[0].model)
        self.first_error: BaseException | None = None
        self.min_context: int | None = None

    def eligible(self, index: int, cand: Candidate[Any]) -> tuple[bool, CircuitBreaker | None]:
        if self.min_context is not None and (cand.context_window or 0) <= self.min_context:
            self.report.attempts.append(
                AttemptRecord(
                    cand.model,
                    "skipped",
                    error=f"context window {cand.context_window} is not larger than {self.min_context}",
                    failure="context_length",
                )
            )
            return False, None
        breaker = breakers.get(cand.base_url, cand.model, self.policy) if self.policy.circuit_breaker else None
        if breaker is not None and not breaker.allow():
            self.report.attempts.append(
                AttemptRecord(cand.model, "skipped", error="circuit open", failure="circuit_open")
            )
            return False, None
        return True, breaker

    def succeeded(
        self, index: int, cand: Candidate[Any], breaker: CircuitBreaker | None, started: float, cost: float | None
    ) -> None:
        if breaker is not None:
            breaker.success()
        self.report.attempts.append(
            AttemptRecord(cand.model, "ok", latency_ms=(time.perf_counter() - started) * 1e3, cost=cost)
        )
        self.report.served_model = cand.model
        self.report.fallback_index = index

    def failed(
        self,
        cand: Candidate[Any],
        breaker: CircuitBreaker | None,
        exc: BaseException,
        started: float,
        retry_number: int,
        cost: float | None = None,
    ) -> float | None:
        """Record a failure; return seconds to wait before retrying the same model, or None to move on.

        Raises _Stop when the error must propagate.
        """
        failure = classify(exc)
        self.report.attempts.append(
            AttemptRecord(
                cand.model,
                "error",
                error=getattr(exc, "server_message", None) or str(exc).split("\n")[0][:300],
                error_type=type(exc).__name__,
                failure=failure,
                status=getattr(exc, "status_code", None),
                latency_ms=(time.perf_counter() - started) * 1e3,
                cost=cost,
            )
        )
        if self.first_error is None:
            self.first_error = exc
        if breaker is not None and failure in _UNHEALTHY:
            breaker.failure(getattr(exc, "retry_after", None))
        elif breaker is not None:
            breaker.release_probe()
        if failure not in self.policy.fallback_on:
            raise _Stop(exc)
        if failure == "not_found":
            warnings.warn(f"Model {cand.model!r} was not found at the gateway; falling back. {exc}", stacklevel=4)
        if failure == "context_length":
            self.min_context = max(self.min_context or 0, cand.context_window or 0)
            return None
        return self.policy.retry_wait(failure, exc, retry_number)

    def exhausted(self) -> AllModelsFailedError:
        err = _all_failed(self.report, self.first_error)
        if self.first_error is not None:
            err.__cause__ = self.first_error
        return err


class FallbackRunner:
    """Runs one request over candidates under a policy.

    ``call(candidate)`` tries one model and returns its result; ``cost_of(result)`` reads the cost it
    reported. For streams, ``open_stream(candidate, prefill)`` returns the model's chunk iterator and
    ``is_content(chunk)`` says whether a chunk carries content (text or a tool call).
    """

    def __init__(
        self,
        candidates: Iterable[Candidate[Any]],
        policy: FallbackPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.candidates = list(candidates)
        self.policy = policy or FallbackPolicy()
        self._sleep = sleep
        self._asleep = asleep

    # -- plain calls -----------------------------------------------------------------------
    def run(
        self, call: Callable[[Candidate[Any]], T], cost_of: Callable[[T], float | None] = lambda _: None
    ) -> tuple[T, FallbackReport]:
        book = _Attempts(self.candidates, self.policy)
        for index, cand in enumerate(self.candidates):
            ok, breaker = book.eligible(index, cand)
            if not ok:
                continue
            retry = 0
            while True:
                started = time.perf_counter()
                try:
                    result = call(cand)
                except E.AIsaError as exc:
                    try:
                        wait = book.failed(cand, breaker, exc, started, retry)
                    except _Stop as stop:
                        stop.exc.fallback_report = book.report  # type: ignore[attr-defined]
                        raise stop.exc from None
                    if wait is None or _opened(breaker):
                        break
                    self._sleep(wait)
                    retry += 1
                    continue
                book.succeeded(index, cand, breaker, started, cost_of(result))
                return result, book.report
        raise book.exhausted()

    async def arun(
        self, call: Callable[[Candidate[Any]], Awaitable[T]], cost_of: Callable[[T], float | None] = lambda _: None
    ) -> tuple[T, FallbackReport]:
        book = _Attempts(self.candidates, self.policy)
        for index, cand in enumerate(self.candidates):
            ok, breaker = book.eligible(index, cand)
            if not ok:
                continue
            retry = 0
            while True:
                started = time.perf_counter()
                try:
                    result = await call(cand)
                except E.AIsaError as exc:
                    try:
                        wait = book.failed(cand, breaker, exc, started, retry)
                    except _Stop as stop:
                        stop.exc.fallback_report = book.report  # type: ignore[attr-defined]
                        raise stop.exc from None
                    if wait is None or _opened(breaker):
                        break
                    await self._asleep(wait)
                    retry += 1
                    continue
                book.succeeded(index, cand, breaker, started, cost_of(result))
                return result, book.report
        raise book.exhausted()

    # -- streams ---------------------------------------------------------------------------
    def stream(
        self,
        open_stream: Callable[[Candidate[Any], str | None], Iterator[T]],
        *,
        is_content: Callable[[T], bool],
        text_of: Callable[[T], str] = lambda _: "",
        cost_of: Callable[[T], float | None] = lambda _: None,
        mid_stream: Literal["raise", "continue"] = "raise",
        report: FallbackReport | None = None,
    ) -> Iterator[T]:
        """Yield one model's chunks; fail over transparently until the first content chunk."""
        book = _Attempts(self.candidates, self.policy)
        if report is not None:
            book.report = report
            report.requested_model = self.candidates[0].model
        emitted: list[str] = []
        prefill: str | None = None
        for index, cand in enumerate(self.candidates):
            if prefill is not None and not cand.accepts_prefill:
                book.report.attempts.append(
                    AttemptRecord(cand.model, "skipped", error="does not accept an assistant prefill")
                )
                continue
            ok, breaker = book.eligible(index, cand)
            if not ok:
                continue
            retry = 0
            while True:
                started = time.perf_counter()
                gate = _ContentGate(is_content, text_of, cost_of, emitted)
                try:
                    for chunk in _timed(open_stream(cand, prefill), self.policy, is_content):
                        yield from gate.feed(chunk)
                    yield from gate.flush()
                except E.AIsaError as exc:
                    cost = gate.cost
                    if gate.content_seen:
                        self._mid_stream_failure(book, cand, breaker, exc, started, cost, emitted, mid_stream)
                        prefill = "".join(emitted)
                        break
                    try:
                        wait = book.failed(cand, breaker, exc, started, retry, cost)
                    except _Stop as stop:
                        stop.exc.fallback_report = book.report  # type: ignore[attr-defined]
                        raise stop.exc from None
                    if wait is None or _opened(breaker):
                        break
                    self._sleep(wait)
                    retry += 1
                    continue
                book.succeeded(index, cand, breaker, started, gate.cost)
                return
        raise book.exhausted()

    async def astream(
        self,
        open_stream: Callable[[Candidate[Any], str | None], AsyncIterator[T]],
        *,
        is_content: Callable[[T], bool],
        text_of: Callable[[T], str] = lambda _: "",
        cost_of: Callable[[T], float | None] = lambda _: None,
        mid_stream: Literal["raise", "continue"] = "raise",
        report: FallbackReport | None = None,
    ) -> AsyncIterator[T]:
        """Async :meth:`stream`."""
        book = _Attempts(self.candidates, self.policy)
        if report is not None:
            book.report = report
            report.requested_model = self.candidates[0].model
        emitted: list[str] = []
        prefill: str | None = None
        for index, cand in enumerate(self.candidates):
            if prefill is not None and not cand.accepts_prefill:
                book.report.attempts.append(
                    AttemptRecord(cand.model, "skipped", error="does not accept an assistant prefill")
                )
                continue
            ok, breaker = book.eligible(index, cand)
            if not ok:
                continue
            retry = 0
            while True:
                started = time.perf_counter()
                gate = _ContentGate(is_content, text_of, cost_of, emitted)
                try:
                    async for chunk in _atimed(open_stream(cand, prefill), self.policy, is_content):
                        for ready in gate.feed(chunk):
                            yield ready
                    for ready in gate.flush():
                        yield ready
                except E.AIsaError as exc:
                    cost = gate.cost
                    if gate.content_seen:
                        self._mid_stream_failure(book, cand, breaker, exc, started, cost, emitted, mid_stream)
                        prefill = "".join(emitted)
                        break
                    try:
                        wait = book.failed(cand, breaker, exc, started, retry, cost)
                    except _Stop as stop:
                        stop.exc.fallback_report = book.report  # type: ignore[attr-defined]
                        raise stop.exc from None
                    if wait is None or _opened(breaker):
                        break
                    await self._asleep(wait)
                    retry += 1
                    continue
                book.succeeded(index, cand, breaker, started, gate.cost)
                return
        raise book.exhausted()

    @staticmethod
    def _mid_stream_failure(
        book: _Attempts,
        cand: Candidate[Any],
        breaker: CircuitBreaker | None,
        exc: E.AIsaError,
        started: float,
        cost: float | None,
        emitted: list[str],
        mid_stream: str,
    ) -> None:
        """Content has been emitted: never pass a truncated answer off as complete."""
        with contextlib.suppress(_Stop):
            book.failed(cand, breaker, exc, started, retry_number=10**6, cost=cost)
        if mid_stream != "continue":
            err = exc if isinstance(exc, E.StreamError) else E.StreamInterruptedError(str(exc), model=cand.model)
            err.partial_text = "".join(emitted)
            err.fallback_report = book.report  # type: ignore[attr-defined]
            raise err


class _ContentGate(Generic[T]):
    """The streaming contract for one attempt: hold metadata-only chunks until the first content chunk
    (so a failure before it can fail over invisibly), then pass everything through."""

    def __init__(
        self,
        is_content: Callable[[T], bool],
        text_of: Callable[[T], str],
        cost_of: Callable[[T], float | None],
        emitted: list[str],
    ) -> None:
        self.is_content, self.text_of, self.cost_of = is_content, text_of, cost_of
        self.emitted = emitted
        self.held: list[T] = []
        self.content_seen = False
        self.cost: float | None = None

    def feed(self, chunk: T) -> list[T]:
        cost = self.cost_of(chunk)
        if cost is not None:
            self.cost = cost
        if not self.content_seen and not self.is_content(chunk):
            self.held.append(chunk)
            return []
        self.content_seen = True
        self.emitted.append(self.text_of(chunk))
        ready, self.held = [*self.held, chunk], []
        return ready

    def flush(self) -> list[T]:
        ready, self.held = self.held, []
        return ready


def _opened(breaker: CircuitBreaker | None) -> bool:
    return breaker is not None and breaker.state == "open"


# -- timeouts on chunk iterators ---------------------------------------------------------------

_END = object()


def _timeout_error(content_seen: bool, waited: float, model_hint: str = "") -> E.AIsaAPIError:
    if content_seen:
        return E.StreamStalledError(f"The stream went silent for {waited:g} s (stall_timeout).{model_hint}")
    return FirstTokenTimeoutError(f"No content within {waited:g} s (first_token_timeout).{model_hint}")


def _timed(iterator: Iterator[T], policy: FallbackPolicy, is_content: Callable[[T], bool]) -> Iterator[T]:
    """Enforce first-token and stall timeouts on a blocking iterator (read in a helper thread)."""
    if policy.first_token_timeout is None and policy.stall_timeout is None:
        yield from iterator
        return
    q: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in iterator:
                q.put(item)
                if stop.is_set():
                    break
            q.put(_END)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    ctx = contextvars.copy_context()  # callbacks and tracing run in the caller's context
    threading.Thread(target=ctx.run, args=(pump,), daemon=True, name="aisa-fallback-stream").start()
    content_seen = False
    try:
        while True:
            limit = policy.stall_timeout if content_seen else policy.first_token_timeout
            try:
                item = q.get(timeout=limit)
            except queue.Empty:
                stop.set()
                raise _timeout_error(content_seen, limit or 0.0) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            if not content_seen and is_content(item):
                content_seen = True
            yield item
    finally:
        stop.set()


async def _atimed(
    iterator: AsyncIterator[T], policy: FallbackPolicy, is_content: Callable[[T], bool]
) -> AsyncIterator[T]:
    content_seen = False
    agen = iterator.__aiter__()
    try:
        while True:
            limit = policy.stall_timeout if content_seen else policy.first_token_timeout
            try:
                item = await asyncio.wait_for(agen.__anext__(), timeout=limit)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise _timeout_error(content_seen, limit or 0.0) from None
            if not content_seen and is_content(item):
                content_seen = True
            yield item
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
