"""Make the core's errors also catchable as langchain-core's model error types.

The core knows no framework, so the LangChain layer re-classes each error into a subclass that
inherits from both (``RateLimitError`` and ``ModelRateLimitError``, ...). Older langchain-core
releases without these types leave the errors as they are.
"""

from __future__ import annotations

import functools

from ..core import errors as E

try:  # langchain-core >= 1.1 ships the standard model error types
    from langchain_core import exceptions as _lc
except ImportError:  # pragma: no cover
    _lc = None  # type: ignore[assignment]

# Most specific first: the first matching core class decides.
_PAIRS: tuple[tuple[type[E.AIsaError], str], ...] = (
    (E.AuthenticationError, "ModelAuthenticationError"),
    (E.PermissionDeniedError, "ModelPermissionDeniedError"),
    (E.ModelNotFoundError, "ModelNotFoundError"),
    (E.RateLimitError, "ModelRateLimitError"),
    (E.ContextLengthExceededError, "ContextOverflowError"),
    (E.BadRequestError, "ModelInvalidRequestError"),
    (E.InvalidRequestError, "ModelInvalidRequestError"),
    (E.ServerError, "ModelAPIError"),
    (E.MalformedResponseError, "ModelAPIError"),
    (E.StreamStalledError, "ModelTimeoutError"),
    (E.APITimeoutError, "ModelTimeoutError"),
    (E.StreamInterruptedError, "ModelConnectionError"),
    (E.APIConnectionError, "ModelConnectionError"),
    (E.InsufficientCreditsError, "ModelError"),
)


@functools.cache
def _bridged(cls: type[E.AIsaError]) -> type[E.AIsaError]:
    if _lc is None:
        return cls
    for core_cls, lc_name in _PAIRS:
        lc_cls = getattr(_lc, lc_name, None)
        if lc_cls is not None and issubclass(cls, core_cls):
            if issubclass(cls, lc_cls):
                return cls
            return type(cls.__name__, (cls, lc_cls), {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return cls


def as_langchain_error(exc: BaseException) -> BaseException:
    """The same error object, re-classed so ``except ModelRateLimitError`` catches it too."""
    if isinstance(exc, E.AIsaError):
        bridged = _bridged(type(exc))
        if bridged is not type(exc):
            exc.__class__ = bridged
    return exc
