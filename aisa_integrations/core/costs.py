"""Unified cost tracking: tokens, USD and credits across every call, exact under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from .usage import Usage

__all__ = ["CostTracker", "ModelCost", "record_usage", "tracking"]


@dataclass
class ModelCost:
    """What one model cost so far."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    unpriced_requests: int = 0  # responses whose usage carried no cost figure


class CostTracker:
    """Accumulates usage from any number of threads and tasks; every update is one locked step.

    >>> tracker = CostTracker()
    >>> tracker.record("gpt-4.1", Usage(prompt_tokens=50, completion_tokens=200, cost=0.0025))
    >>> (tracker.total_tokens, tracker.total_cost, tracker.requests)
    (250, 0.0025, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, ModelCost] = {}
        self._credits_remaining: float | None = None

    def record(self, model: str, usage: Usage | None) -> None:
        """Add one billed response (``usage`` None: a response that reported none)."""
        with self._lock:
            entry = self._by_model.setdefault(model, ModelCost())
            entry.requests += 1
            if usage is None:
                entry.unpriced_requests += 1
                return
            prompt = usage.prompt_tokens or 0
            completion = usage.completion_tokens or 0
            entry.prompt_tokens += prompt
            entry.completion_tokens += completion
            entry.total_tokens += usage.total_tokens if usage.total_tokens is not None else prompt + completion
            if usage.cost is None:
                entry.unpriced_requests += 1
            else:
                entry.cost += usage.cost
            if usage.credits_remaining is not None and (
                self._credits_remaining is None or usage.credits_remaining < self._credits_remaining
            ):
                # Concurrent responses arrive out of order; spending only lowers the balance, so the
                # lowest figure reported is the most recent state of the account.
                self._credits_remaining = usage.credits_remaining

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
            "credits_remaining": self.credits_remaining,
            "by_model": {k: asdict(v) for k, v in self.by_model.items()},
        }

    def __str__(self) -> str:
        lines = [
            f"Requests: {self.requests}",
            f"Tokens: {self.total_tokens} (prompt {self.prompt_tokens}, completion {self.completion_tokens})",
            f"Total cost (USD): ${self.total_cost:.6f}",
        ]
        if self.credits_remaining is not None:
            lines.append(f"Credits remaining: {self.credits_remaining}")
        for model, entry in self.by_model.items():
            lines.append(f"  {model}: {entry.requests} req, {entry.total_tokens} tokens, ${entry.cost:.6f}")
        return "\n".join(lines)


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


def record_usage(model: str, usage: Usage | None) -> None:
    """Called by the engine for every answer the gateway billed."""
    for tracker in _active.get():
        tracker.record(model, usage)
