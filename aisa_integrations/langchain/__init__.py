"""LangChain integration (install with ``pip install "aisa-integrations[langchain]"``)."""

from ._serialization import register_serializable
from .callbacks import AIsaCallbackHandler, compare_chat_models, get_aisa_callback
from .chat_model import AIsaChatModel
from .fallback import FallbackRunnable
from .rate_limiter import AIsaRateLimiter
from .router import TaskRouterRunnable

register_serializable(AIsaChatModel, FallbackRunnable, TaskRouterRunnable)

__all__ = [
    "AIsaCallbackHandler",
    "AIsaChatModel",
    "AIsaRateLimiter",
    "FallbackRunnable",
    "TaskRouterRunnable",
    "compare_chat_models",
    "get_aisa_callback",
]
