"""``FallbackRunnable``: an ``AIsaChatModel`` configured to try models in order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel

from ..core.errors import InvalidRequestError
from ..core.fallback import DEFAULT_FALLBACK_ON, FallbackPolicy
from ._errors import as_langchain_error
from .chat_model import AIsaChatModel

__all__ = ["FallbackRunnable"]


def policy_from(policy: FallbackPolicy | None, arguments: dict[str, Any]) -> FallbackPolicy:
    """The policy a constructor was given: ``policy=``, or its fields as keywords (not both), or the
    ``fallback_policy`` that ``dumpd`` stored (in ``arguments["kwargs"]``; taken out of them)."""
    dumped = arguments["kwargs"].pop("fallback_policy", None)
    if policy is None and dumped is not None:
        policy = dumped if isinstance(dumped, FallbackPolicy) else FallbackPolicy.from_dict(dumped)
    fields = {name: arguments[name] for name in FallbackPolicy.field_names()}
    fields["fallback_on"] = frozenset(fields["fallback_on"])
    defaults = FallbackPolicy()
    given = sorted(k for k, v in fields.items() if v != getattr(defaults, k))
    if policy is None:
        return FallbackPolicy(**fields)
    if given:
        raise as_langchain_error(InvalidRequestError(f"Pass either policy= or its fields ({given}), not both."))
    return policy


class FallbackRunnable(AIsaChatModel):
    """Try AIsa models in order: "gpt-4.1, then claude-3-sonnet, then gemini-2.0-flash".

    A chat model in its own right (LCEL, ``create_agent``, ``bind_tools``, structured output): an
    ``AIsaChatModel`` whose ``fallback_models`` are the rest of ``models``, under the core's fallback
    policy (:mod:`aisa_integrations.core.fallback`): 429 honours Retry-After then fails over; a 5xx,
    a cut or a malformed answer gets one retry; a silent model fails over at once; 401, 402 and bad
    requests raise; circuit breakers skip a dead model; members the catalog says cannot serve a
    request (images, tools, json_schema, limits) are skipped with the reason. Streams fail over
    invisibly until the first content chunk. ``response_metadata["aisa"]`` records every attempt.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import FallbackRunnable
        >>> from aisa_integrations.testing import AIsaSimulator, Fault
        >>> with AIsaSimulator() as sim:
        ...     _ = sim.inject("gpt-4.1", Fault(status=503))
        ...     llm = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url)
        ...     reply = llm.invoke("Hello")
        ...     (reply.response_metadata["model_name"], reply.response_metadata["aisa"]["fallback_index"])
        ('claude-3-sonnet', 1)

    Args:
        models: model ids, ``AIsaChatModel`` instances (called with their own settings) or any other
            chat model or runnable (called through LangChain; what it raises is classified too).
        first_token_timeout, stall_timeout, fallback_on, rate_limit_retries, max_retry_after,
        rate_limit_min_interval, backoff_initial, backoff_max, server_retries, circuit_breaker,
        failure_threshold, cooldown, max_cooldown: the fallback policy's fields
            (see :class:`~aisa_integrations.core.fallback.FallbackPolicy`); or pass ``policy=``.
        mid_stream: ``"raise"`` (default) raises a stream error carrying the partial text when a
            model fails after content was streamed; ``"continue"`` resumes on the next model that
            accepts an assistant prefill, with the partial answer as the prefill.
        **kwargs: settings for the models built from ids (api_key, base_url, temperature, ...).
    """

    def __init__(
        self,
        models: Sequence[str | BaseChatModel] | None = None,
        *,
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
        models = list(models if models is not None else kwargs.pop("fallback_models", None) or ())
        if not models:
            raise as_langchain_error(
                InvalidRequestError("FallbackRunnable needs at least one model, e.g. ['gpt-4.1', 'claude-3-sonnet'].")
            )
        chosen = policy_from(policy, locals())
        primary = models[0]
        model = (
            primary
            if isinstance(primary, str)
            else getattr(primary, "model", None) or getattr(primary, "model_name", None)
        )
        super().__init__(
            model=model or "gpt-4.1",
            fallback_models=models[1:],
            fallback_policy=chosen,
            mid_stream=mid_stream,
            **kwargs,
        )
        if not isinstance(primary, str):
            self._primary_member = primary
            self._engine_cache = None

    @property
    def _llm_type(self) -> str:
        return "aisa-fallback"

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["aisa_integrations", "langchain", "fallback"]

    def to_json(self) -> Any:
        """Dumped as its constructor takes it: ``models=[...]`` (ids or serialisable chat models)."""
        dumped = super().to_json()
        kwargs = dumped.get("kwargs")
        if isinstance(kwargs, dict):
            kwargs.pop("model", None)
            members = kwargs.pop("fallback_models", [])
            kwargs["models"] = [self.models[0], *members]  # chat models among them are dumped in turn
        return dumped

    @property
    def policy(self) -> FallbackPolicy:
        """The fallback policy in force."""
        assert self.fallback_policy is not None
        return self.fallback_policy

    @property
    def models(self) -> list[Any]:
        """The members, in order (ids or chat models)."""
        primary = self._primary_member if self._primary_member is not None else self.model
        return [primary, *self.fallback_models]

    @property
    def model_names(self) -> list[str]:
        return [t.name for t in self._engine.plan.targets]
