"""The gateway-wide rate limiter as a LlamaIndex ``rate_limiter``."""

from __future__ import annotations

from typing import Any

from llama_index.core.rate_limiter import BaseRateLimiter

from ..core.ratelimit import RateLimiter

__all__ = ["AIsaRateLimiter"]


class AIsaRateLimiter(BaseRateLimiter):
    """Requests and tokens per minute, shared by every process using the same state store.

    Use it as any LlamaIndex LLM's ``rate_limiter``. LlamaIndex takes one request per call; on an
    :class:`~aisa_integrations.llama_index.AIsaLLM` the engine also takes one per further attempt
    (retries, fallbacks) and the tokens of every attempt (prompt estimate plus ``max_tokens``,
    settled with the usage the gateway reports). The arguments are those of
    :class:`~aisa_integrations.core.ratelimit.RateLimiter`; ``limiter`` is that object.

    >>> from aisa_integrations.core.state import MemoryStore
    >>> limiter = AIsaRateLimiter(requests_per_minute=600, store=MemoryStore())
    >>> limiter.acquire()
    """

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None, **kwargs: Any):
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute, **kwargs)

    def acquire(self, num_tokens: int = 0) -> None:
        self.limiter.acquire(1, num_tokens)

    async def async_acquire(self, num_tokens: int = 0) -> None:
        await self.limiter.aacquire(1, num_tokens)

    def __repr__(self) -> str:
        return f"AIsa{self.limiter!r}"
