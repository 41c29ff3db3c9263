"""aisa-integrations: the AIsa LLM gateway for LangChain and LlamaIndex.

One key, one OpenAI-compatible endpoint, every model family (GPT, Claude, Gemini, Qwen, DeepSeek,
Grok). The framework classes are imported lazily, so ``import aisa_integrations`` pulls in neither
LangChain nor LlamaIndex:

>>> import aisa_integrations
>>> aisa_integrations.default_catalog().get("claude-3-opus").family
'claude'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core import _ERRORS  # the one list of error names (core/__init__.py); imports no openai

if TYPE_CHECKING:  # pragma: no cover
    from .core import *
    from .langchain import AIsaChatModel
    from .llama_index import AIsaLLM

# Every public name is imported on first use: the openai SDK alone takes ~0.5 s to import, and
# neither framework may be imported by `import aisa_integrations`.
# name -> (module, extra that provides it, or None)
_LAZY: dict[str, tuple[str, str | None]] = {
    **{name: ("aisa_integrations.core.errors", None) for name in _ERRORS},
    "ClientConfig": ("aisa_integrations.core.config", None),
    "ModelCatalog": ("aisa_integrations.core.catalog", None),
    "ModelInfo": ("aisa_integrations.core.catalog", None),
    "default_catalog": ("aisa_integrations.core.catalog", None),
    "Usage": ("aisa_integrations.core.usage", None),
    "CostTracker": ("aisa_integrations.core.costs", None),
    "SharedBudget": ("aisa_integrations.core.costs", None),
    "set_process_budget": ("aisa_integrations.core.costs", None),
    "RateLimiter": ("aisa_integrations.core.ratelimit", None),
    "MemoryStore": ("aisa_integrations.core.state", None),
    "RedisStore": ("aisa_integrations.core.state", None),
    "configure_state": ("aisa_integrations.core.state", None),
    "list_models": ("aisa_integrations.core.models", None),
    "compare_models": ("aisa_integrations.core.models", None),
    "Comparison": ("aisa_integrations.core.models", None),
    "AllModelsFailedError": ("aisa_integrations.core.fallback", None),
    "FallbackPolicy": ("aisa_integrations.core.fallback", None),
    "Cheapest": ("aisa_integrations.core.routing", None),
    "TaskRouter": ("aisa_integrations.core.routing", None),
    "compare_chat_models": ("aisa_integrations.langchain", "langchain"),
    "AIsaCostHandler": ("aisa_integrations.llama_index", "llama-index"),
    "AIsaChatModel": ("aisa_integrations.langchain", "langchain"),
    "FallbackRunnable": ("aisa_integrations.langchain", "langchain"),
    "TaskRouterRunnable": ("aisa_integrations.langchain", "langchain"),
    "get_aisa_callback": ("aisa_integrations.langchain", "langchain"),
    "AIsaLLM": ("aisa_integrations.llama_index", "llama-index"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'aisa_integrations' has no attribute {name!r}")
    module_name, extra = target
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if extra is not None and missing.startswith(("langchain", "llama_index")):
            raise ImportError(
                f'{name} needs the {extra!r} extra: pip install "aisa-integrations[{extra}]" '
                f"(missing module: {missing})"
            ) from exc
        raise
    except AttributeError as exc:
        # Python would report this as "cannot import name"; keep the real cause visible.
        raise ImportError(f"importing {module_name} for {name} failed: {exc}") from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "AIsaAPIError",
    "AIsaChatModel",
    "AIsaCostHandler",
    "AIsaError",
    "AIsaLLM",
    "AIsaStatusError",
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "Cheapest",
    "ClientConfig",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextLengthExceededError",
    "FirstTokenTimeoutError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "ModelCatalog",
    "ModelInfo",
    "ModelNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "StreamInterruptedError",
    "StreamStalledError",
    "TaskRouter",
    "TaskRouterRunnable",
    "Usage",
    "__version__",
    "compare_chat_models",
    "compare_models",
    "default_catalog",
    "get_aisa_callback",
    "list_models",
]
