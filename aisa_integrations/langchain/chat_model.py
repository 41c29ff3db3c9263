"""``AIsaChatModel``: every model behind the AIsa gateway as a LangChain chat model.

LangChain messages, tools and chunks in and out; what happens in between is decided by
:mod:`aisa_integrations.core.engine`.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_function
from langchain_core.utils.pydantic import is_basemodel_subclass
from langchain_core.utils.utils import _build_model_kwargs, from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from ..core import wire
from ..core.breakers import breakers
from ..core.capabilities import capabilities_of_models
from ..core.catalog import ModelCatalog, ModelInfo, default_catalog
from ..core.config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_TIMEOUT, ClientConfig
from ..core.costs import CostTracker
from ..core.engine import Call, Engine, ForeignItem, ForeignTarget, ModelTarget, Outcome, make_plan, plan_settings
from ..core.errors import AIsaError, InvalidRequestError
from ..core.fallback import FallbackPolicy
from ..core.tokens import count_message_tokens, count_tokens, tokenizer_for
from ._convert import (
    StreamState,
    chunk_to_generation,
    completion_to_result,
    format_tools,
    messages_to_openai,
)
from ._errors import as_langchain_error
from .rate_limiter import AIsaRateLimiter

if TYPE_CHECKING:  # routing is imported only by models that route
    from ..core.routing import RouteDecision

__all__ = ["AIsaChatModel"]

StructuredOutputMethod = Literal["function_calling", "json_schema", "json_mode"]
# Call keywords that steer this class rather than the request.
_OWN_CALL_KEYS = ("tool_format", "stream_usage", "task", "stream")


class _ForeignInput:
    """How to call a foreign member (a non-AIsa chat model or runnable) for this request: as a child
    run of this one (the callback manager is made only if a foreign member is called)."""

    def __init__(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_manager: Any,
        manager_cls: type,
    ) -> None:
        self.messages, self.stop, self.kwargs = messages, stop, kwargs
        self.run_manager, self.manager_cls = run_manager, manager_cls

    @functools.cached_property
    def callbacks(self) -> Any:
        return child_callbacks(self.run_manager, self.manager_cls)


def _response_format(schema: Any, strict: bool | None) -> dict[str, Any]:
    """A pydantic model, TypedDict or JSON schema as a ``json_schema`` response format (built by the core)."""
    if isinstance(schema, Mapping) and schema.get("type") in ("json_schema", "json_object", "text"):
        return dict(schema)
    if isinstance(schema, type) and is_basemodel_subclass(schema):
        return wire.pydantic_format(schema, strict=strict)
    try:
        function = convert_to_openai_function(schema, strict=strict)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidRequestError(
            f"response_format={schema!r} is not a schema: pass a pydantic model, a TypedDict, a JSON schema or an "
            f"OpenAI response_format dict ({exc})."
        ) from None
    return wire.json_schema_format(
        function["parameters"], name=function["name"], description=function.get("description"), strict=strict
    )


def child_callbacks(run_manager: Any, manager_cls: type) -> Any:
    """Callbacks that make a delegated call a child run of this run (LLM run managers lack
    ``get_child``; this is what chain run managers do)."""
    if run_manager is None:
        return None
    manager = manager_cls(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def _as_message(value: Any) -> AIMessage:
    if isinstance(value, AIMessage):
        return value
    return AIMessage(content=value if isinstance(value, str | list) else str(value))


def _as_chunk(value: Any) -> AIMessageChunk:
    if isinstance(value, AIMessageChunk):
        return value
    if isinstance(value, AIMessage):
        return AIMessageChunk(
            content=value.content,
            additional_kwargs=value.additional_kwargs,
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(value.tool_calls)
            ],
            response_metadata=value.response_metadata,
            usage_metadata=value.usage_metadata,
            id=value.id,
        )
    return AIMessageChunk(content=value if isinstance(value, str) else str(value))


def _chunk_is_content(value: Any) -> bool:
    if isinstance(value, AIMessageChunk | AIMessage):
        return bool(value.content) or bool(getattr(value, "tool_call_chunks", None) or value.tool_calls)
    return bool(value)


def _chunk_text(value: Any) -> str:
    if isinstance(value, AIMessage):
        return value.text
    return value if isinstance(value, str) else ""


def _chunk_cost(value: Any) -> float | None:
    meta = getattr(value, "response_metadata", None)
    return meta.get("cost") if meta else None


def foreign_target(member: Runnable) -> ForeignTarget:
    """A LangChain runnable the engine cannot call over the wire (another provider's chat model, a
    nested fallback, a plain runnable), called as LangChain calls it, as a child run."""
    chat = isinstance(member, BaseChatModel) or hasattr(member, "bind_tools")

    def prompt(fi: _ForeignInput, prefill: str | None) -> list[BaseMessage]:
        return fi.messages if prefill is None else [*fi.messages, AIMessage(prefill)]

    def options(fi: _ForeignInput) -> dict[str, Any]:
        return {"stop": fi.stop, **fi.kwargs} if chat else {}

    def call(fi: _ForeignInput, prefill: str | None) -> Any:
        return member.invoke(prompt(fi, prefill), {"callbacks": fi.callbacks}, **options(fi))

    async def acall(fi: _ForeignInput, prefill: str | None) -> Any:
        return await member.ainvoke(prompt(fi, prefill), {"callbacks": fi.callbacks}, **options(fi))

    def stream(fi: _ForeignInput, prefill: str | None) -> Iterator[Any]:
        return member.stream(prompt(fi, prefill), {"callbacks": fi.callbacks}, **options(fi))

    def astream(fi: _ForeignInput, prefill: str | None) -> AsyncIterator[Any]:
        return member.astream(prompt(fi, prefill), {"callbacks": fi.callbacks}, **options(fi))

    model = getattr(member, "model_name", None) if isinstance(member, AIsaChatModel) else None
    name = model or getattr(member, "model", None) or getattr(member, "model_name", None) or member.get_name()
    return ForeignTarget(
        name=str(name),
        call=call,
        acall=acall,
        stream=stream,
        astream=astream,
        is_content=_chunk_is_content,
        text_of=_chunk_text,
        cost_of=_chunk_cost,
        model=model,
        takes_request_options=chat,
    )


def target_of(member: Any) -> ModelTarget | ForeignTarget:
    """A fallback member or route value as an engine target: a plain ``AIsaChatModel`` is called over
    the wire with its own settings; anything else is called through LangChain."""
    own_limiter = getattr(member, "rate_limiter", None)
    # A member with LangChain's own kind of limiter is called through LangChain, which applies it; ours
    # travels with the member to the engine, which takes from it on every attempt at the member.
    wire_callable = own_limiter is None or isinstance(own_limiter, AIsaRateLimiter)
    if isinstance(member, AIsaChatModel) and member._is_plain and wire_callable:
        params = wire.merge_params(member._default_params, extras=member.model_kwargs)
        params.pop("model", None)
        limiter = own_limiter.limiter if isinstance(own_limiter, AIsaRateLimiter) else None
        return ModelTarget(member.model, params=params, config=member._config, api=member.api, rate_limiter=limiter)
    if isinstance(member, Runnable):
        return foreign_target(member)
    raise InvalidRequestError(
        f"A fallback member or route must be a model id, a chat model or a runnable; got {type(member).__name__}."
    )


def _raised_by_langchain_core(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is langchain-core's (its input handling, not ours)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "langchain_core" in tb.tb_frame.f_code.co_filename


class AIsaChatModel(BaseChatModel):
    """Any model behind the AIsa gateway (GPT, Claude, Gemini, Qwen, DeepSeek, Grok) in LangChain.

    Built on the openai SDK with the AIsa base URL; the key comes from ``api_key`` or
    ``AISA_API_KEY`` (never ``OPENAI_API_KEY``). Supports invoke/stream/batch sync and async, tools
    (also in the legacy ``functions`` format), structured output, vision and file blocks, and reports
    usage with the gateway's ``cost`` and ``credits_remaining``. The same model can fail over
    (``fallback_models=``), route by task (``routes=``) and abandon a silent attempt
    (``first_token_timeout=``); :class:`FallbackRunnable` and :class:`TaskRouterRunnable` are
    configurations of it.

    Example (offline, against the bundled simulator):

        >>> from aisa_integrations import AIsaChatModel
        >>> from aisa_integrations.testing import AIsaSimulator
        >>> with AIsaSimulator() as sim:
        ...     llm = AIsaChatModel(model="claude-3-sonnet", api_key=sim.api_key, base_url=sim.base_url)
        ...     reply = llm.invoke("Write a haiku about routers")
        ...     (reply.response_metadata["model_name"], reply.usage_metadata["total_tokens"] > 0)
        ('claude-3-sonnet', True)

    Tools, structured output and fail-over work as with any LangChain chat model::

        llm.bind_tools([get_weather], tool_choice="any").invoke("Weather in Tokyo?").tool_calls
        llm.with_structured_output(Person, method="json_schema").invoke("Ada is 36")
        AIsaChatModel(model="gpt-4.1", fallback_models=["claude-3-sonnet"], first_token_timeout=10)
    """

    model: str = Field(default="gpt-4.1", alias="model_name")
    """Model id, as in the AIsa catalog (``gpt-4.1``, ``claude-3-sonnet``, ``qwen-max``, ...)."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env(API_KEY_ENV, default=None))
    """AIsa API key; defaults to ``AISA_API_KEY``."""
    base_url: str | None = Field(default_factory=from_env(BASE_URL_ENV, default=None))
    """Gateway URL; defaults to ``AISA_BASE_URL``, then ``https://api.aisa.one/v1``."""
    api: Literal["chat", "gemini-native"] = "chat"
    """The wire format: ``"chat"`` (``/chat/completions``, every model) or ``"gemini-native"`` (Gemini's
    own ``/models/{model}:generateContent``; Gemini models only; native-only options such as
    ``safetySettings`` go in ``extra_body={"gemini": {...}}``)."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] | str | None = Field(default=None, alias="stop_sequences")
    seed: int | None = None
    n: int | None = None
    """Number of answers per request (each a generation of the result)."""
    logprobs: bool | None = None
    top_logprobs: int | None = None
    user: str | None = None
    """An end-user id for the gateway's abuse monitoring."""
    reasoning_effort: str | None = None
    """For reasoning models: ``"low"``, ``"medium"`` or ``"high"``."""
    parallel_tool_calls: bool | None = None
    """Whether the model may call several tools in one turn."""
    logit_bias: dict[str, float] | None = None
    service_tier: str | None = None
    extra_body: dict[str, Any] | None = None
    """Fields sent in the request body as they are (a gateway's own options; with
    ``api="gemini-native"``, ``{"gemini": {...}}`` holds native options such as ``safetySettings``)."""
    timeout: float | None = Field(default=DEFAULT_TIMEOUT, alias="request_timeout")
    """Seconds per request (and per read while streaming)."""
    max_retries: int | None = None
    """Retries by the openai SDK on 408/409/429/5xx and connection errors (default 2) for a single
    model; with fallback models, routes or timeouts the fallback policy is the one retry layer."""
    streaming: bool = False
    """Stream under the hood even for ``invoke``."""
    stream_usage: bool = True
    """Surface the usage chunk when streaming (it is always requested, for cost tracking)."""
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
    fallback_models: list[Any] = Field(default_factory=list)
    """Models to fail over to, in order: ids, ``AIsaChatModel`` (with their own settings) or any chat model."""
    routes: dict[str, Any] | None = None
    """Route by task: task → model id, list (a fallback chain), chat model or runnable, or ``Cheapest``."""
    classifier: Any = Field(default=None, exclude=True)
    """The task classifier for routing: a ``TaskClassifier``, a trained ``LexicalModel`` or its path,
    or any callable ``text -> task`` (the built-in classifier by default)."""
    sticky_routing: bool = True
    """Keep a conversation's task (and model) across follow-up turns that name no task of their own."""
    budget: CostTracker | None = Field(default=None, exclude=True)
    """This model's own spend cap: a ``CostTracker(max_cost=...)`` that every call of the model (its
    copies, bound variants and fallbacks included) is counted in and checked against before sending.
    Share one tracker between models to give them one budget."""
    first_token_timeout: float | None = None
    """Abandon an attempt that produced no content within this many seconds (and fail over)."""
    stall_timeout: float | None = None
    """Abandon an attempt silent this many seconds after its content started."""
    fallback_policy: FallbackPolicy | None = Field(default=None, exclude=True)
    """The rest of the fallback policy (retries, breakers, ``fallback_on``); see ``FallbackPolicy``."""
    mid_stream: Literal["raise", "continue"] = "raise"
    """When a stream fails after content: raise with ``.partial_text``, or continue on a model that
    accepts the partial answer as a prefill."""
    check_capabilities: bool = True
    """Skip (or refuse) models the catalog says cannot serve a request; False if your gateway knows better."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    _engine_cache: tuple[int, ClientConfig, Engine] | None = PrivateAttr(default=None)
    _primary_member: Any = PrivateAttr(default=None)

    # -- construction ----------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _collect_model_kwargs(cls, values: Any) -> Any:
        if isinstance(values, dict):
            if isinstance(values.get("fallback_policy"), Mapping):  # as dumped by ``dumpd``
                values = {**values, "fallback_policy": FallbackPolicy.from_dict(values["fallback_policy"])}
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
        try:
            config = self._config
        except AIsaError as exc:
            raise as_langchain_error(exc) from None
        # Pinned now: a dumped or pickled model keeps talking to the gateway it was made for, whatever
        # AISA_BASE_URL says where it is loaded. (Written directly: the built engine already uses it.)
        self.__dict__["base_url"] = config.base_url

    def __getstate__(self) -> dict[str, Any]:
        # A pickle never carries the key: it is read again from AISA_API_KEY when unpickled (as
        # LangChain's load() does). What was built from the settings (it holds the key) is rebuilt.
        state = super().__getstate__()
        state["__dict__"] = {**state["__dict__"], "api_key": None}
        private = dict(state.get("__pydantic_private__") or {})
        private["_engine_cache"] = None
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.__dict__.get("api_key") is None:
            self.__dict__["api_key"] = secret_from_env(API_KEY_ENV, default=None)()
        try:
            self._built()  # no key in the environment: MissingAPIKeyError now, naming AISA_API_KEY
        except AIsaError as exc:
            raise as_langchain_error(exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_"):
            self._engine_cache = None  # a setting changed: rebuild what is built from the settings

    def _built(self) -> tuple[ClientConfig, Engine]:
        """The client configuration and the engine for the current settings (built once per change).

        Keyed by the object's identity too: a ``model_copy(update=...)`` carries the original's cache
        but is another object, so it builds its own.
        """
        key = id(self)
        cached = self._engine_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        config = ClientConfig.resolve(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            http_client=self.http_client,
            http_async_client=self.http_async_client,
        )
        plan = make_plan(
            config,
            model=self._primary_member if self._primary_member is not None else self.model,
            catalog=self.catalog,
            target_of=target_of,
            # LangChain takes each call's first request from the limiter itself; the engine the rest.
            rate_limiter=self.rate_limiter.limiter if isinstance(self.rate_limiter, AIsaRateLimiter) else None,
            first_request_paid=True,
            **plan_settings(self),
        )
        engine = Engine(plan)
        self._engine_cache = (key, config, engine)
        return config, engine

    @property
    def _config(self) -> ClientConfig:
        """The client configuration (key, base URL, timeouts) resolved from the fields."""
        return self._built()[0]

    @property
    def _is_plain(self) -> bool:
        """One model, no policy: a member that can be called over the wire with its own settings."""
        return not (
            self.fallback_models
            or self.routes is not None
            or self.classifier is not None
            or self.fallback_policy is not None
            or self.first_token_timeout is not None
            or self.stall_timeout is not None
            or self._primary_member is not None
        )

    @property
    def _engine(self) -> Engine:
        """The engine for the current settings (rebuilt when one of them changes)."""
        return self._built()[1]

    def _resolve_model_profile(self) -> ModelProfile | None:
        # One model: its catalog entry. A fallback chain or routes: what every member can do, since
        # any of them may answer (core/capabilities.shared_capabilities).
        shared = capabilities_of_models(self._engine.plan.model_ids(), self.catalog or default_catalog())
        if shared is None:
            return None
        profile: dict[str, Any] = {"text_inputs": True, "text_outputs": True}
        for key, name in (
            ("max_input_tokens", "context_window"),
            ("max_output_tokens", "max_output_tokens"),
            ("image_inputs", "vision"),
            ("image_url_inputs", "vision"),
            ("tool_calling", "tools"),
            ("tool_choice", "tools"),
            ("tool_call_streaming", "tools"),
            ("structured_output", "json_schema"),
            ("reasoning_output", "reasoning"),
        ):
            if name in shared:
                profile[key] = shared[name]
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

    # -- token counting: offline for every family (core/tokens.py), never an ImportError ------------
    def get_num_tokens(self, text: str) -> int:
        """Tokens in ``text`` for this model: exact where a tokenizer and its data are on this machine
        (tiktoken's cache, GPT models), else the package's documented estimate."""
        return count_tokens(text, self.model)

    def get_token_ids(self, text: str) -> list[int]:
        return tokenizer_for(self.model).ids(text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Prompt tokens of ``messages`` (and ``tools``), as sent: what ``trim_messages(token_counter=llm)`` uses."""
        formatted = format_tools(tools) if tools else None
        return count_message_tokens(messages_to_openai(messages), self.model, formatted)

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
    def lc_attributes(self) -> dict[str, Any]:
        """Settings ``dumpd`` keeps beyond the plain fields: the gateway, and the fallback policy."""
        attributes: dict[str, Any] = {"base_url": self._config.base_url}
        if self.fallback_policy is not None:
            attributes["fallback_policy"] = self.fallback_policy.to_dict()
        return attributes

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
            "n": self.n,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "user": self.user,
            "reasoning_effort": self.reasoning_effort,
            "parallel_tool_calls": self.parallel_tool_calls,
            "logit_bias": self.logit_bias,
            "service_tier": self.service_tier,
            "extra_body": self.extra_body,
        }
        return {k: v for k, v in params.items() if v is not None}

    def _describe(self, member: Any) -> Any:
        if isinstance(member, str):
            return member
        if isinstance(member, AIsaChatModel):
            return member._identifying_params
        if isinstance(member, list | tuple):
            return [self._describe(m) for m in member]
        return getattr(member, "model", None) or getattr(member, "model_name", None) or repr(member)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """Everything that changes the answer (never the key): LangSmith's invocation params and the cache key."""
        params: dict[str, Any] = {"model_name": self.model, "base_url": self._config.base_url, **self._default_params}
        if self.model_kwargs:
            params["model_kwargs"] = self.model_kwargs
        if self.tool_format != "tools":
            params["tool_format"] = self.tool_format
        if self._primary_member is not None:
            params["primary"] = self._describe(self._primary_member)
        if self.fallback_models:
            params["fallback_models"] = [self._describe(m) for m in self.fallback_models]
        if self.routes is not None:
            params["routes"] = {k: self._describe(v) for k, v in sorted(self.routes.items())}
        if self.classifier is not None:
            params["classifier"] = getattr(self.classifier, "__qualname__", repr(self.classifier))
        return params

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        # Every parameter that changes the answer, so two differently configured models never share a
        # cache entry; the key is never part of it.
        params = {**self._identifying_params, "_type": self._llm_type, "stop": stop, **kwargs}
        return json.dumps(params, sort_keys=True, default=repr)

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
        if isinstance(stop, str):
            ls["ls_stop"] = [stop]
        elif isinstance(stop, list | tuple) and stop:
            ls["ls_stop"] = list(stop)  # anything else is refused by the core before sending
        return ls

    def circuit_state(self) -> dict[str, dict[str, Any]]:
        """The circuit breaker of each model this one may call (shared process-wide), keyed by model id."""
        plan = self._engine.plan
        states = breakers.state()
        out = {}
        for target in plan.targets:
            if isinstance(target, ModelTarget):
                url = (target.config or plan.config).base_url
                out[target.model] = states.get(f"{url} {target.model}", {"state": "closed", "consecutive_failures": 0})
        return out

    # -- explicit tasks for routed models ----------------------------------------------------
    def _explicit_task(self, input: Any, config: RunnableConfig | None, kwargs: dict[str, Any]) -> Any:
        if self.routes is None and self.classifier is None:
            return input
        if isinstance(input, Mapping) and "input" in input and set(input) <= {"input", "task"}:
            if input.get("task"):
                kwargs["task"] = input["task"]
            input = input["input"]
        configured = ((config or {}).get("configurable") or {}).get("task")
        if configured and "task" not in kwargs:
            kwargs["task"] = configured
        return input

    @contextlib.contextmanager
    def _typed_input_errors(self, input: Any) -> Iterator[None]:
        """langchain-core reads the messages (for tracing) before this model sees them, and raises a
        bare ValueError on a block it cannot read; our converter says which block and what is supported."""
        try:
            yield
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, AIsaError) or not _raised_by_langchain_core(exc):
                raise
            try:
                messages_to_openai(self._convert_input(input).to_messages())
            except InvalidRequestError as typed:
                raise as_langchain_error(typed) from None
            except Exception:  # the block could not be named: the message below says what failed
                pass
            raise as_langchain_error(
                InvalidRequestError(
                    f"The input could not be read (langchain-core refused it before anything was sent): {exc}. "
                    "Check the message content blocks: each needs its data (url, base64 with mime_type, or file_id)."
                )
            ) from exc

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AIMessage:
        with self._typed_input_errors(input):
            return super().invoke(self._explicit_task(input, config, kwargs), config, stop=stop, **kwargs)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AIMessage:
        with self._typed_input_errors(input):
            return await super().ainvoke(self._explicit_task(input, config, kwargs), config, stop=stop, **kwargs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        with self._typed_input_errors(input):
            yield from super().stream(self._explicit_task(input, config, kwargs), config, stop=stop, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        with self._typed_input_errors(input):
            async for chunk in super().astream(self._explicit_task(input, config, kwargs), config, stop=stop, **kwargs):
                yield chunk

    def decide(self, messages: Sequence[BaseMessage], **kwargs: Any) -> RouteDecision:
        """Where a routed request would go, and why, without sending it."""
        if self.routes is None and self.classifier is None:
            raise as_langchain_error(
                InvalidRequestError("This model has no routes; pass routes={...} to route by task.")
            )
        call = self._prepare(list(messages), None, dict(kwargs))
        assert call.route is not None
        return call.route

    # -- request ---------------------------------------------------------------------------
    def _prepare(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_manager: Any = None,
        manager_cls: type = CallbackManager,
    ) -> Call:
        own = {k: kwargs.pop(k) for k in _OWN_CALL_KEYS if k in kwargs}
        foreign_kwargs = dict(kwargs)
        try:
            tools = kwargs.get("tools")
            if tools and not all(isinstance(t, Mapping) and t.get("type") == "function" for t in tools):
                kwargs["tools"] = format_tools(tools)
            response_format = kwargs.get("response_format")
            if response_format is not None and not isinstance(response_format, Mapping):
                kwargs["response_format"] = _response_format(response_format, None)
            if stop is not None:
                kwargs["stop"] = stop
            request = wire.merge_params(self._default_params, extras=self.model_kwargs, call=kwargs)
            request["messages"] = messages_to_openai(messages)
            return self._engine.prepare(
                request,
                explicit=tuple(kwargs),
                task=own.get("task"),
                legacy_functions=own.get("tool_format", self.tool_format) == "functions",
                include_usage=own.get("stream_usage", self.stream_usage),
                foreign_input=_ForeignInput(messages, stop, foreign_kwargs, run_manager, manager_cls),
            )
        except AIsaError as exc:
            raise as_langchain_error(exc) from None

    def _metadata(self, outcome_report: Any, route: RouteDecision | None) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if outcome_report is not None:
            meta["aisa"] = outcome_report.to_dict()
        if route is not None:
            meta["aisa_route"] = route.to_dict()
        return meta

    def _result(self, outcome: Outcome, call: Call) -> ChatResult:
        legacy = "functions" in call.request
        if outcome.completion is not None:
            result = completion_to_result(outcome.completion, legacy_functions=legacy)
        else:
            result = ChatResult(generations=[ChatGeneration(message=_as_message(outcome.foreign))])
        extra = self._metadata(outcome.report, outcome.route)
        if extra:
            for generation in result.generations:
                message = generation.message
                message.response_metadata = {**message.response_metadata, **extra}
        return result

    @staticmethod
    def _record_route(call: Call) -> None:
        """The routing decision as an ``aisa_route`` child run (LangSmith shows why a model was chosen)."""
        callbacks = call.foreign_input.callbacks if call.route is not None else None
        if callbacks is None or call.route is None:
            return
        run = callbacks.on_chain_start({"name": "aisa_route"}, {"text": _last_user(call)[:500]}, name="aisa_route")
        run.on_chain_end(call.route.to_dict())

    @staticmethod
    async def _arecord_route(call: Call) -> None:
        callbacks = call.foreign_input.callbacks if call.route is not None else None
        if callbacks is None or call.route is None:
            return
        run = await callbacks.on_chain_start(
            {"name": "aisa_route"}, {"text": _last_user(call)[:500]}, name="aisa_route"
        )
        await run.on_chain_end(call.route.to_dict())

    # -- calls -----------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs, run_manager, CallbackManager)
        self._record_route(call)
        try:
            outcome = self._engine.complete(call)
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        return self._result(outcome, call)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs, run_manager, AsyncCallbackManager)
        await self._arecord_route(call)
        try:
            outcome = await self._engine.acomplete(call)
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        return self._result(outcome, call)

    def _last_chunk(self, stream: Any, call: Call) -> ChatGenerationChunk:
        meta = self._metadata(stream.report, stream.route)
        if stream.request_id:
            meta["request_id"] = stream.request_id
        return ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=meta, chunk_position="last"))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs, run_manager, CallbackManager)
        self._record_route(call)
        state = StreamState()
        stream = self._engine.stream(call)
        try:
            for item in stream:
                generation = _generation(item, state, call)
                if generation is None:
                    continue
                if run_manager is not None:
                    run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        finally:
            stream.close()
        yield self._last_chunk(stream, call)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs, run_manager, AsyncCallbackManager)
        await self._arecord_route(call)
        state = StreamState()
        stream = self._engine.astream(call)
        try:
            async for item in stream:
                generation = _generation(item, state, call)
                if generation is None:
                    continue
                if run_manager is not None:
                    await run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        except AIsaError as exc:
            raise as_langchain_error(exc) from exc.__cause__
        finally:
            await stream.aclose()
        yield self._last_chunk(stream, call)

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
        Invalid tool names and unknown tool_choice names raise before anything is sent; so does
        calling a model the catalog says has no tool calling. ``response_format`` (a schema or an
        OpenAI response_format dict) is forwarded, as LangChain's ``create_agent`` does for
        provider-side structured output.
        """
        try:
            formatted = format_tools(tools, strict=strict)
            if formatted:
                kwargs["tools"] = formatted
                if tool_choice is not None:
                    kwargs["tool_choice"] = wire.normalize_tool_choice(tool_choice, formatted)
            if parallel_tool_calls is not None:
                kwargs["parallel_tool_calls"] = parallel_tool_calls
            if response_format is not None:
                kwargs["response_format"] = _response_format(response_format, strict)
        except AIsaError as exc:
            raise as_langchain_error(exc) from None
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
        provider's structured output; models the catalog says cannot honour it are skipped, or the
        call is refused) or ``json_mode`` (``json_object``; describe the shape in the prompt).
        ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}``.
        """
        if kwargs:
            raise as_langchain_error(
                InvalidRequestError(f"Unknown arguments to with_structured_output: {sorted(kwargs)}")
            )
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        if method == "function_calling":
            if schema is None:
                raise as_langchain_error(InvalidRequestError("method='function_calling' needs a schema."))
            tool_name = convert_to_openai_function(schema)["name"]
            bound = self.bind_tools(
                [schema],
                tool_choice=tool_name,
                parallel_tool_calls=False if self.tool_format == "tools" else None,
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
                    raise as_langchain_error(InvalidRequestError("method='json_schema' needs a schema."))
                response_format = _response_format(schema, strict)
            else:
                response_format = {"type": "json_object"}
            bound = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise as_langchain_error(
                InvalidRequestError(f"Unknown method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'.")
            )
        if not include_raw:
            return bound | parser
        parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        on_error = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=bound) | parse.with_fallbacks([on_error], exception_key="parsing_error")


def _generation(item: Any, state: StreamState, call: Call) -> ChatGenerationChunk | None:
    """One streamed item (a chunk dict, or a foreign member's chunk) as a LangChain generation chunk."""
    if isinstance(item, ForeignItem):
        return ChatGenerationChunk(message=_as_chunk(item.value))
    return chunk_to_generation(item, state, include_usage=call.include_usage)


def _last_user(call: Call) -> str:
    for message in reversed(call.request["messages"]):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content or ())
    return ""
