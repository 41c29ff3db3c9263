"""``get_aisa_callback()``: AIsa tokens, cost and credits across everything run inside it."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from ..core.costs import CostTracker
from ..core.models import ComparisonResult, DeltaStream, compare_streams
from ..core.usage import Usage

__all__ = ["AIsaCallbackHandler", "compare_chat_models", "get_aisa_callback"]


class AIsaCallbackHandler(BaseCallbackHandler, CostTracker):
    """Counts every billed AIsa response: tokens, cost, requests, per model, last credits seen.

    Only the leaf calls to the gateway are counted (``AIsaChatModel`` runs), so a FallbackRunnable's
    attempts and a TaskRouterRunnable's delegated call are each counted once, never twice.
    """

    raise_error = False
    run_inline = True  # on the caller's thread: the counts are complete when the call returns

    def __init__(self) -> None:
        CostTracker.__init__(self)
        self._runs: set[UUID] = set()
        self._runs_lock = threading.Lock()

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if (kwargs.get("invocation_params") or {}).get("_type") == "aisa-chat":
            with self._runs_lock:
                self._runs.add(run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._runs_lock:
            if run_id not in self._runs:
                return
            self._runs.discard(run_id)
        for generations in response.generations:
            for generation in generations:
                if isinstance(generation, ChatGeneration):
                    self._record_message(generation.message)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._runs_lock:
            self._runs.discard(run_id)

    def _record_message(self, message: Any) -> None:
        meta = message.response_metadata or {}
        usage_md = getattr(message, "usage_metadata", None)
        usage = None
        if usage_md or "cost" in meta:
            usage = Usage(
                prompt_tokens=(usage_md or {}).get("input_tokens"),
                completion_tokens=(usage_md or {}).get("output_tokens"),
                total_tokens=(usage_md or {}).get("total_tokens"),
                cost=meta.get("cost"),
                credits_remaining=meta.get("credits_remaining"),
            )
        self.record(meta.get("model_name") or "unknown", usage)

    def __repr__(self) -> str:
        return str(self)


_handler_var: ContextVar[AIsaCallbackHandler | None] = ContextVar("aisa_callback", default=None)
register_configure_hook(_handler_var, inheritable=True)


@contextmanager
def get_aisa_callback() -> Iterator[AIsaCallbackHandler]:
    """Track AIsa usage and cost for everything run inside the ``with`` block.

    >>> from aisa_integrations import AIsaChatModel, get_aisa_callback
    >>> from aisa_integrations.testing import AIsaSimulator
    >>> with AIsaSimulator() as sim, get_aisa_callback() as cb:
    ...     _ = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url).invoke("Hi")
    ...     (cb.requests, cb.total_cost == sim.total_billed)
    (1, True)
    """
    handler = AIsaCallbackHandler()
    token = _handler_var.set(handler)
    try:
        yield handler
    finally:
        _handler_var.reset(token)


def compare_chat_models(models: Sequence[BaseChatModel], input: Any, **kwargs: Any) -> dict[str, ComparisonResult]:
    """The same input on several LangChain chat models at once (latency, first token, tokens, cost)."""

    def opener(model: BaseChatModel) -> DeltaStream:
        def deltas() -> Iterator[tuple[str, Usage | None]]:
            from ._errors import as_langchain_error

            try:
                for chunk in model.stream(input, **kwargs):
                    usage = None
                    if chunk.usage_metadata:
                        meta = chunk.response_metadata
                        usage = Usage(
                            prompt_tokens=chunk.usage_metadata.get("input_tokens"),
                            completion_tokens=chunk.usage_metadata.get("output_tokens"),
                            total_tokens=chunk.usage_metadata.get("total_tokens"),
                            cost=meta.get("cost"),
                        )
                    yield chunk.text, usage
            except Exception as exc:
                raise as_langchain_error(exc) from exc

        return deltas

    names = [getattr(m, "model", None) or getattr(m, "model_name", None) or type(m).__name__ for m in models]
    return compare_streams(list(zip(names, (opener(m) for m in models), strict=True)))
