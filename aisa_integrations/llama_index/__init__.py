"""LlamaIndex integration (install with ``pip install "aisa-integrations[llama-index]"``)."""

from .callbacks import AIsaCostHandler
from .llm import AIsaLLM
from .rate_limiter import AIsaRateLimiter

__all__ = ["AIsaCostHandler", "AIsaLLM", "AIsaRateLimiter"]
