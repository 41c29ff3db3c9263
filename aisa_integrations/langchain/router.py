"""``TaskRouterRunnable``: pick the AIsa model by task type, under the core's routing policy."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from pydantic import ConfigDict, PrivateAttr, SecretStr

from ..core.errors import AIsaError, InvalidRequestError
from ..core.routing import Requirements, RouteDecision, TaskRouter
from ._delegating import DelegatingChatModel, child_callbacks
from ._errors import as_langchain_error
from .chat_model import AIsaChatModel
from .fallback import FallbackRunnable

__all__ = ["TaskRouterRunnable"]

_IMAGE_TYPES = {"image", "image_url"}


def _images_and_text(messages: list[BaseMessage]) -> tuple[int, str, int]:
    """(images in the request, the last user turn's text, total characters)."""
    images, chars, last_user = 0, 0, ""
    for message in messages:
        content = message.content
        if isinstance(content, str):
            chars += len(content)
            if isinstance(message, HumanMessage):
                last_user = content
            continue
        texts = []
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind in _IMAGE_TYPES or (kind is None and "image" in block):
                    images += 1
                elif kind == "text":
                    texts.append(str(block.get("text", "")))
        text = " ".join(texts)
        chars += len(text)
        if isinstance(message, HumanMessage):
            last_user = text
    return images, last_user, chars


def _needs(messages: list[BaseMessage], kwargs: Mapping[str, Any], images: int, chars: int) -> Requirements:
    response_format = kwargs.get("response_format")
    return Requirements(
        vision=images > 0,
        tools=bool(kwargs.get("tools")),
        json_schema=isinstance(response_format, Mapping) and response_format.get("type") == "json_schema",
        prompt_tokens=int(chars / 3.5) + 1000 * images + 4 * len(messages),
    )


def _as_chunk(value: Any) -> AIMessageChunk:
    if isinstance(value, AIMessageChunk):
        return value
    if isinstance(value, AIMessage):
        return AIMessageChunk(
            content=value.content,
            tool_call_chunks=[
                {"name": c["name"], "args": str(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(value.tool_calls)
            ],
            response_metadata=value.response_metadata,
            usage_metadata=value.usage_metadata,
        )
    return AIMessageChunk(content=str(value))


def _as_message(value: Any) -> AIMessage:
    if isinstance(value, AIMessage):
        return value
    return AIMessage(content=str(value))


class TaskRouterRunnable(DelegatingChatModel):
    """Route each request to the model for its task: code, creative, fast, vision, chinese, reasoning.

    The classifier and the route policy live in the core (:mod:`aisa_integrations.core.routing`);
    this is a chat model that drops in wherever one goes (LCEL, agents). The catalog's
    capabilities are always enforced — images only to vision models, bound tools only to
    tool-capable models, the estimated prompt within the context window — and the decision is
    reported in ``response_metadata["aisa_route"]`` and as an ``aisa_route`` run in callbacks.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import TaskRouterRunnable
        >>> from aisa_integrations.testing import AIsaSimulator
        >>> with AIsaSimulator() as sim:
        ...     router = TaskRouterRunnable(api_key=sim.api_key, base_url=sim.base_url)
        ...     reply = router.invoke("Write a Python function that reverses a string")
        ...     (reply.response_metadata["aisa_route"]["task"], reply.response_metadata["model_name"])
        ('code', 'deepseek-coder')

    Explicit tasks win over the classifier: ``config={"configurable": {"task": "code"}}`` or an input
    ``{"task": "code", "input": ...}``.

    Args:
        routes: task → a model id, a list of ids (a :class:`FallbackRunnable`), a chat model or any
            Runnable, or :class:`~aisa_integrations.core.routing.Cheapest`. Missing tasks keep the
            reference's table (code → deepseek-coder, creative → claude-3-opus, fast → gpt-3.5-turbo,
            vision → gpt-4o, chinese → qwen-max, reasoning and default → gpt-4.1).
        classifier: any callable ``text -> task`` (or ``(task, confidence, reason)``); see
            :func:`aisa_integrations.core.routing.model_classifier` for one that asks a cheap model.
        **model_kwargs: settings for the models built from ids (api_key, base_url, temperature, ...)
            and, for list routes, the fallback policy fields.
    """

    router: TaskRouter
    model_kwargs: dict[str, Any] = {}

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _targets: dict[Any, Any] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        routes: Mapping[str, Any] | None = None,
        *,
        classifier: Any = None,
        catalog: Any = None,
        **kwargs: Any,
    ) -> None:
        outer = {k: kwargs.pop(k) for k in ("callbacks", "tags", "metadata", "rate_limiter") if k in kwargs}
        if isinstance(kwargs.get("api_key"), str):
            # Kept for the models built per route; as a SecretStr it never shows in repr() or dumpd().
            kwargs["api_key"] = SecretStr(kwargs["api_key"])
        router = kwargs.pop("router", None) or TaskRouter(
            routes, classifier=classifier, catalog=catalog, model_of=_model_of
        )
        # Fail now, not at the first request, if the key is missing.
        AIsaChatModel(model="gpt-4.1", **{k: v for k, v in kwargs.items() if k in AIsaChatModel.model_fields})
        super().__init__(router=router, model_kwargs=kwargs, **outer)

    @property
    def model_name(self) -> str:
        default = self.router.routes.get("default")
        return default if isinstance(default, str) else "aisa-router"

    @property
    def _llm_type(self) -> str:
        return "aisa-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"routes": {k: _describe(v) for k, v in self.router.routes.items()}}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="aisa", ls_model_name=kwargs.get("model", self.model_name), ls_model_type="chat"
        )
        if stop:
            params["ls_stop"] = stop
        return params

    # -- task resolution -------------------------------------------------------------------
    @staticmethod
    def _explicit_task(input: Any, config: RunnableConfig | None, kwargs: dict[str, Any]) -> Any:
        if isinstance(input, Mapping) and "input" in input and set(input) <= {"input", "task"}:
            if input.get("task"):
                kwargs["task"] = input["task"]
            input = input["input"]
        configured = ((config or {}).get("configurable") or {}).get("task")
        if configured and "task" not in kwargs:
            kwargs["task"] = configured
        return input

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AIMessage:
        input = self._explicit_task(input, config, kwargs)
        return super().invoke(input, config, stop=stop, **kwargs)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AIMessage:
        input = self._explicit_task(input, config, kwargs)
        return await super().ainvoke(input, config, stop=stop, **kwargs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        input = self._explicit_task(input, config, kwargs)
        yield from super().stream(input, config, stop=stop, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        input = self._explicit_task(input, config, kwargs)
        async for chunk in super().astream(input, config, stop=stop, **kwargs):
            yield chunk

    # -- the decision ----------------------------------------------------------------------
    def decide(self, messages: list[BaseMessage], **kwargs: Any) -> RouteDecision:
        """Where a request would go, and why, without sending it."""
        images, text, chars = _images_and_text(messages)
        try:
            return self.router.decide(
                text, needs=_needs(messages, kwargs, images, chars), images=images, task=kwargs.get("task")
            )
        except AIsaError as exc:
            raise as_langchain_error(exc) from None

    def _target(self, decision: RouteDecision) -> Runnable:
        target = decision.target
        key: Any = tuple(target) if isinstance(target, list) else target if isinstance(target, str) else id(target)
        cached = self._targets.get(key)
        if cached is not None:
            return cached
        with self._lock:
            if key not in self._targets:
                if isinstance(target, str):
                    fields = {k: v for k, v in self.model_kwargs.items() if k in AIsaChatModel.model_fields}
                    self._targets[key] = AIsaChatModel(model=target, **fields)
                elif isinstance(target, list):
                    members = [
                        AIsaChatModel(
                            model=t, **{k: v for k, v in self.model_kwargs.items() if k in AIsaChatModel.model_fields}
                        )
                        if isinstance(t, str)
                        else t
                        for t in target
                    ]
                    policy = {k: v for k, v in self.model_kwargs.items() if k not in AIsaChatModel.model_fields}
                    self._targets[key] = FallbackRunnable(members, **policy)
                else:
                    self._targets[key] = target
            return self._targets[key]

    @staticmethod
    def _record(manager: Any, decision: RouteDecision, text: str) -> None:
        if manager is None:
            return
        run = manager.on_chain_start({"name": "aisa_route"}, {"text": text[:500]}, name="aisa_route")
        run.on_chain_end(decision.to_dict())

    @staticmethod
    async def _arecord(manager: Any, decision: RouteDecision, text: str) -> None:
        if manager is None:
            return
        run = await manager.on_chain_start({"name": "aisa_route"}, {"text": text[:500]}, name="aisa_route")
        await run.on_chain_end(decision.to_dict())

    # -- calls -----------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        task = kwargs.pop("task", None)
        decision = self.decide(messages, task=task, **kwargs)
        callbacks = child_callbacks(run_manager, CallbackManager)
        self._record(callbacks, decision, _images_and_text(messages)[1])
        config: RunnableConfig = {"callbacks": callbacks}
        target = self._target(decision)
        message = _as_message(target.invoke(messages, config, **_call_kwargs(target, stop, kwargs)))
        message.response_metadata = {**message.response_metadata, "aisa_route": decision.to_dict()}
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        task = kwargs.pop("task", None)
        decision = self.decide(messages, task=task, **kwargs)
        callbacks = child_callbacks(run_manager, AsyncCallbackManager)
        await self._arecord(callbacks, decision, _images_and_text(messages)[1])
        config: RunnableConfig = {"callbacks": callbacks}
        target = self._target(decision)
        message = _as_message(await target.ainvoke(messages, config, **_call_kwargs(target, stop, kwargs)))
        message.response_metadata = {**message.response_metadata, "aisa_route": decision.to_dict()}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        task = kwargs.pop("task", None)
        decision = self.decide(messages, task=task, **kwargs)
        callbacks = child_callbacks(run_manager, CallbackManager)
        self._record(callbacks, decision, _images_and_text(messages)[1])
        target = self._target(decision)
        for value in target.stream(messages, {"callbacks": callbacks}, **_call_kwargs(target, stop, kwargs)):
            generation = ChatGenerationChunk(message=_as_chunk(value))
            if run_manager is not None and generation.text:
                run_manager.on_llm_new_token(generation.text, chunk=generation)
            yield generation
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", response_metadata={"aisa_route": decision.to_dict()})
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        task = kwargs.pop("task", None)
        decision = self.decide(messages, task=task, **kwargs)
        callbacks = child_callbacks(run_manager, AsyncCallbackManager)
        await self._arecord(callbacks, decision, _images_and_text(messages)[1])
        target = self._target(decision)
        async for value in target.astream(messages, {"callbacks": callbacks}, **_call_kwargs(target, stop, kwargs)):
            generation = ChatGenerationChunk(message=_as_chunk(value))
            if run_manager is not None and generation.text:
                await run_manager.on_llm_new_token(generation.text, chunk=generation)
            yield generation
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", response_metadata={"aisa_route": decision.to_dict()})
        )


def _call_kwargs(target: Any, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call options for a route target: chat models take them; a plain Runnable cannot."""
    if isinstance(target, BaseChatModel | RunnableBinding):
        return {"stop": stop, **kwargs}
    dropped = sorted(k for k, v in kwargs.items() if v is not None)
    if dropped or stop:
        raise InvalidRequestError(
            f"The route for this request is a plain Runnable, which cannot take {dropped or ['stop']}; "
            "route tool or structured-output requests to a chat model."
        )
    return {}


def _model_of(target: Any) -> str | None:
    if isinstance(target, FallbackRunnable):
        return target.model_name
    if isinstance(target, BaseChatModel):
        return getattr(target, "model", None) or getattr(target, "model_name", None)
    return None


def _describe(target: Any) -> Any:
    if isinstance(target, str | list | tuple):
        return target
    return _model_of(target) or type(target).__name__
