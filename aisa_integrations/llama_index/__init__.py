"""LlamaIndex integration (install with ``pip install "aisa-integrations[llama-index]"``)."""

from .callbacks import AIsaCostHandler
from .llm import AIsaLLM

__all__ = ["AIsaCostHandler", "AIsaLLM"]
