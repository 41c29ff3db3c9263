"""``AIsaLLM``: every model behind the AIsa gateway as a LlamaIndex function-calling LLM.

A LlamaIndex ``FunctionCallingLLM`` over the same engine ``AIsaChatModel`` uses
(:mod:`aisa_integrations.core.engine`); this module only converts between LlamaIndex's messages,
tools and responses and the engine's OpenAI-format dicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from ..core import wire
from ..core.capabilities import structured_output_method
from ..core.catalog import ModelInfo, default_catalog
from ..core.config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ClientConfig
from ..core.costs import CostTracker
from ..core.engine import Call, Engine, make_plan, plan_settings
from ..core.errors import InvalidRequestError
from ..core.fallback import FallbackPolicy, FallbackReport
from ._convert import StreamAccumulator, completion_to_response, messages_to_openai, partial_json, tool_to_openai
from .rate_limiter import AIsaRateLimiter

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from ..core.routing import RouteDecision

__all__ = ["AIsaLLM"]

#: Assumed when the catalog does not know a model and no context_window override is given.
UNKNOWN_CONTEXT_WINDOW = 8192


class AIsaLLM(FunctionCallingLLM):
    """Any model behind the AIsa gateway (GPT, Claude, Gemini, Qwen, DeepSeek, Grok) in LlamaIndex.

    Built on the openai SDK with the AIsa base URL; the key comes from ``api_key`` or
    ``AISA_API_KEY`` (never ``OPENAI_*``). ``metadata`` (context window, tool support) comes from
    the model catalog, so agents and prompt packing work out of the box; usage, ``cost`` and
    ``credits_remaining`` arrive in every response, streamed ones included. ``fallback_models=``,
    ``routes=`` and ``first_token_timeout=`` run the same engine as ``AIsaChatModel``.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import AIsaLLM
        >>> from aisa_integrations.testing import AIsaSimulator
        >>> with AIsaSimulator() as sim:
        ...     llm = AIsaLLM(model="qwen-max", api_key=sim.api_key, api_base=sim.base_url)
        ...     response = llm.complete("Say hello")
        ...     (llm.metadata.context_window, response.additional_kwargs["cost"] > 0)
        (32768, True)
    """

    model: str = Field(default="gpt-4.1", description="Model id, as in the AIsa catalog.")
    api_key: str | None = Field(default=None, exclude=True, repr=False, description="Defaults to AISA_API_KEY.")
    api_base: str | None = Field(default=None, alias="base_url", description="Defaults to AISA_BASE_URL.")
    temperature: float | None = Field(default=None, description="Sampling temperature (provider default if unset).")
    max_tokens: int | None = Field(default=None, description="Largest completion to generate.")
    timeout: float | None = Field(default=DEFAULT_TIMEOUT, description="Seconds per request.")
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        description="Retries by the openai SDK for a single model (with fallback the policy is the one retry layer).",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other request parameters, sent in the request body."
    )
    default_headers: dict[str, str] | None = Field(default=None, description="Extra HTTP headers.")
    context_window: int | None = Field(default=None, description="Override the catalog's context window.")
    is_function_calling: bool | None = Field(default=None, description="Override the catalog's tool support.")
    stream_usage: bool = Field(default=True, description="Report usage in streamed responses.")
    strict: bool = Field(default=False, description="Strict JSON schemas for tools.")
    fallback_models: list[str] = Field(
        default_factory=list, description="Models to fail over to, in order (policy: core.fallback)."
    )
    fallback_policy: FallbackPolicy | None = Field(default=None, exclude=True, description="Fallback policy.")
    first_token_timeout: float | None = Field(
        default=None, description="Abandon an attempt with no content within this many seconds (and fail over)."
    )
    stall_timeout: float | None = Field(
        default=None, description="Abandon an attempt silent this many seconds after its content started."
    )
    routes: dict[str, Any] | None = Field(
        default=None,
        description="Route by task (core.routing): task -> model id, list of ids (fallback) or Cheapest(...).",
    )
    classifier: Any = Field(
        default=None,
        exclude=True,
        description="Task classifier for routing: TaskClassifier, a trained LexicalModel or its path, or text -> task.",
    )
    sticky_routing: bool = Field(
        default=True, description="Keep a conversation's task (and model) across follow-ups that name no task."
    )
    budget: CostTracker | None = Field(
        default=None,
        exclude=True,
        description="This LLM's own spend cap: a CostTracker(max_cost=...) checked before every request.",
    )
    api: Literal["chat", "gemini-native"] = Field(
        default="chat",
        description="Wire format: 'chat' (/chat/completions) or 'gemini-native' (Gemini's :generateContent; "
        "Gemini models only; native options in additional_kwargs={'extra_body': {'gemini': {...}}}).",
    )
    mid_stream: Literal["raise", "continue"] = Field(
        default="raise", description="After content was streamed: raise, or continue on a prefill-capable model."
    )
    check_capabilities: bool = Field(
        default=True, description="Skip (or refuse) models the catalog says cannot serve a request."
    )

    _config: ClientConfig = PrivateAttr()
    _engine: Engine = PrivateAttr()

    def __init__(
        self,
        *,
        http_client: Any = None,
        async_http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._build(http_client, async_http_client)

    def _build(self, http_client: Any = None, async_http_client: Any = None) -> None:
        # Resolve now: a missing key fails here, naming AISA_API_KEY, before any request.
        self._config = ClientConfig.resolve(
            api_key=self.api_key,
            base_url=self.api_base,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            http_client=http_client,
            http_async_client=async_http_client,
        )
        self.api_base = self._config.base_url
        self.api_key = None  # the key lives only in the (secret) client config from here on
        self._engine = Engine(
            make_plan(
                self._config,
                model=self.model,
                # LlamaIndex takes each call's first request from the limiter itself; the engine the rest.
                rate_limiter=self.rate_limiter.limiter if isinstance(self.rate_limiter, AIsaRateLimiter) else None,
                first_request_paid=True,
                **plan_settings(self),
            )
        )

    def __getstate__(self) -> dict[str, Any]:
        # A pickle never carries the key: it is read again from AISA_API_KEY when unpickled. (pydantic's
        # own state, not LlamaIndex's, which would warn about dropping the engine it cannot pickle.)
        state = BaseModel.__getstate__(self)
        private = dict(state.get("__pydantic_private__") or {})
        private.pop("_config", None)
        private.pop("_engine", None)
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._build()  # no key in the environment: MissingAPIKeyError now, naming AISA_API_KEY

    model_config = {"populate_by_name": True, "arbitrary_types_allowed": True}

    @classmethod
    def class_name(cls) -> str:
        return "AIsaLLM"

    @property
    def model_info(self) -> ModelInfo:
        return default_catalog().info(self.model)

    @property
    def metadata(self) -> LLMMetadata:
        info = self.model_info
        function_calling = self.is_function_calling if self.is_function_calling is not None else bool(info.tools)
        return LLMMetadata(
            context_window=self.context_window or info.context_window or UNKNOWN_CONTEXT_WINDOW,
            num_output=self.max_tokens or -1,
            is_chat_model=True,
            is_function_calling_model=function_calling,
            model_name=self.model,
        )

    # -- requests --------------------------------------------------------------------------
    def _prepare(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Call:
        task = kwargs.pop("task", None)
        defaults = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        request = wire.merge_params(defaults, extras=self.additional_kwargs, call=kwargs)
        request["messages"] = messages_to_openai(messages)
        return self._engine.prepare(request, explicit=tuple(kwargs), task=task)

    def decide(self, messages: Sequence[ChatMessage], **kwargs: Any) -> RouteDecision:
        """Where a request would be routed, and why, without sending it."""
        if self._engine.plan.router is None:
            raise InvalidRequestError("This AIsaLLM has no routes; pass routes={...} to route by task.")
        route = self._prepare(messages, dict(kwargs)).route
        assert route is not None
        return route

    @staticmethod
    def _extra(report: FallbackReport | None, route: RouteDecision | None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if report is not None:
            extra["aisa"] = report.to_dict()
        if route is not None:
            extra["aisa_route"] = route.to_dict()
        return extra

    def _response(
        self, completion: dict[str, Any], report: FallbackReport | None, route: RouteDecision | None
    ) -> ChatResponse:
        response = completion_to_response(completion)
        extra = self._extra(report, route)
        if extra:
            response.additional_kwargs.update(extra)
        return response

    @staticmethod
    def _final(last: ChatResponse | None, extra: dict[str, Any]) -> ChatResponse:
        last = last or ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=""))
        return ChatResponse(
            message=last.message, delta="", raw=last.raw, additional_kwargs={**last.additional_kwargs, **extra}
        )

    # -- chat ------------------------------------------------------------------------------
    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._prepare(messages, kwargs)
        outcome = self._engine.complete(call)
        assert outcome.completion is not None
        return self._response(outcome.completion, outcome.report, outcome.route)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._prepare(messages, kwargs)
        outcome = await self._engine.acomplete(call)
        assert outcome.completion is not None
        return self._response(outcome.completion, outcome.report, outcome.route)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        call = self._prepare(messages, kwargs)  # bad input raises here, before the generator starts

        def gen() -> ChatResponseGen:
            accumulator = StreamAccumulator()
            stream = self._engine.stream(call)
            last = None
            try:
                for chunk in stream:
                    response = accumulator.add(chunk)
                    if response is not None:
                        last = response
                        yield response
            finally:
                stream.close()
            extra = self._extra(stream.report, stream.route)
            if extra:
                yield self._final(last, extra)

        return gen()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        call = self._prepare(messages, kwargs)

        async def gen() -> ChatResponseAsyncGen:
            accumulator = StreamAccumulator()
            stream = self._engine.astream(call)
            last = None
            try:
                async for chunk in stream:
                    response = accumulator.add(chunk)
                    if response is not None:
                        last = response
                        yield response
            finally:
                await stream.aclose()
            extra = self._extra(stream.report, stream.route)
            if extra:
                yield self._final(last, extra)

        return gen()

    # Public calls are decorated once each: completions use the undecorated chat internals, so one call
    # fires one LLM event (callback handlers would otherwise count a completion twice).
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # -- tools -----------------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        strict = self.strict if strict is None else strict
        specs = wire.check_tools([tool_to_openai(tool, strict=strict) for tool in tools])
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            choice = tool_choice if tool_choice is not None else ("required" if tool_required else "auto")
            prepared["tool_choice"] = wire.normalize_tool_choice(choice, specs)
            prepared["parallel_tool_calls"] = allow_parallel_tool_calls
        return prepared

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a (possibly partial, streamed) response."""
        selections = []
        for block in response.message.blocks:
            if not isinstance(block, ToolCallBlock):
                continue
            args = block.tool_kwargs
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args else {}
                except json.JSONDecodeError:
                    args = partial_json(args)
            selections.append(
                ToolSelection(
                    tool_id=block.tool_call_id or "",
                    tool_name=block.tool_name,
                    tool_kwargs=args if isinstance(args, dict) else {},
                )
            )
        if not selections and error_on_no_tool_call:
            raise ValueError(f"Expected at least one tool call, but got none. (model={self.model})")
        return selections

    # -- structured output -----------------------------------------------------------------
    def _use_json_schema(self) -> bool:
        from llama_index.core.types import PydanticProgramMode

        default_mode = self.pydantic_program_mode == PydanticProgramMode.DEFAULT
        return default_mode and structured_output_method(self.model_info) == "json_schema"

    def structured_predict(
        self,
        output_cls: type[BaseModel],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> BaseModel:
        """A validated ``output_cls``: the json_schema response format where the catalog says the
        model honours it, LlamaIndex's function-calling program otherwise."""
        if not self._use_json_schema():
            return super().structured_predict(output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args)
        messages = self._extend_messages(prompt.format_messages(**prompt_args))
        response = self.chat(messages, response_format=wire.pydantic_format(output_cls), **(llm_kwargs or {}))
        return output_cls.model_validate_json(response.message.content or "")

    async def astructured_predict(
        self,
        output_cls: type[BaseModel],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> BaseModel:
        if not self._use_json_schema():
            return await super().astructured_predict(output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args)
        messages = self._extend_messages(prompt.format_messages(**prompt_args))
        response = await self.achat(messages, response_format=wire.pydantic_format(output_cls), **(llm_kwargs or {}))
        return output_cls.model_validate_json(response.message.content or "")
