"""The core's errors, also catchable as langchain-core's model error types.

The core knows no framework, so each error the LangChain adapter raises is re-classed into a class
defined here that inherits from both (like langchain-openai's): ``except RateLimitError``,
``except openai.RateLimitError`` and ``except ModelRateLimitError`` all catch it. The classes are
defined once, at import, under their own names, so the errors pickle.
"""

from __future__ import annotations

from langchain_core import exceptions as lc

from ..core import errors as E
from ..core.fallback import AllModelsFailedError as _AllFailed


class AuthenticationError(E.AuthenticationError, lc.ModelAuthenticationError):
    pass


class PermissionDeniedError(E.PermissionDeniedError, lc.ModelPermissionDeniedError):
    pass


class ModelNotFoundError(E.ModelNotFoundError, lc.ModelNotFoundError):
    pass


class RateLimitError(E.RateLimitError, lc.ModelRateLimitError):
    pass


class ContextLengthExceededError(E.ContextLengthExceededError, lc.ContextOverflowError):
    pass


class ContentPolicyError(E.ContentPolicyError, lc.ModelInvalidRequestError):
    pass


class BadRequestError(E.BadRequestError, lc.ModelInvalidRequestError):
    pass


class InvalidRequestError(E.InvalidRequestError, lc.ModelInvalidRequestError):
    pass


class NoEligibleModelError(E.NoEligibleModelError, lc.ModelInvalidRequestError):
    pass


class ServerError(E.ServerError, lc.ModelAPIError):
    pass


class MalformedResponseError(E.MalformedResponseError, lc.ModelAPIError):
    pass


class StreamStalledError(E.StreamStalledError, lc.ModelTimeoutError):
    pass


class FirstTokenTimeoutError(E.FirstTokenTimeoutError, lc.ModelTimeoutError):
    pass


class APITimeoutError(E.APITimeoutError, lc.ModelTimeoutError):
    pass


class StreamInterruptedError(E.StreamInterruptedError, lc.ModelConnectionError):
    pass


class APIConnectionError(E.APIConnectionError, lc.ModelConnectionError):
    pass


class InsufficientCreditsError(E.InsufficientCreditsError, lc.ModelError):
    pass


class AllModelsFailedError(_AllFailed, lc.ModelError):
    pass


_BRIDGES: dict[type[E.AIsaError], type[E.AIsaError]] = {
    cls.__mro__[1]: cls  # type: ignore[misc]
    for cls in (
        AuthenticationError,
        PermissionDeniedError,
        ModelNotFoundError,
        RateLimitError,
        ContextLengthExceededError,
        ContentPolicyError,
        BadRequestError,
        InvalidRequestError,
        NoEligibleModelError,
        ServerError,
        MalformedResponseError,
        StreamStalledError,
        FirstTokenTimeoutError,
        APITimeoutError,
        StreamInterruptedError,
        APIConnectionError,
        InsufficientCreditsError,
        AllModelsFailedError,
    )
}


def as_langchain_error(exc: BaseException) -> BaseException:
    """The same error object, re-classed so ``except ModelRateLimitError`` catches it too."""
    bridged = _BRIDGES.get(type(exc))  # type: ignore[arg-type]
    if bridged is not None:
        exc.__class__ = bridged
    return exc
