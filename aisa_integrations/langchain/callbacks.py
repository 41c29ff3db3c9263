"""``get_aisa_callback()``: AIsa tokens, cost and credits across everything run inside it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.outputs import ChatGeneration, LLMResult

from ..core.costs import CostTracker, tracking
from ..core.models import Comparison, DeltaStream, compare_streams
from ..core.usage import Usage

__all__ = ["AIsaCallbackHandler", "compare_chat_models", "get_aisa_callback"]

_AISA_TYPES = frozenset({"aisa-chat", "aisa-fallback", "aisa-router"})


def _usage_of(message: Any) -> Usage | None:
    meta = message.response_metadata or {}
    usage_md = getattr(message, "usage_metadata", None)
    if not usage_md and "cost" not in meta:
        return None
    return Usage(
        prompt_tokens=(usage_md or {}).get("input_tokens"),
        completion_tokens=(usage_md or {}).get("output_tokens"),
        total_tokens=(usage_md or {}).get("total_tokens"),
        cost=meta.get("cost"),
        credits_remaining=meta.get("credits_remaining"),
    )


class AIsaCallbackHandler(BaseCallbackHandler, CostTracker):
    """Tokens, cost, requests per model and the last credits balance of AIsa answers.

    From :func:`get_aisa_callback` it counts at the wire: every answer the gateway billed, once,
    whatever wraps the call (fallbacks, routes, agents) — failed attempts and LLM-cache hits are not
    billed and not counted. Passed as a LangChain callback (``config={"callbacks": [handler]}``)
    instead, it counts each AIsa chat-model run's answer as the run reports it (cache hits excluded).
    """

    raise_error = False
    run_inline = True  # on the caller's thread: the counts are complete when the call returns

    def __init__(self, *, from_callbacks: bool = True, max_cost: float | None = None, **caps: Any) -> None:
        CostTracker.__init__(self, max_cost, **caps)
        self._from_callbacks = from_callbacks
        self._runs: set[UUID] = set()
        self._runs_lock = threading.Lock()

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self._from_callbacks and (kwargs.get("invocation_params") or {}).get("_type") in _AISA_TYPES:
            with self._runs_lock:
                self._runs.add(run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._runs_lock:
            if run_id not in self._runs:
                return
            self._runs.discard(run_id)
        for generations in response.generations:
            for generation in generations:
                if not isinstance(generation, ChatGeneration):
                    continue
                message = generation.message
                if (getattr(message, "usage_metadata", None) or {}).get("total_cost") == 0:
                    continue  # langchain-core marks LLM-cache hits this way: nothing was billed
                self.record(message.response_metadata.get("model_name") or "unknown", _usage_of(message))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._runs_lock:
            self._runs.discard(run_id)

    def __repr__(self) -> str:
        return str(self)


@contextmanager
def get_aisa_callback(
    max_cost: float | None = None,
    *,
    strict: bool = False,
    low_credits: float | None = None,
    on_low_credits: Callable[[float], Any] | None = None,
) -> Iterator[AIsaCallbackHandler]:
    """Track AIsa usage and cost for everything run inside the ``with`` block (and the tasks and
    threads that inherit its context: LangChain's ``batch`` and executors, asyncio tasks, and
    :class:`~aisa_integrations.core.costs.ContextThreadPoolExecutor`; a plain ``ThreadPoolExecutor``
    does not copy contexts, so calls on it are not counted).

    ``max_cost`` (USD) caps the block: once reached, the next request raises
    :class:`~aisa_integrations.core.errors.BudgetExceededError` before it is sent; ``strict=True``
    also refuses a request whose worst case would pass the cap. ``low_credits`` watches the
    balance the gateway reports: under it, ``on_low_credits(balance)`` is called once, or (without a
    callback) further requests are refused.

    >>> from aisa_integrations import AIsaChatModel, get_aisa_callback
    >>> from aisa_integrations.testing import AIsaSimulator
    >>> with AIsaSimulator() as sim, get_aisa_callback() as cb:
    ...     _ = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url).invoke("Hi")
    ...     (cb.requests, cb.total_cost == sim.total_billed)
    (1, True)
    """
    handler = AIsaCallbackHandler(
        from_callbacks=False, max_cost=max_cost, strict=strict, low_credits=low_credits, on_low_credits=on_low_credits
    )
    with tracking(handler):
        yield handler


def compare_chat_models(models: Sequence[BaseChatModel], input: Any, **kwargs: Any) -> Comparison:
    """The same input on several LangChain chat models at once (latency, first token, tokens, cost)."""
    from ._errors import as_langchain_error

    def opener(model: BaseChatModel) -> DeltaStream:
        def deltas() -> Iterator[tuple[str, Usage | None]]:
            try:
                for chunk in model.stream(input, **kwargs):
                    yield chunk.text, _usage_of(chunk) if chunk.usage_metadata else None
            except Exception as exc:
                raise as_langchain_error(exc) from exc

        return deltas

    names = [getattr(m, "model", None) or getattr(m, "model_name", None) or type(m).__name__ for m in models]
    return compare_streams(list(zip(names, (opener(m) for m in models), strict=True)))
