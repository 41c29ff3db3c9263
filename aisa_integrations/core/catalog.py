"""What each model behind the gateway can do and roughly what it costs.

The catalog drives decisions that must be made before a request is sent: LlamaIndex ``metadata``
(context window, tool support), LangChain model profiles, routing constraints (vision, tools,
context), fallback on ``context_length_exceeded`` and close-match suggestions for a misspelt id.

Prices are USD per 1K tokens. Where the AIsa reference gives an approximate figure (GPT-4.1/4o,
Claude-3-Sonnet, Gemini-2.0-Flash, Qwen-Max, DeepSeek-V3) it is used for input and output alike;
the other models carry the provider's public list price, with ``price_source`` saying which. The
gateway's own ``usage.cost`` is always the authority for what was billed.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FAMILY_PREFIXES",
    "ModelCatalog",
    "ModelInfo",
    "Tier",
    "default_catalog",
]

Tier = Literal["fast", "balanced", "premium"]

REFERENCE = "AIsa LLM Router reference (approximate)"

#: How an id the catalog does not know is assigned a family and developer.
FAMILY_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("gpt-", "gpt", "OpenAI"),
    ("o1", "gpt", "OpenAI"),
    ("o3", "gpt", "OpenAI"),
    ("o4", "gpt", "OpenAI"),
    ("chatgpt", "gpt", "OpenAI"),
    ("claude", "claude", "Anthropic"),
    ("gemini", "gemini", "Google"),
    ("gemma", "gemini", "Google"),
    ("qwen", "qwen", "Alibaba"),
    ("qwq", "qwen", "Alibaba"),
    ("deepseek", "deepseek", "DeepSeek"),
    ("grok", "grok", "xAI"),
)


class ModelInfo(BaseModel):
    """Capabilities, limits and list price of one model id.

    A capability of ``None`` means unknown (an id the gateway lists but the catalog has not
    described): routing treats unknown as "not supported".

    >>> from aisa_integrations.core.catalog import default_catalog
    >>> info = default_catalog().get("gpt-4o")
    >>> (info.family, info.vision, info.context_window)
    ('gpt', True, 128000)
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Model id as sent in the request's `model` field.")
    family: str = Field(description="gpt, claude, gemini, qwen, deepseek, grok, or 'unknown'.")
    developer: str = Field(description="Who trains the model (OpenAI, Anthropic, ...).")
    context_window: int | None = Field(None, description="Prompt + output tokens the model accepts.")
    max_output_tokens: int | None = Field(None, description="Largest completion the model produces.")
    vision: bool | None = Field(None, description="Accepts image content parts.")
    tools: bool | None = Field(None, description="Supports tool / function calling.")
    json_schema: bool | None = Field(None, description="Honours response_format json_schema.")
    reasoning: bool | None = Field(None, description="A reasoning model (thinks before answering).")
    assistant_prefill: bool | None = Field(
        None, description="Continues a trailing assistant message instead of starting a new turn."
    )
    input_per_1k: float | None = Field(None, description="USD per 1K prompt tokens.")
    output_per_1k: float | None = Field(None, description="USD per 1K completion tokens.")
    price_source: str | None = Field(None, description="Where the price comes from.")
    tier: Tier | None = Field(None, description="fast / balanced / premium, for cost-aware routing.")
    known: bool = Field(True, description="False for ids learnt only from GET /models.")

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int = 0) -> float | None:
        """Approximate USD for a call, from list prices; ``None`` if the price is unknown."""
        if self.input_per_1k is None or self.output_per_1k is None:
            return None
        return (prompt_tokens * self.input_per_1k + completion_tokens * self.output_per_1k) / 1000.0


def _m(
    id: str,
    family: str,
    developer: str,
    context: int,
    max_out: int,
    *,
    vision: bool,
    tools: bool,
    json_schema: bool,
    reasoning: bool = False,
    prefill: bool = False,
    price: tuple[float, float],
    source: str,
    tier: Tier,
) -> ModelInfo:
    return ModelInfo(
        id=id,
        family=family,
        developer=developer,
        context_window=context,
        max_output_tokens=max_out,
        vision=vision,
        tools=tools,
        json_schema=json_schema,
        reasoning=reasoning,
        assistant_prefill=prefill,
        input_per_1k=price[0],
        output_per_1k=price[1],
        price_source=source,
        tier=tier,
    )


_OPENAI = "OpenAI list price"
_ANTHROPIC = "Anthropic list price"
_GOOGLE = "Google list price (<=128K prompt)"
_ALIBABA = "Alibaba Cloud Model Studio list price (international)"
_DEEPSEEK = "DeepSeek list price (cache miss)"
_XAI = "xAI list price"

# fmt: off
_BUILTIN: tuple[ModelInfo, ...] = (
    # GPT (OpenAI)
    _m("gpt-4.1", "gpt", "OpenAI", 1_047_576, 32_768, vision=True, tools=True, json_schema=True,
       price=(0.01, 0.01), source=REFERENCE, tier="premium"),
    _m("gpt-4o", "gpt", "OpenAI", 128_000, 16_384, vision=True, tools=True, json_schema=True,
       price=(0.01, 0.01), source=REFERENCE, tier="balanced"),
    _m("gpt-4o-mini", "gpt", "OpenAI", 128_000, 16_384, vision=True, tools=True, json_schema=True,
       price=(0.00015, 0.0006), source=_OPENAI, tier="fast"),
    _m("gpt-3.5-turbo", "gpt", "OpenAI", 16_385, 4_096, vision=False, tools=True, json_schema=False,
       price=(0.0005, 0.0015), source=_OPENAI, tier="fast"),
    _m("o1", "gpt", "OpenAI", 200_000, 100_000, vision=True, tools=True, json_schema=True, reasoning=True,
       price=(0.015, 0.06), source=_OPENAI, tier="premium"),
    _m("o1-mini", "gpt", "OpenAI", 128_000, 65_536, vision=False, tools=False, json_schema=False,
       reasoning=True, price=(0.0011, 0.0044), source=_OPENAI, tier="balanced"),
    _m("o3-mini", "gpt", "OpenAI", 200_000, 100_000, vision=False, tools=True, json_schema=True,
       reasoning=True, price=(0.0011, 0.0044), source=_OPENAI, tier="balanced"),
    # Claude (Anthropic)
    _m("claude-3-5-sonnet", "claude", "Anthropic", 200_000, 8_192, vision=True, tools=True, json_schema=False,
       prefill=True, price=(0.003, 0.015), source=_ANTHROPIC, tier="balanced"),
    _m("claude-3-opus", "claude", "Anthropic", 200_000, 4_096, vision=True, tools=True, json_schema=False,
       prefill=True, price=(0.015, 0.075), source=_ANTHROPIC, tier="premium"),
    _m("claude-3-sonnet", "claude", "Anthropic", 200_000, 4_096, vision=True, tools=True, json_schema=False,
       prefill=True, price=(0.01, 0.01), source=REFERENCE, tier="balanced"),
    # Gemini (Google)
    _m("gemini-2.0-flash", "gemini", "Google", 1_048_576, 8_192, vision=True, tools=True, json_schema=True,
       price=(0.001, 0.001), source=REFERENCE, tier="fast"),
    _m("gemini-1.5-pro", "gemini", "Google", 2_097_152, 8_192, vision=True, tools=True, json_schema=True,
       price=(0.00125, 0.005), source=_GOOGLE, tier="balanced"),
    _m("gemini-1.5-flash", "gemini", "Google", 1_048_576, 8_192, vision=True, tools=True, json_schema=True,
       price=(0.000075, 0.0003), source=_GOOGLE, tier="fast"),
    # Qwen (Alibaba)
    _m("qwen-max", "qwen", "Alibaba", 32_768, 8_192, vision=False, tools=True, json_schema=False, prefill=True,
       price=(0.005, 0.005), source=REFERENCE, tier="premium"),
    _m("qwen-plus", "qwen", "Alibaba", 131_072, 8_192, vision=False, tools=True, json_schema=False, prefill=True,
       price=(0.0004, 0.0012), source=_ALIBABA, tier="balanced"),
    _m("qwen2.5-72b-instruct", "qwen", "Alibaba", 131_072, 8_192, vision=False, tools=True, json_schema=False,
       prefill=True, price=(0.0014, 0.0056), source=_ALIBABA, tier="balanced"),
    # DeepSeek
    _m("deepseek-chat", "deepseek", "DeepSeek", 65_536, 8_192, vision=False, tools=True, json_schema=False,
       prefill=True, price=(0.00027, 0.0011), source=_DEEPSEEK, tier="fast"),
    _m("deepseek-coder", "deepseek", "DeepSeek", 128_000, 8_192, vision=False, tools=True, json_schema=False,
       prefill=True, price=(0.00027, 0.0011), source=_DEEPSEEK, tier="balanced"),
    _m("deepseek-v3", "deepseek", "DeepSeek", 65_536, 8_192, vision=False, tools=True, json_schema=False,
       prefill=True, price=(0.002, 0.002), source=REFERENCE, tier="balanced"),
    _m("deepseek-r1", "deepseek", "DeepSeek", 65_536, 8_192, vision=False, tools=False, json_schema=False,
       reasoning=True, price=(0.00055, 0.00219), source=_DEEPSEEK, tier="premium"),
    # Grok (xAI)
    _m("grok-2", "grok", "xAI", 131_072, 32_768, vision=False, tools=True, json_schema=True,
       price=(0.002, 0.01), source=_XAI, tier="balanced"),
    _m("grok-beta", "grok", "xAI", 131_072, 32_768, vision=False, tools=True, json_schema=False,
       price=(0.005, 0.015), source=_XAI, tier="premium"),
)
# fmt: on


def family_of(model_id: str) -> tuple[str, str]:
    """(family, developer) guessed from an id's prefix; ('unknown', 'unknown') otherwise."""
    lowered = model_id.lower().rsplit("/", 1)[-1]
    for prefix, family, developer in FAMILY_PREFIXES:
        if lowered.startswith(prefix):
            return family, developer
    return "unknown", "unknown"


class ModelCatalog:
    """A mutable, thread-safe map from model id to :class:`ModelInfo`.

    >>> catalog = ModelCatalog()
    >>> catalog.suggest("gpt4o")
    ['gpt-4o', 'gpt-4.1', 'gpt-4o-mini']
    >>> catalog.register(ModelInfo(id="my-model", family="gpt", developer="me", tools=True))
    >>> catalog.get("my-model").tools
    True
    """

    def __init__(self, models: Iterable[ModelInfo] = _BUILTIN) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ModelInfo] = {m.id: m for m in models}

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def ids(self) -> list[str]:
        return list(self._models)

    def get(self, model_id: str) -> ModelInfo | None:
        """The model's info, or ``None`` if the catalog has never heard of it."""
        return self._models.get(model_id)

    def info(self, model_id: str) -> ModelInfo:
        """The model's info; an unknown id gets its family from the prefix and unknown capabilities."""
        found = self._models.get(model_id)
        if found is not None:
            return found
        family, developer = family_of(model_id)
        return ModelInfo(id=model_id, family=family, developer=developer, known=False)

    def register(self, info: ModelInfo) -> None:
        """Add a model or replace its description."""
        with self._lock:
            self._models = {**self._models, info.id: info}

    def update(self, model_id: str, **changes: Any) -> ModelInfo:
        """Change some fields of a model (e.g. a negotiated price); returns the new info."""
        new = self.info(model_id).model_copy(update=changes)
        self.register(new)
        return new

    def remove(self, model_id: str) -> None:
        with self._lock:
            self._models = {k: v for k, v in self._models.items() if k != model_id}

    def suggest(self, model_id: str, n: int = 3) -> list[str]:
        """Up to ``n`` catalog ids close to a (probably misspelt) one, best first."""
        ids = list(self._models)
        lowered = {i.lower(): i for i in ids}
        matches = difflib.get_close_matches(model_id.lower(), list(lowered), n=n, cutoff=0.5)
        if not matches:
            # "gpt4" or "sonnet": fall back to substring matches after removing punctuation.
            key = "".join(ch for ch in model_id.lower() if ch.isalnum())
            matches = [i for i in lowered if key and key in "".join(ch for ch in i if ch.isalnum())][:n]
        return [lowered[m] for m in matches]

    def merge_server_ids(self, server_ids: Iterable[str]) -> list[str]:
        """Add ids the gateway lists but the catalog lacks (capabilities unknown); returns them."""
        added = []
        with self._lock:
            models = dict(self._models)
            for model_id in server_ids:
                if model_id not in models:
                    family, developer = family_of(model_id)
                    models[model_id] = ModelInfo(id=model_id, family=family, developer=developer, known=False)
                    added.append(model_id)
            self._models = models
        return added

    def refresh(self, client: Any) -> list[str]:
        """Merge ``GET /models`` from an ``openai.OpenAI`` client into the catalog; returns new ids."""
        return self.merge_server_ids(m.id for m in client.models.list())

    def select(
        self,
        *,
        family: str | None = None,
        tier: Tier | None = None,
        vision: bool | None = None,
        tools: bool | None = None,
        json_schema: bool | None = None,
        min_context: int | None = None,
    ) -> list[ModelInfo]:
        """Models meeting every given requirement, cheapest first (unknown prices last)."""

        def ok(m: ModelInfo) -> bool:
            return (
                (family is None or m.family == family)
                and (tier is None or m.tier == tier)
                and (not vision or m.vision is True)
                and (not tools or m.tools is True)
                and (not json_schema or m.json_schema is True)
                and (min_context is None or (m.context_window or 0) >= min_context)
            )

        def price(m: ModelInfo) -> tuple[int, float]:
            if m.input_per_1k is None or m.output_per_1k is None:
                return (1, 0.0)
            return (0, m.input_per_1k + m.output_per_1k)

        return sorted((m for m in self._models.values() if ok(m)), key=price)


_default: ModelCatalog | None = None
_default_lock = threading.Lock()


def default_catalog() -> ModelCatalog:
    """The process-wide catalog every component consults unless given another."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = ModelCatalog()
    return _default
