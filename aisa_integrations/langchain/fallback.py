"""``FallbackRunnable``: try models in order under the core's fallback policy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    LangSmithParams,
    agenerate_from_stream,
    generate_from_stream,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from ..core.catalog import default_catalog
from ..core.errors import AIsaError
from ..core.fallback import Candidate, FallbackPolicy, FallbackReport, FallbackRunner, breakers
from ._delegating import DelegatingChatModel, child_callbacks
from ._errors import as_langchain_error
from .chat_model import AIsaChatModel

__all__ = ["FallbackRunnable"]

_POLICY_FIELDS = set(FallbackPolicy.__dataclass_fields__)


def _is_content(chunk: ChatGenerationChunk) -> bool:
    message = chunk.message
    return bool(message.content) or bool(getattr(message, "tool_call_chunks", None))


def _text_of(chunk: ChatGenerationChunk) -> str:
    return chunk.message.content if isinstance(chunk.message.content, str) else chunk.text


def _cost_of(chunk: ChatGenerationChunk) -> float | None:
    return chunk.message.response_metadata.get("cost")


class FallbackRunnable(DelegatingChatModel):
    """Try AIsa models in order: "gpt-4.1, then claude-3-sonnet, then gemini-2.0-flash".

    A chat model in its own right (LCEL, ``create_agent``, ``bind_tools``, structured output). The
    policy lives in the core (:mod:`aisa_integrations.core.fallback`): errors are classified (429
    honours Retry-After then fails over; 5xx gets one retry; a silent model fails over at once; 401,
    402 and bad requests raise), circuit breakers skip a dead model, and streams fail over only until
    the first content chunk. ``response_metadata["aisa"]`` records every attempt.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import FallbackRunnable
        >>> from aisa_integrations.testing import AIsaSimulator, Fault
        >>> with AIsaSimulator() as sim:
        ...     sim.inject("gpt-4.1", Fault(status=503))
        ...     llm = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url)
        ...     reply = llm.invoke("Hello")
        ...     (reply.response_metadata["model_name"], reply.response_metadata["aisa"]["fallback_index"])
        ('claude-3-sonnet', 1)

    Args:
        models: model ids (built as ``AIsaChatModel`` with ``**model_kwargs``) or ``AIsaChatModel``
            instances. Their SDK retries are switched off: this runnable is the one retry layer.
        policy: a :class:`FallbackPolicy`, or its fields as keywords (``first_token_timeout=``,
            ``stall_timeout=``, ``fallback_on=``, ``circuit_breaker=``, ...).
        mid_stream: ``"raise"`` (default) raises a stream error carrying the partial text when a
            model fails after content was emitted; ``"continue"`` resumes on the next model that
            accepts an assistant prefill, with the partial answer as the prefill.
    """

    models: list[BaseChatModel]
    policy: FallbackPolicy = Field(default_factory=FallbackPolicy)
    mid_stream: Literal["raise", "continue"] = "raise"

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(
        self,
        models: Sequence[str | BaseChatModel] | None = None,
        *,
        policy: FallbackPolicy | None = None,
        mid_stream: Literal["raise", "continue"] = "raise",
        **kwargs: Any,
    ) -> None:
        if models is None:
            models = kwargs.pop("models", None)
        if not models:
            raise AIsaError("FallbackRunnable needs at least one model, e.g. ['gpt-4.1', 'claude-3-sonnet'].")
        policy_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _POLICY_FIELDS}
        if policy is not None and policy_kwargs:
            raise AIsaError(f"Pass either policy= or its fields ({sorted(policy_kwargs)}), not both.")
        policy = policy or FallbackPolicy(**policy_kwargs)
        base_kwargs = {k: v for k, v in kwargs.items() if k not in ("callbacks", "tags", "metadata", "rate_limiter")}
        members: list[BaseChatModel] = []
        for m in models:
            if isinstance(m, str):
                members.append(AIsaChatModel(model=m, **{**base_kwargs, "max_retries": 0}))
            elif isinstance(m, AIsaChatModel):
                members.append(m.model_copy(update={"max_retries": 0}))
            elif isinstance(m, BaseChatModel):
                members.append(m)
            else:
                raise AIsaError(f"Fallback members must be model ids or chat models, got {type(m).__name__}.")
        outer = {k: kwargs[k] for k in ("callbacks", "tags", "metadata", "rate_limiter") if k in kwargs}
        super().__init__(models=members, policy=policy, mid_stream=mid_stream, **outer)

    # -- identity --------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        return [getattr(m, "model", None) or getattr(m, "model_name", type(m).__name__) for m in self.models]

    @property
    def model_name(self) -> str:
        return self.model_names[0]

    @property
    def _llm_type(self) -> str:
        return "aisa-fallback"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"models": self.model_names, "mid_stream": self.mid_stream}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="aisa", ls_model_name=kwargs.get("model", self.model_name), ls_model_type="chat"
        )
        if stop:
            params["ls_stop"] = stop
        return params

    def circuit_state(self) -> dict[str, dict[str, Any]]:
        """The circuit breaker of each member (shared process-wide), keyed by model id."""
        states = breakers.state()
        out = {}
        for cand in self._candidates():
            out[cand.model] = states.get(
                f"{cand.base_url} {cand.model}", {"state": "closed", "consecutive_failures": 0}
            )
        return out

    def _candidates(self) -> list[Candidate[BaseChatModel]]:
        catalog = default_catalog()
        out = []
        for member, name in zip(self.models, self.model_names, strict=True):
            info = catalog.info(name)
            config = getattr(member, "_config", None)
            out.append(
                Candidate(
                    model=name,
                    base_url=config.base_url if config else "",
                    target=member,
                    context_window=info.context_window,
                    accepts_prefill=info.assistant_prefill is True,
                )
            )
        return out

    # -- calls -----------------------------------------------------------------------------
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        report = FallbackReport(requested_model=self.model_name)
        callbacks = child_callbacks(run_manager, CallbackManager)

        def open_stream(cand: Candidate[BaseChatModel], prefill: str | None) -> Iterator[ChatGenerationChunk]:
            prompt = messages if prefill is None else [*messages, AIMessage(prefill)]
            for chunk in cand.target.stream(prompt, config={"callbacks": callbacks}, stop=stop, **kwargs):
                yield ChatGenerationChunk(message=chunk)

        runner = FallbackRunner(self._candidates(), self.policy)
        try:
            for generation in runner.stream(
                open_stream,
                is_content=_is_content,
                text_of=_text_of,
                cost_of=_cost_of,
                mid_stream=self.mid_stream,
                report=report,
            ):
                if run_manager is not None and generation.text:
                    run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={"aisa": report.to_dict()}))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        report = FallbackReport(requested_model=self.model_name)
        callbacks = child_callbacks(run_manager, AsyncCallbackManager)

        async def open_stream(
            cand: Candidate[BaseChatModel], prefill: str | None
        ) -> AsyncIterator[ChatGenerationChunk]:
            prompt = messages if prefill is None else [*messages, AIMessage(prefill)]
            async for chunk in cand.target.astream(prompt, config={"callbacks": callbacks}, stop=stop, **kwargs):
                yield ChatGenerationChunk(message=chunk)

        runner = FallbackRunner(self._candidates(), self.policy)
        try:
            async for generation in runner.astream(
                open_stream,
                is_content=_is_content,
                text_of=_text_of,
                cost_of=_cost_of,
                mid_stream=self.mid_stream,
                report=report,
            ):
                if run_manager is not None and generation.text:
                    await run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={"aisa": report.to_dict()}))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Streamed under the hood: that is how a silent model is caught at first_token_timeout.
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
