"""The gateway-wide rate limiter as a LangChain ``rate_limiter``."""

from __future__ import annotations

from typing import Any

from langchain_core.rate_limiters import BaseRateLimiter

from ..core.ratelimit import RateLimiter

__all__ = ["AIsaRateLimiter"]


class AIsaRateLimiter(BaseRateLimiter):
    """Requests and tokens per minute, shared by every process using the same state store.

    Use it as any chat model's ``rate_limiter``. LangChain takes one request per model call; on an
    :class:`~aisa_integrations.langchain.AIsaChatModel` the engine also takes one per further
    attempt (retries, fallbacks) and the tokens of every attempt (prompt estimate plus
    ``max_tokens``, settled with the usage the gateway reports). The arguments are those of
    :class:`~aisa_integrations.core.ratelimit.RateLimiter`; ``limiter`` is that object.

    >>> from aisa_integrations.core.state import MemoryStore
    >>> limiter = AIsaRateLimiter(requests_per_minute=600, tokens_per_minute=200_000, store=MemoryStore())
    >>> limiter.acquire(blocking=False)
    True
    """

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None, **kwargs: Any):
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute, **kwargs)

    def acquire(self, *, blocking: bool = True) -> bool:
        return self.limiter.acquire(1, 0, blocking=blocking)

    async def aacquire(self, *, blocking: bool = True) -> bool:
        return await self.limiter.aacquire(1, 0, blocking=blocking)

    def __repr__(self) -> str:
        return f"AIsa{self.limiter!r}"
