"""The framework-neutral core: configuration, clients, errors, usage, catalog, and the engine that owns
every policy (validation, routing, capabilities, fallback, breakers, timeouts, cost reporting).

Nothing under ``core`` imports LangChain or LlamaIndex; both adapters are built on it. Names are
imported on first use, so importing one module does not import the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "API_KEY_ENV": "config",
    "BASE_URL_ENV": "config",
    "DEFAULT_BASE_URL": "config",
    "ClientConfig": "config",
    "ModelCatalog": "catalog",
    "ModelInfo": "catalog",
    "default_catalog": "catalog",
    "Usage": "usage",
    "parse_usage": "usage",
    "get_client": "client",
    "get_async_client": "client",
    "Engine": "engine",
    "Plan": "engine",
    "make_plan": "engine",
    "FallbackPolicy": "fallback",
    "TaskRouter": "routing",
    "CostTracker": "costs",
    "SharedBudget": "costs",
    "set_process_budget": "costs",
    "RateLimiter": "ratelimit",
    "MemoryStore": "state",
    "RedisStore": "state",
    "StateStore": "state",
    "configure_state": "state",
    "current_store": "state",
}
_ERRORS = (
    "AIsaAPIError",
    "AIsaError",
    "AIsaStatusError",
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextLengthExceededError",
    "FirstTokenTimeoutError",
    "BudgetExceededError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "ModelNotFoundError",
    "NoEligibleModelError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "StreamInterruptedError",
    "StreamStalledError",
)
_LAZY.update({name: "errors" for name in _ERRORS})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aisa_integrations.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"aisa_integrations.core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
