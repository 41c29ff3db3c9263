"""``TaskRouterRunnable``: an ``AIsaChatModel`` configured to route each request by its task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ..core.catalog import ModelCatalog
from ..core.fallback import DEFAULT_FALLBACK_ON, FallbackPolicy
from .chat_model import AIsaChatModel
from .fallback import policy_from

__all__ = ["TaskRouterRunnable"]


class TaskRouterRunnable(AIsaChatModel):
    """Route each request to the model for its task: code, creative, fast, vision, chinese, reasoning.

    An ``AIsaChatModel`` with ``routes``: the classifier and the route policy live in the core
    (:mod:`aisa_integrations.core.routing`), and so does the capability check — images only to vision
    models, tools only to tool-capable models, json_schema only where honoured, the output limit and
    the estimated prompt within the model's limits. The decision is reported in
    ``response_metadata["aisa_route"]`` and as an ``aisa_route`` run in callbacks; a list route is a
    fallback chain under the fallback policy.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import TaskRouterRunnable
        >>> from aisa_integrations.testing import AIsaSimulator
        >>> with AIsaSimulator() as sim:
        ...     router = TaskRouterRunnable(api_key=sim.api_key, base_url=sim.base_url)
        ...     reply = router.invoke("Write a Python function that reverses a string")
        ...     (reply.response_metadata["aisa_route"]["task"], reply.response_metadata["model_name"])
        ('code', 'deepseek-coder')

    Explicit tasks win over the classifier: ``config={"configurable": {"task": "code"}}``, an input
    ``{"task": "code", "input": ...}`` or ``invoke(..., task="code")``.

    Args:
        routes: task → a model id, a list (a fallback chain), a chat model or any Runnable, or
            :class:`~aisa_integrations.core.routing.Cheapest`. Missing tasks keep the reference's
            table (code → deepseek-coder, creative → claude-3-opus, fast → gpt-3.5-turbo,
            vision → gpt-4o, chinese → qwen-max, reasoning → gpt-4.1); the default route is ``model``
            (gpt-4.1 unless given).
        classifier: a :class:`~aisa_integrations.core.classifier.TaskClassifier`, a trained
            :class:`~aisa_integrations.core.lexical.LexicalModel` or the path of one (``aisa route
            --train``), or any callable ``text -> task`` (or ``(task, confidence, reason)``); see
            :func:`aisa_integrations.core.classifier.model_classifier` for one that asks a cheap model.
        sticky_routing: a follow-up turn that names no task of its own ("shorter please") keeps the
            conversation's task and model (on by default).
        first_token_timeout ... max_cooldown: the fallback policy's fields (or ``policy=``).
        **kwargs: settings for the models built from ids (api_key, base_url, temperature, ...).
    """

    def __init__(
        self,
        routes: Mapping[str, Any] | None = None,
        *,
        classifier: Any = None,
        sticky_routing: bool = True,
        catalog: ModelCatalog | None = None,
        first_token_timeout: float | None = 10.0,
        stall_timeout: float | None = 30.0,
        fallback_on: Iterable[str] = DEFAULT_FALLBACK_ON,
        rate_limit_retries: int = 1,
        max_retry_after: float = 5.0,
        rate_limit_min_interval: float = 1.5,
        backoff_initial: float = 0.5,
        backoff_max: float = 4.0,
        server_retries: int = 1,
        circuit_breaker: bool = True,
        failure_threshold: int = 3,
        cooldown: float = 5.0,
        max_cooldown: float = 60.0,
        mid_stream: Literal["raise", "continue"] = "raise",
        policy: FallbackPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        chosen = policy_from(policy, locals())
        super().__init__(
            routes=dict(routes or {}),
            classifier=classifier,
            sticky_routing=sticky_routing,
            catalog=catalog,
            fallback_policy=chosen,
            mid_stream=mid_stream,
            **kwargs,
        )

    @property
    def _llm_type(self) -> str:
        return "aisa-router"

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["aisa_integrations", "langchain", "router"]

    @property
    def router(self) -> Any:
        """The core :class:`~aisa_integrations.core.routing.TaskRouter` in force."""
        return self._engine.plan.router
