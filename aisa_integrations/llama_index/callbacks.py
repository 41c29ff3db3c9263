"""``AIsaCostHandler``: AIsa tokens, cost and credits for LlamaIndex, via its callback manager."""

from __future__ import annotations

from typing import Any

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType, EventPayload

from ..core.costs import CostTracker
from ..core.usage import Usage

__all__ = ["AIsaCostHandler"]


class AIsaCostHandler(BaseCallbackHandler, CostTracker):
    """Counts every billed AIsa response seen by LlamaIndex: tokens, cost, requests, per model, credits.

    >>> from llama_index.core.callbacks import CallbackManager
    >>> from aisa_integrations import AIsaLLM
    >>> from aisa_integrations.testing import AIsaSimulator
    >>> costs = AIsaCostHandler()
    >>> with AIsaSimulator() as sim:
    ...     llm = AIsaLLM(model="gpt-4.1", api_key=sim.api_key, api_base=sim.base_url,
    ...                   callback_manager=CallbackManager([costs]))
    ...     _ = llm.complete("Hi")
    ...     (costs.requests, costs.total_cost == sim.total_billed)
    (1, True)

    With fallback, only the attempt that answered reported usage (failed attempts are not billed);
    its model is the one counted. ``max_cost`` (USD) caps the LLM calls this handler sees: once
    reached, the next one raises :class:`~aisa_integrations.core.errors.BudgetExceededError` before
    it is sent.
    """

    def __init__(self, max_cost: float | None = None) -> None:
        BaseCallbackHandler.__init__(self, event_starts_to_ignore=[], event_ends_to_ignore=[])
        CostTracker.__init__(self, max_cost)

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        if event_type == CBEventType.LLM:
            self.check()  # a reached cap stops the call before anything is sent
        return event_id

    def on_event_end(
        self, event_type: CBEventType, payload: dict[str, Any] | None = None, event_id: str = "", **kwargs: Any
    ) -> None:
        if event_type != CBEventType.LLM or not payload:
            return
        response = payload.get(EventPayload.RESPONSE) or payload.get(EventPayload.COMPLETION)
        extra = getattr(response, "additional_kwargs", None) or {}
        if "total_tokens" not in extra and "cost" not in extra:
            return  # not an AIsa response
        report = extra.get("aisa") or {}
        model = report.get("served_model") or extra.get("model") or "unknown"
        self.record(
            model,
            Usage(
                prompt_tokens=extra.get("prompt_tokens"),
                completion_tokens=extra.get("completion_tokens"),
                total_tokens=extra.get("total_tokens"),
                cost=extra.get("cost"),
                credits_remaining=extra.get("credits_remaining"),
            ),
        )

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None) -> None:
        return None
