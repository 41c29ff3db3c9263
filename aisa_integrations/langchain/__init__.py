"""LangChain integration (install with ``pip install "aisa-integrations[langchain]"``)."""

from ._serialization import register_serializable
from .chat_model import AIsaChatModel
from .fallback import FallbackRunnable
from .router import TaskRouterRunnable

register_serializable(AIsaChatModel)

__all__ = ["AIsaChatModel", "FallbackRunnable", "TaskRouterRunnable"]
