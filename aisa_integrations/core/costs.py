"""Unified cost tracking and spend caps: tokens, USD and credits across every call, exact under
concurrency.

Counting follows what the gateway bills. The engine reports every answer it receives from the wire
(a cache hit sends nothing and counts nothing); a stream the consumer leaves before the usage
chunk arrives is counted with an *estimated* cost (prompt estimate + the text seen, at catalog
prices), kept apart from the exact sum of reported costs. Tracking follows the context: tasks and
LangChain's own executors copy it; for your own thread pool use :class:`ContextThreadPoolExecutor`
(a plain ``ThreadPoolExecutor`` does not copy contexts, so its calls would not be counted).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from .state import StateStore, current_store
from .usage import Usage

__all__ = [
    "ContextThreadPoolExecutor",
    "CostTracker",
    "ModelCost",
    "SharedBudget",
    "StreamMeter",
    "check_budgets",
    "record_usage",
    "set_process_budget",
    "tracking",
    "worst_case_cost",
]


@dataclass
class ModelCost:
    """What one model cost so far."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    unpriced_requests: int = 0  # responses whose usage carried no cost figure
    estimated_requests: int = 0  # abandoned streams whose usage never arrived
    estimated_cost: float = 0.0  # their cost at catalog prices (not in ``cost``)


def _counts(usage: Usage | None, estimated: bool) -> dict[str, float]:
    """What one billed answer adds to a :class:`ModelCost` (an estimate's cost kept apart)."""
    if usage is None:
        return {"requests": 1, "unpriced_requests": 1}
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    if estimated:
        return {
            "requests": 1,
            "estimated_requests": 1,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated_cost": usage.cost or 0.0,
        }
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    delta: dict[str, float] = {
        "requests": 1,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    }
    if usage.cost is None:
        delta["unpriced_requests"] = 1
    else:
        delta["cost"] = usage.cost
    return delta


class CostTracker:
    """Accumulates usage from any number of threads and tasks; every update is one locked step.

    ``max_cost`` (USD) is a spend cap: inside a :func:`tracking` block, a request that would start
    once the spent amount (exact + estimated) has reached it raises :class:`BudgetExceededError`
    before anything is sent; with ``strict=True`` so does one whose worst case (prompt estimate plus
    ``max_tokens`` at catalog prices) would pass it.

    ``low_credits`` watches the account balance the gateway reports: once ``credits_remaining``
    falls under it, ``on_low_credits(balance)`` is called (once), or, without a callback, further
    requests are refused like a reached cap.

    >>> tracker = CostTracker()
    >>> tracker.record("gpt-4.1", Usage(prompt_tokens=50, completion_tokens=200, cost=0.0025))
    >>> (tracker.total_tokens, tracker.total_cost, tracker.requests)
    (250, 0.0025, 1)
    """

    def __init__(
        self,
        max_cost: float | None = None,
        *,
        strict: bool = False,
        low_credits: float | None = None,
        on_low_credits: Callable[[float], Any] | None = None,
    ) -> None:
        if max_cost is not None and not max_cost >= 0:
            raise ValueError(f"max_cost must be a non-negative number of USD; got {max_cost!r}.")
        if on_low_credits is not None and low_credits is None:
            raise ValueError("on_low_credits needs low_credits= (the balance under which to call it).")
        self.max_cost = max_cost
        self.strict = strict
        self.low_credits = low_credits
        self.on_low_credits = on_low_credits
        self._warned = False
        self._lock = threading.Lock()
        self._by_model: dict[str, ModelCost] = {}
        self._credits_remaining: float | None = None

    def record(self, model: str, usage: Usage | None, *, estimated: bool = False) -> None:
        """Add one billed response (``usage`` None: a response that reported none); ``estimated``
        marks figures the package worked out because the gateway's never arrived."""
        self._add(model, usage, estimated)
        balance = self._credits_remaining
        if (
            self.on_low_credits is not None
            and self.low_credits is not None
            and balance is not None
            and balance < self.low_credits
            and not self._warned
        ):
            self._warned = True
            self.on_low_credits(balance)

    def _add(self, model: str, usage: Usage | None, estimated: bool) -> dict[str, float]:
        delta = _counts(usage, estimated)
        with self._lock:
            entry = self._by_model.setdefault(model, ModelCost())
            for name, amount in delta.items():
                setattr(entry, name, getattr(entry, name) + amount)
            if (
                usage is not None
                and not estimated
                and usage.credits_remaining is not None
                and (self._credits_remaining is None or usage.credits_remaining < self._credits_remaining)
            ):
                # Concurrent responses arrive out of order; spending only lowers the balance, so the
                # lowest figure reported is the most recent state of the account.
                self._credits_remaining = usage.credits_remaining
        return delta

    def _sum(self, name: str) -> Any:
        with self._lock:
            return sum(getattr(m, name) for m in self._by_model.values())

    @property
    def requests(self) -> int:
        return int(self._sum("requests"))

    @property
    def prompt_tokens(self) -> int:
        return int(self._sum("prompt_tokens"))

    @property
    def completion_tokens(self) -> int:
        return int(self._sum("completion_tokens"))

    @property
    def total_tokens(self) -> int:
        return int(self._sum("total_tokens"))

    @property
    def total_cost(self) -> float:
        return float(self._sum("cost"))

    @property
    def estimated_cost(self) -> float:
        """The estimated cost of answers whose usage never arrived (not part of ``total_cost``)."""
        return float(self._sum("estimated_cost"))

    @property
    def spent(self) -> float:
        """What the cap is measured against: the exact total plus the estimated part."""
        with self._lock:
            return sum(m.cost + m.estimated_cost for m in self._by_model.values())

    @property
    def remaining(self) -> float | None:
        """USD left under ``max_cost`` (None without a cap)."""
        return None if self.max_cost is None else max(0.0, self.max_cost - self.spent)

    def check(self, worst_case: float | None = None) -> None:
        """Raise :class:`BudgetExceededError` if the cap is reached (or, when strict, would be passed
        by a request costing ``worst_case``)."""
        from .errors import BudgetExceededError

        balance = self._credits_remaining
        refuse_low = self.low_credits is not None and self.on_low_credits is None
        if refuse_low and balance is not None and balance < self.low_credits:  # type: ignore[operator]
            raise BudgetExceededError(
                f"The account's credits (${balance:.6f} remaining) are under the ${self.low_credits:.6f} "
                "threshold, so no further request is sent. Add credits, or lower low_credits.",
                spent=self.spent,
                max_cost=self.max_cost or 0.0,
            )
        if self.max_cost is None:
            return
        spent = self.spent
        if spent >= self.max_cost:
            raise BudgetExceededError(
                f"Spend cap reached: ${spent:.6f} of ${self.max_cost:.6f} spent, so no further request is sent. "
                "Raise max_cost, or start a new tracking block.",
                spent=spent,
                max_cost=self.max_cost,
            )
        if self.strict and worst_case is not None and spent + worst_case > self.max_cost:
            raise BudgetExceededError(
                f"This request could cost up to ${worst_case:.6f} (prompt estimate plus max_tokens at catalog "
                f"prices), more than the ${self.max_cost - spent:.6f} left under the ${self.max_cost:.6f} cap. "
                "Lower max_tokens, raise max_cost, or pass strict=False.",
                spent=spent,
                max_cost=self.max_cost,
            )

    @property
    def credits_remaining(self) -> float | None:
        """The account balance as of the latest billed response (the lowest figure reported)."""
        return self._credits_remaining

    @property
    def by_model(self) -> dict[str, ModelCost]:
        with self._lock:
            return {k: ModelCost(**asdict(v)) for k, v in self._by_model.items()}

    def reset(self) -> None:
        with self._lock:
            self._by_model.clear()
            self._credits_remaining = None

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "total_cost": self.total_cost,
            "estimated_cost": self.estimated_cost,
            "max_cost": self.max_cost,
            "credits_remaining": self.credits_remaining,
            "by_model": {k: asdict(v) for k, v in self.by_model.items()},
        }

    def __str__(self) -> str:
        lines = [
            f"Requests: {self.requests}",
            f"Tokens: {self.total_tokens} (prompt {self.prompt_tokens}, completion {self.completion_tokens})",
            f"Total cost (USD): ${self.total_cost:.6f}",
        ]
        if self.estimated_cost:
            lines.append(f"Estimated, usage never reported (USD): ${self.estimated_cost:.6f}")
        if self.max_cost is not None:
            lines.append(f"Cap (USD): ${self.max_cost:.6f}, ${self.remaining:.6f} left")
        if self.credits_remaining is not None:
            lines.append(f"Credits remaining: {self.credits_remaining}")
        for model, entry in self.by_model.items():
            priced = entry.requests - entry.unpriced_requests - entry.estimated_requests
            cost = f"${entry.cost:.6f}" if priced or not entry.requests else "cost not reported"
            lines.append(f"  {model}: {entry.requests} req, {entry.total_tokens} tokens, {cost}")
        return "\n".join(lines)


class SharedBudget(CostTracker):
    """A spend cap whose totals live in the state store, so every process that uses the same store
    (Redis: every worker) and ``name`` spends from one budget. With the default memory store it is
    one budget for the whole process. The cap is checked before each request; a process can pass
    it by at most the calls it already has in flight.

    Give it to a model (``AIsaChatModel(budget=...)``), or make it the process's budget for every
    request with :func:`set_process_budget`. Totals (``spent``, ``total_cost``, ``requests``,
    tokens) are the shared ones; ``by_model`` is this process's share.

    >>> from aisa_integrations.core.state import MemoryStore
    >>> budget = SharedBudget("team", max_cost=1.0, store=MemoryStore())
    >>> budget.record("gpt-4.1", Usage(prompt_tokens=10, completion_tokens=5, cost=0.4))
    >>> budget.spent, budget.remaining
    (0.4, 0.6)
    """

    _TOTALS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "estimated_cost")

    def __init__(
        self,
        name: str = "global",
        max_cost: float | None = None,
        *,
        store: StateStore | None = None,
        strict: bool = False,
        low_credits: float | None = None,
        on_low_credits: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(max_cost, strict=strict, low_credits=low_credits, on_low_credits=on_low_credits)
        self.name = name
        self._store = store
        if max_cost is not None:
            self.store.set_fields(self.key, {"max_cost": max_cost})

    @property
    def store(self) -> StateStore:
        return self._store if self._store is not None else current_store()

    @property
    def key(self) -> str:
        return f"budget:{self.name}"

    def _add(self, model: str, usage: Usage | None, estimated: bool) -> dict[str, float]:
        delta = super()._add(model, usage, estimated)
        self.store.incr(self.key, {name: amount for name, amount in delta.items() if name in self._TOTALS})
        return delta

    def totals(self) -> dict[str, float]:
        """The shared totals, read from the store."""
        return self.store.counters(self.key)

    def _sum(self, name: str) -> Any:
        return self.totals().get(name, 0.0)

    @property
    def spent(self) -> float:
        totals = self.totals()
        return totals.get("cost", 0.0) + totals.get("estimated_cost", 0.0)

    def reset(self) -> None:
        super().reset()
        self.store.set_fields(self.key, dict.fromkeys(self._TOTALS, 0.0))


# The budget every request in the process is checked against (and counted in), if one is set.
_process_budget: CostTracker | None = None


def set_process_budget(budget: CostTracker | None) -> CostTracker | None:
    """Check (and count) every request this process sends against ``budget`` (None: no process cap).
    A :class:`SharedBudget` on a Redis store makes it one cap for every worker.

    >>> set_process_budget(SharedBudget("demo", max_cost=10.0)).max_cost
    10.0
    >>> set_process_budget(None)
    """
    global _process_budget
    _process_budget = budget
    return budget


# The trackers whose block the current code runs in. The engine reports every billed answer it
# receives from the wire here, so a count follows what the gateway bills, whatever framework (and
# however many wrapper runs) sit above the call: a cache hit sends nothing and counts nothing.
_active: ContextVar[tuple[CostTracker, ...]] = ContextVar("aisa_cost_trackers", default=())


@contextmanager
def tracking(tracker: CostTracker) -> Iterator[CostTracker]:
    """Count every billed AIsa answer received inside the block (this thread, and the tasks and
    threads that copy its context) in ``tracker``."""
    token = _active.set((*_active.get(), tracker))
    try:
        yield tracker
    finally:
        _active.reset(token)


def record_usage(
    model: str,
    usage: Usage | None,
    *,
    estimated: bool = False,
    budget: CostTracker | None = None,
    trackers: tuple[CostTracker, ...] | None = None,
) -> None:
    """Called by the engine for every answer the gateway billed (``budget``: the model's own cap;
    ``trackers``: the blocks the call started in, when it ends elsewhere)."""
    for tracker in _active.get() if trackers is None else trackers:
        tracker.record(model, usage, estimated=estimated)
    if budget is not None:
        budget.record(model, usage, estimated=estimated)
    if _process_budget is not None and _process_budget is not budget:
        _process_budget.record(model, usage, estimated=estimated)


def worst_case_cost(model: str, request: Mapping[str, Any]) -> float | None:
    """The most a request can cost at catalog prices: its prompt estimate plus ``max_tokens`` (or
    the model's output limit) of output; None if the model's price is unknown."""
    from .capabilities import estimate_tokens
    from .catalog import default_catalog

    info = default_catalog().info(model)
    limit = request.get("max_completion_tokens") or request.get("max_tokens") or info.max_output_tokens or 4096
    return info.estimate_cost(estimate_tokens(request.get("messages") or ()), int(limit) * int(request.get("n") or 1))


def check_budgets(model: str, request: Mapping[str, Any], budget: CostTracker | None = None) -> None:
    """Before a request is sent: refuse it if a cap of an active tracker (or the model's own
    ``budget``) is reached, or, for a strict one, its worst case would pass the cap."""
    trackers = _active.get()
    if budget is not None:
        trackers = (*trackers, budget)
    if _process_budget is not None and _process_budget is not budget:
        trackers = (*trackers, _process_budget)
    if not trackers:
        return
    worst: float | None = None
    for tracker in trackers:
        if tracker.max_cost is None and tracker.low_credits is None:
            continue
        if tracker.strict and worst is None:
            worst = worst_case_cost(model, request)
        tracker.check(worst)


class StreamMeter:
    """Watches one streamed answer: records its usage when the usage chunk arrives, or, when the
    stream ends without one (the consumer left, or the request asked for none), an estimate from
    the prompt and the text seen, marked as estimated."""

    __slots__ = ("budget", "chars", "model", "on_usage", "recorded", "request", "trackers")

    def __init__(
        self,
        model: str,
        request: Mapping[str, Any] | None,
        budget: CostTracker | None = None,
        on_usage: Callable[[Usage], Any] | None = None,
    ) -> None:
        self.budget = budget
        self.on_usage = on_usage
        # The blocks the stream started in: a stream left early is finished when it is closed, which
        # for an async generator is the event loop's finaliser, in another context, a moment later.
        self.trackers = _active.get()
        self.model = model
        self.request = request
        self.chars = 0
        self.recorded = False

    def feed(self, chunk: Mapping[str, Any]) -> Usage | None:
        """Count a chunk's text; record and return its usage if it carries one."""
        from .usage import parse_usage

        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self.chars += len(content)
            for call in delta.get("tool_calls") or ():
                self.chars += len(((call or {}).get("function") or {}).get("arguments") or "")
        if chunk.get("usage") is None:
            return None
        usage = parse_usage(chunk["usage"])
        record_usage(chunk.get("model") or self.model, usage, budget=self.budget, trackers=self.trackers)
        self.recorded = True
        if self.on_usage is not None and usage is not None:
            self.on_usage(usage)
        return usage

    def finish(self) -> None:
        """The stream is over without a usage chunk: record what the gateway most likely billed."""
        if self.recorded or not (self.trackers or self.budget is not None or _process_budget is not None):
            return
        from .capabilities import estimate_tokens
        from .catalog import default_catalog

        self.recorded = True
        prompt = estimate_tokens((self.request or {}).get("messages") or ())
        completion = -(-self.chars // 4)  # ~4 characters a token, rounded up
        cost = default_catalog().info(self.model).estimate_cost(prompt, completion)
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, cost=cost)
        record_usage(self.model, usage, estimated=True, budget=self.budget, trackers=self.trackers)


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitting context, so calls made on them are
    counted by the tracking block (and capped by its budget) that submitted them.

    >>> tracker = CostTracker()
    >>> with tracking(tracker), ContextThreadPoolExecutor(2) as pool:
    ...     pool.submit(record_usage, "gpt-4.1", Usage(cost=0.01)).result()
    >>> tracker.requests
    1
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
