"""``AIsaChatModel``: every model behind the AIsa gateway as a LangChain chat model."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_function
from langchain_core.utils.pydantic import is_basemodel_subclass
from langchain_core.utils.utils import _build_model_kwargs, from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from ..core.catalog import ModelCatalog, ModelInfo, default_catalog
from ..core.chat import (
    acreate_chat_completion,
    astream_chat_completion,
    create_chat_completion,
    stream_chat_completion,
)
from ..core.config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_TIMEOUT, ClientConfig
from ..core.errors import AIsaError, InvalidRequestError
from ._convert import (
    StreamState,
    chunk_to_generation,
    completion_to_result,
    format_tool_choice,
    format_tools,
    messages_to_openai,
    to_legacy_functions,
)
from ._errors import as_langchain_error

__all__ = ["AIsaChatModel"]

StructuredOutputMethod = Literal["function_calling", "json_schema", "json_mode"]


def _response_format(schema: Any, strict: bool | None) -> dict[str, Any]:
    """A pydantic model, TypedDict or JSON schema as a ``json_schema`` response_format."""
    if isinstance(schema, Mapping) and schema.get("type") in ("json_schema", "json_object"):
        return dict(schema)
    function = convert_to_openai_function(schema, strict=strict)
    json_schema: dict[str, Any] = {"name": function["name"], "schema": function["parameters"]}
    if function.get("description"):
        json_schema["description"] = function["description"]
    if strict is not None:
        json_schema["strict"] = strict
    return {"type": "json_schema", "json_schema": json_schema}


def _is_formatted_tool(tool: Any) -> bool:
    return isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool


class AIsaChatModel(BaseChatModel):
    """Any model behind the AIsa gateway (GPT, Claude, Gemini, Qwen, DeepSeek, Grok) in LangChain.

    Built on the openai SDK with the AIsa base URL; the key comes from ``api_key`` or
    ``AISA_API_KEY`` (never ``OPENAI_API_KEY``). Supports invoke/stream/batch sync and async, tools
    (also in the legacy ``functions`` format), structured output, vision and file blocks, and
    reports usage with the gateway's ``cost`` and ``credits_remaining``.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import AIsaChatModel
        >>> from aisa_integrations.testing import AIsaSimulator
        >>> with AIsaSimulator() as sim:
        ...     llm = AIsaChatModel(model="claude-3-sonnet", api_key=sim.api_key, base_url=sim.base_url)
        ...     reply = llm.invoke("Write a haiku about routers")
        ...     (reply.response_metadata["model_name"], reply.usage_metadata["total_tokens"] > 0)
        ('claude-3-sonnet', True)

    Tools and structured output work as with any LangChain chat model::

        llm.bind_tools([get_weather], tool_choice="any").invoke("Weather in Tokyo?").tool_calls
        llm.with_structured_output(Person, method="json_schema").invoke("Ada is 36")
    """

    model: str = Field(default="gpt-4.1", alias="model_name")
    """Model id, as in the AIsa catalog (``gpt-4.1``, ``claude-3-sonnet``, ``qwen-max``, ...)."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env(API_KEY_ENV, default=None))
    """AIsa API key; defaults to ``AISA_API_KEY``."""
    base_url: str | None = Field(default_factory=from_env(BASE_URL_ENV, default=None))
    """Gateway URL; defaults to ``AISA_BASE_URL``, then ``https://api.aisa.one/v1``."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] | str | None = Field(default=None, alias="stop_sequences")
    seed: int | None = None
    timeout: float | None = Field(default=DEFAULT_TIMEOUT, alias="request_timeout")
    """Seconds per request (and per read while streaming)."""
    max_retries: int | None = None
    """Retries by the openai SDK on 408/409/429/5xx and connection errors (default 2)."""
    streaming: bool = False
    """Stream under the hood even for ``invoke``."""
    stream_usage: bool = True
    """Ask for the usage chunk when streaming (``stream_options.include_usage``)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other request parameters (gateway or provider extras) sent in the request body."""
    default_headers: dict[str, str] | None = None
    http_client: Any = Field(default=None, exclude=True)
    """An ``httpx2.Client`` to use instead of the shared pool."""
    http_async_client: Any = Field(default=None, exclude=True)
    """An ``httpx2.AsyncClient`` to use instead of the shared pool."""
    tool_format: Literal["tools", "functions"] = "tools"
    """``"functions"`` speaks the legacy ``functions``/``function_call`` format."""
    catalog: ModelCatalog | None = Field(default=None, exclude=True)
    """Model capabilities to consult (the process-wide catalog by default)."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    _config_cache: tuple[tuple[Any, ...], ClientConfig] | None = PrivateAttr(default=None)

    # -- construction ----------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _collect_model_kwargs(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return _build_model_kwargs(values, cls._known_field_names())
        return values

    @classmethod
    def _known_field_names(cls) -> set[str]:
        names = set()
        for name, field in cls.model_fields.items():
            names.add(name)
            if field.alias:
                names.add(field.alias)
        return names

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Resolved here, not in a validator, so a missing key surfaces as MissingAPIKeyError (naming
        # AISA_API_KEY) rather than a pydantic ValidationError; either way before any request.
        _ = self._config

    @property
    def _config(self) -> ClientConfig:
        """The client configuration, re-resolved if a field it depends on changed (model_copy)."""
        key = (
            self.api_key,
            self.base_url,
            self.timeout,
            self.max_retries,
            id(self.default_headers),
            id(self.http_client),
            id(self.http_async_client),
        )
        cached = self._config_cache
        if cached is None or cached[0] != key:
            config = ClientConfig.resolve(
                api_key=self.api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
                default_headers=self.default_headers,
                http_client=self.http_client,
                http_async_client=self.http_async_client,
            )
            self._config_cache = cached = (key, config)
        return cached[1]

    def _resolve_model_profile(self) -> ModelProfile | None:
        info = self.model_info
        if not info.known:
            return None
        profile: dict[str, Any] = {"text_inputs": True, "text_outputs": True}
        for key, value in (
            ("max_input_tokens", info.context_window),
            ("max_output_tokens", info.max_output_tokens),
            ("image_inputs", info.vision),
            ("image_url_inputs", info.vision),
            ("tool_calling", info.tools),
            ("tool_choice", info.tools),
            ("tool_call_streaming", info.tools),
            ("structured_output", info.json_schema),
            ("reasoning_output", info.reasoning),
        ):
            if value is not None:
                profile[key] = value
        return ModelProfile(**profile)  # type: ignore[typeddict-item]

    # -- identity --------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The model id (LangChain's conventional attribute name)."""
        return self.model

    @property
    def model_info(self) -> ModelInfo:
        """What the catalog knows about this model."""
        return (self.catalog or default_catalog()).info(self.model)

    @property
    def _llm_type(self) -> str:
        return "aisa-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["aisa_integrations", "langchain", "chat_model"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": API_KEY_ENV}

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "seed": self.seed,
            "stop": [self.stop] if isinstance(self.stop, str) else self.stop,
        }
        return {**{k: v for k, v in params.items() if v is not None}, **self.model_kwargs}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model, "base_url": self._config.base_url, **self._default_params}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = self._default_params
        model = kwargs.get("model", self.model)
        ls = LangSmithParams(ls_provider="aisa", ls_model_name=model, ls_model_type="chat")
        temperature = kwargs.get("temperature", params.get("temperature"))
        if temperature is not None:
            ls["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", params.get("max_tokens"))
        if max_tokens is not None:
            ls["ls_max_tokens"] = max_tokens
        stop = stop or kwargs.get("stop") or params.get("stop")
        if stop:
            ls["ls_stop"] = [stop] if isinstance(stop, str) else list(stop)
        return ls

    # -- request ---------------------------------------------------------------------------
    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        legacy = kwargs.pop("tool_format", self.tool_format) == "functions"
        kwargs.pop("stream", None)
        request = self._default_params
        if stop is not None:
            request["stop"] = stop
        request.update(kwargs)
        tools = request.get("tools")
        if tools:
            if not all(_is_formatted_tool(t) for t in tools):
                request["tools"] = tools = format_tools(tools)
            if "tool_choice" in request:
                request["tool_choice"] = format_tool_choice(request["tool_choice"], tools)
        response_format = request.get("response_format")
        if response_format is not None and not isinstance(response_format, Mapping):
            request["response_format"] = _response_format(response_format, None)
        request["messages"] = messages_to_openai(messages, legacy_functions=legacy)
        if legacy:
            to_legacy_functions(request)
        return request

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        legacy = kwargs.get("tool_format", self.tool_format) == "functions"
        kwargs.pop("stream_usage", None)
        try:
            request = self._request(messages, stop, kwargs)
            completion = create_chat_completion(self._config, request)
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        return completion_to_result(completion, legacy_functions=legacy)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        legacy = kwargs.get("tool_format", self.tool_format) == "functions"
        kwargs.pop("stream_usage", None)
        try:
            request = self._request(messages, stop, kwargs)
            completion = await acreate_chat_completion(self._config, request)
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        return completion_to_result(completion, legacy_functions=legacy)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        include_usage = kwargs.pop("stream_usage", self.stream_usage)
        state = StreamState()
        try:
            request = self._request(messages, stop, kwargs)
            for raw in stream_chat_completion(self._config, request, include_usage=include_usage):
                generation = chunk_to_generation(raw, state)
                if generation is None:
                    continue
                if run_manager is not None:
                    run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        include_usage = kwargs.pop("stream_usage", self.stream_usage)
        state = StreamState()
        try:
            request = self._request(messages, stop, kwargs)
            async for raw in astream_chat_completion(self._config, request, include_usage=include_usage):
                generation = chunk_to_generation(raw, state)
                if generation is None:
                    continue
                if run_manager is not None:
                    await run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__

    # -- tools and structured output -------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        response_format: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (BaseTool, functions, pydantic models, TypedDicts or OpenAI dicts).

        ``tool_choice``: "auto", "none", "any"/"required", True (the only tool), or a tool name.
        Invalid tool names and unknown tool_choice names raise before anything is sent.
        ``response_format`` (a schema or an OpenAI response_format dict) is forwarded, as
        LangChain's ``create_agent`` does for provider-side structured output.
        """
        kwargs = tool_binding(tools, tool_choice, parallel_tool_calls, strict, response_format, kwargs)
        if kwargs.get("tools") and self.model_info.tools is False:
            warnings.warn(
                f"The catalog says {self.model!r} does not support tool calling; the gateway may reject "
                "the request. Pick a tool-capable model (aisa_integrations.default_catalog().select(tools=True)).",
                stacklevel=2,
            )
        return super().bind(**kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: StructuredOutputMethod = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Return output matching ``schema`` (pydantic model, TypedDict or JSON schema).

        ``method``: ``function_calling`` (a forced tool call; default), ``json_schema`` (the
        provider's structured output) or ``json_mode`` (``json_object``; describe the shape in the
        prompt). ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}``.
        """
        if kwargs:
            raise InvalidRequestError(f"Unknown arguments to with_structured_output: {sorted(kwargs)}")
        return structured_output_runnable(
            self,
            schema,
            method=method,
            include_raw=include_raw,
            strict=strict,
            model_info=self.model_info,
            parallel_tool_calls=False if self.tool_format == "tools" else None,
        )


def tool_binding(
    tools: Sequence[Any],
    tool_choice: Any,
    parallel_tool_calls: bool | None,
    strict: bool | None,
    response_format: Any,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The call kwargs ``bind_tools`` binds: tools formatted and checked once, before anything is sent."""
    try:
        formatted = format_tools(tools, strict=strict)
        if tool_choice is not None and formatted:
            kwargs["tool_choice"] = format_tool_choice(tool_choice, formatted)
    except AIsaError as exc:
        raise as_langchain_error(exc) from None
    if formatted:
        kwargs["tools"] = formatted
    if parallel_tool_calls is not None:
        kwargs["parallel_tool_calls"] = parallel_tool_calls
    if response_format is not None:
        kwargs["response_format"] = _response_format(response_format, strict)
    return kwargs


def structured_output_runnable(
    llm: BaseChatModel,
    schema: dict[str, Any] | type | None,
    *,
    method: StructuredOutputMethod,
    include_raw: bool,
    strict: bool | None,
    model_info: ModelInfo | None,
    parallel_tool_calls: bool | None = False,
) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
    """``llm`` bound for structured output and followed by the matching parser (shared by the
    chat model and the fallback / routing runnables)."""
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    if method == "function_calling":
        if schema is None:
            raise InvalidRequestError("method='function_calling' needs a schema.")
        tool_name = convert_to_openai_function(schema)["name"]
        bound = llm.bind_tools(
            [schema],
            tool_choice=tool_name,
            parallel_tool_calls=parallel_tool_calls,
            strict=strict,
            ls_structured_output_format=trace,
        )
        parser: Runnable = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
        )
    elif method in ("json_schema", "json_mode"):
        if method == "json_schema":
            if schema is None:
                raise InvalidRequestError("method='json_schema' needs a schema.")
            if model_info is not None and model_info.json_schema is False:
                warnings.warn(
                    f"The catalog says {model_info.id!r} does not honour json_schema response formats; "
                    "method='function_calling' is the reliable choice for it.",
                    stacklevel=3,
                )
            response_format = _response_format(schema, strict)
        else:
            response_format = {"type": "json_object"}
        bound = llm.bind(response_format=response_format, ls_structured_output_format=trace)
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
    else:
        raise InvalidRequestError(f"Unknown method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'.")
    if not include_raw:
        return bound | parser
    parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    on_error = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parse.with_fallbacks([on_error], exception_key="parsing_error")
