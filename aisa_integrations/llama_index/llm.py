"""``AIsaLLM``: every model behind the AIsa gateway as a LlamaIndex function-calling LLM."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator, Sequence
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
    ImageBlock,
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

from ..core.catalog import ModelInfo, default_catalog
from ..core.chat import (
    acreate_chat_completion,
    astream_chat_completion,
    create_chat_completion,
    stream_chat_completion,
)
from ..core.config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ClientConfig
from ..core.errors import InvalidRequestError
from ..core.fallback import Candidate, FallbackPolicy, FallbackReport, FallbackRunner
from ..core.routing import Requirements, RouteDecision, TaskRouter, estimate_tokens
from ..core.usage import parse_usage
from ._convert import (
    StreamAccumulator,
    _partial_json,
    completion_to_response,
    messages_to_openai,
    tool_to_openai,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["AIsaLLM"]

#: Assumed when the catalog does not know a model and no context_window override is given.
UNKNOWN_CONTEXT_WINDOW = 8192


def _chunk_has_content(chunk: Any) -> bool:
    return any(c.delta is not None and (c.delta.content or c.delta.tool_calls) for c in chunk.choices)


def _chunk_text(chunk: Any) -> str:
    return "".join(c.delta.content or "" for c in chunk.choices if c.delta is not None)


def _chunk_cost(chunk: Any) -> float | None:
    usage = parse_usage(chunk.usage) if chunk.usage is not None else None
    return usage.cost if usage else None


def _json_schema_format(output_cls: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": output_cls.__name__, "schema": output_cls.model_json_schema()},
    }


class AIsaLLM(FunctionCallingLLM):
    """Any model behind the AIsa gateway (GPT, Claude, Gemini, Qwen, DeepSeek, Grok) in LlamaIndex.

    Built on the openai SDK with the AIsa base URL; the key comes from ``api_key`` or
    ``AISA_API_KEY`` (never ``OPENAI_*``). ``metadata`` (context window, tool support) comes from
    the model catalog, so agents and prompt packing work out of the box; usage, ``cost`` and
    ``credits_remaining`` arrive in every response, streamed ones included.

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
        default=DEFAULT_MAX_RETRIES, description="Retries by the openai SDK (the only retry layer)."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other request parameters, sent in the request body."
    )
    default_headers: dict[str, str] | None = Field(default=None, description="Extra HTTP headers.")
    context_window: int | None = Field(default=None, description="Override the catalog's context window.")
    is_function_calling: bool | None = Field(default=None, description="Override the catalog's tool support.")
    stream_usage: bool = Field(default=True, description="Ask for usage when streaming (include_usage).")
    strict: bool = Field(default=False, description="Strict JSON schemas for tools.")
    fallback_models: list[str] = Field(
        default_factory=list, description="Models to fail over to, in order (policy: core.fallback)."
    )
    fallback_policy: FallbackPolicy | None = Field(default=None, exclude=True, description="Fallback policy.")
    routes: dict[str, Any] | None = Field(
        default=None,
        description="Route by task (core.routing): task -> model id, list of ids (fallback) or Cheapest(...).",
    )
    classifier: Any = Field(default=None, exclude=True, description="Custom task classifier for routing.")
    mid_stream: Literal["raise", "continue"] = Field(
        default="raise", description="After content was streamed: raise, or continue on a prefill-capable model."
    )

    _config: ClientConfig = PrivateAttr()
    _attempt_config: ClientConfig = PrivateAttr()
    _router: TaskRouter | None = PrivateAttr(default=None)

    def __init__(
        self,
        *,
        http_client: Any = None,
        async_http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.api_key = None
        if self.routes is not None or self.classifier is not None:
            self._router = TaskRouter(self.routes, classifier=self.classifier)
        # With fallback the runner is the one retry layer: the SDK's retries are switched off.
        self._attempt_config = (
            dataclasses.replace(self._config, max_retries=0)
            if self.fallback_models or self._router is not None
            else self._config
        )  # the key lives only in the (secret) client config from here on

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
    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        task = kwargs.pop("task", None)
        request: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **self.additional_kwargs,
            **kwargs,
        }
        request["messages"] = messages_to_openai(messages)
        if self._router is not None:
            decision = self._route(messages, request, task)
            request["model"] = decision.model
            request["_aisa_route"] = decision
        return request

    def _route(self, messages: Sequence[ChatMessage], request: dict[str, Any], task: str | None) -> RouteDecision:
        assert self._router is not None
        images = sum(1 for m in messages for b in m.blocks if isinstance(b, ImageBlock))
        text = next((m.content or "" for m in reversed(messages) if m.role == MessageRole.USER), "")
        response_format = request.get("response_format")
        needs = Requirements(
            vision=images > 0,
            tools=bool(request.get("tools")),
            json_schema=isinstance(response_format, dict) and response_format.get("type") == "json_schema",
            prompt_tokens=estimate_tokens(request["messages"]),
        )
        return self._router.decide(text, needs=needs, images=images, task=task)

    def decide(self, messages: Sequence[ChatMessage], **kwargs: Any) -> RouteDecision:
        """Where a request would be routed, and why, without sending it."""
        if self._router is None:
            raise InvalidRequestError("This AIsaLLM has no routes; pass routes={...} to route by task.")
        request = self._request(messages, dict(kwargs))
        return request["_aisa_route"]

    def _fallback_models(self, request: dict[str, Any]) -> list[str]:
        """The models this request may be served by, in order ([] for a single plain call)."""
        decision = request.get("_aisa_route")
        if decision is not None and isinstance(decision.target, list):
            return [m for m in decision.target if isinstance(m, str)]
        if decision is not None:
            return [decision.model]
        return [self.model, *self.fallback_models] if self.fallback_models else []

    # -- fallback ---------------------------------------------------------------------------
    def _runner(self, models: list[str]) -> FallbackRunner:
        catalog = default_catalog()
        candidates = []
        for model in models:
            info = catalog.info(model)
            candidates.append(
                Candidate(
                    model=model,
                    base_url=self._config.base_url,
                    target=model,
                    context_window=info.context_window,
                    accepts_prefill=info.assistant_prefill is True,
                )
            )
        return FallbackRunner(candidates, self.fallback_policy or FallbackPolicy())

    def _attempt_request(self, request: dict[str, Any], cand: Candidate[str], prefill: str | None) -> dict[str, Any]:
        attempt = {k: v for k, v in request.items() if k != "_aisa_route"}
        attempt["model"] = cand.model
        if prefill is not None:
            attempt["messages"] = [*request["messages"], {"role": "assistant", "content": prefill}]
        return attempt

    def _fallback_chunks(self, request: dict[str, Any], report: FallbackReport) -> Iterator[Any]:
        def open_stream(cand: Candidate[str], prefill: str | None) -> Iterator[Any]:
            return stream_chat_completion(
                self._attempt_config, self._attempt_request(request, cand, prefill), include_usage=True
            )

        return self._runner(self._fallback_models(request)).stream(
            open_stream,
            is_content=_chunk_has_content,
            text_of=_chunk_text,
            cost_of=_chunk_cost,
            mid_stream=self.mid_stream,
            report=report,
        )

    def _afallback_chunks(self, request: dict[str, Any], report: FallbackReport) -> AsyncIterator[Any]:
        def open_stream(cand: Candidate[str], prefill: str | None) -> AsyncIterator[Any]:
            return astream_chat_completion(
                self._attempt_config, self._attempt_request(request, cand, prefill), include_usage=True
            )

        return self._runner(self._fallback_models(request)).astream(
            open_stream,
            is_content=_chunk_has_content,
            text_of=_chunk_text,
            cost_of=_chunk_cost,
            mid_stream=self.mid_stream,
            report=report,
        )

    @staticmethod
    def _with_report(response: ChatResponse | None, report: FallbackReport, request: dict[str, Any]) -> ChatResponse:
        response = response or ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=""))
        extra: dict[str, Any] = {"aisa": report.to_dict()}
        if request.get("_aisa_route") is not None:
            extra["aisa_route"] = request["_aisa_route"].to_dict()
        return ChatResponse(
            message=response.message,
            delta="",
            raw=response.raw,
            additional_kwargs={**response.additional_kwargs, **extra},
        )

    # -- chat ------------------------------------------------------------------------------
    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, kwargs)
        if not self._fallback_models(request):
            return completion_to_response(create_chat_completion(self._config, request))
        # Streamed under the hood: that is how a silent model is caught at first_token_timeout.
        report = FallbackReport(requested_model=self.model)
        accumulator = StreamAccumulator()
        last = None
        for chunk in self._fallback_chunks(request, report):
            last = accumulator.add(chunk) or last
        return self._with_report(last, report, request)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, kwargs)
        if not self._fallback_models(request):
            return completion_to_response(await acreate_chat_completion(self._config, request))
        report = FallbackReport(requested_model=self.model)
        accumulator = StreamAccumulator()
        last = None
        async for chunk in self._afallback_chunks(request, report):
            last = accumulator.add(chunk) or last
        return self._with_report(last, report, request)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._request(messages, kwargs)

        def gen() -> ChatResponseGen:
            accumulator = StreamAccumulator()
            report = FallbackReport(requested_model=self.model)
            planned = bool(self._fallback_models(request))
            chunks = (
                self._fallback_chunks(request, report)
                if planned
                else stream_chat_completion(self._config, request, include_usage=self.stream_usage)
            )
            last = None
            for chunk in chunks:
                response = accumulator.add(chunk)
                if response is not None:
                    last = response
                    yield response
            if planned:
                yield self._with_report(last, report, request)

        return gen()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        request = self._request(messages, kwargs)

        async def gen() -> ChatResponseAsyncGen:
            accumulator = StreamAccumulator()
            report = FallbackReport(requested_model=self.model)
            planned = bool(self._fallback_models(request))
            chunks = (
                self._afallback_chunks(request, report)
                if planned
                else astream_chat_completion(self._config, request, include_usage=self.stream_usage)
            )
            last = None
            async for chunk in chunks:
                response = accumulator.add(chunk)
                if response is not None:
                    last = response
                    yield response
            if planned:
                yield self._with_report(last, report, request)

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
        specs = [tool_to_openai(tool, strict=strict) for tool in tools]
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            prepared["tool_choice"] = self._tool_choice(tool_choice, tool_required, specs)
            prepared["parallel_tool_calls"] = allow_parallel_tool_calls
        return prepared

    @staticmethod
    def _tool_choice(choice: Any, required: bool, specs: list[dict[str, Any]]) -> Any:
        names = [s["function"]["name"] for s in specs]
        if choice is None:
            return "required" if required else "auto"
        if choice in ("auto", "none", "required"):
            return choice
        if isinstance(choice, dict):
            return choice
        if isinstance(choice, str):
            if choice not in names:
                raise InvalidRequestError(f"tool_choice={choice!r} names no given tool (tools: {names}).")
            return {"type": "function", "function": {"name": choice}}
        raise InvalidRequestError(
            f"tool_choice={choice!r} is not understood; use 'auto', 'none', 'required' or a name."
        )

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
                    args = _partial_json(args)
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

        return self.pydantic_program_mode == PydanticProgramMode.DEFAULT and self.model_info.json_schema is True

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
        response = self.chat(messages, response_format=_json_schema_format(output_cls), **(llm_kwargs or {}))
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
        response = await self.achat(messages, response_format=_json_schema_format(output_cls), **(llm_kwargs or {}))
        return output_cls.model_validate_json(response.message.content or "")
