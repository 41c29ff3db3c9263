"""LangChain integration: ``AIsaChatModel`` (install with ``pip install "aisa-integrations[langchain]"``)."""

from .chat_model import AIsaChatModel

__all__ = ["AIsaChatModel"]
