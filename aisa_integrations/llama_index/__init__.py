"""LlamaIndex integration: ``AIsaLLM`` (install with ``pip install "aisa-integrations[llama-index]"``)."""

from .llm import AIsaLLM

__all__ = ["AIsaLLM"]
