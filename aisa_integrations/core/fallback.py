"""The fallback policy: how each failure is classified and what follows it.

    429                     → honour Retry-After up to a cap (else backoff with jitter), one retry, fail over
    5xx / reset / cut       → one quick retry on the same model, then fail over
    stall or malformed mid-answer (non-streamed call) → likewise: nothing reached the caller yet
    no response / no first content within first_token_timeout → fail over at once (a silent model is not retried)
    context_length_exceeded → no retry; next model whose window is larger (or unknown)
    content_policy          → raise (no fail-over unless asked for)
    401 / 403 / 402         → raise at once (they would fail every model)
    404                     → fail over, with a warning
    other 4xx               → raise (the request is wrong)
    anything else a foreign member raises → fail over ("other")

The loop that applies it is :mod:`aisa_integrations.core.engine`; breakers are
:mod:`aisa_integrations.core.breakers`. ``fallback_on`` widens or narrows the classes that fail over.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from . import errors as E
from .breakers import BreakerSettings

__all__ = [
    "DEFAULT_FALLBACK_ON",
    "FAILURE_CLASSES",
    "AllModelsFailedError",
    "AttemptRecord",
    "FallbackPolicy",
    "FallbackReport",
    "FirstTokenTimeoutError",
    "classify",
]

FirstTokenTimeoutError = E.FirstTokenTimeoutError

FailureClass = Literal[
    "rate_limit",
    "server",
    "connection",
    "incomplete",
    "timeout",
    "context_length",
    "content_policy",
    "auth",
    "credits",
    "not_found",
    "bad_request",
    "other",
]
FAILURE_CLASSES: frozenset[str] = frozenset(FailureClass.__args__)  # type: ignore[attr-defined]

DEFAULT_FALLBACK_ON: frozenset[str] = frozenset(
    {"rate_limit", "server", "connection", "incomplete", "timeout", "context_length", "not_found", "other"}
)
#: Failures that say something about the model's health (and so count toward its circuit breaker).
UNHEALTHY: frozenset[str] = frozenset({"rate_limit", "server", "connection", "incomplete", "timeout", "not_found"})


class AllModelsFailedError(E.AIsaAPIError):
    """Every candidate failed or was skipped; ``attempts`` lists them all, the primary's first."""

    attempts: list[AttemptRecord]


def _by_status(status: int) -> FailureClass:
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 402:
        return "credits"
    if status == 404:
        return "not_found"
    if status >= 500 or status in (408, 409):
        return "server"
    return "bad_request"


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) and 400 <= status <= 599 else None


def classify(exc: BaseException) -> FailureClass:
    """Which kind of failure an exception is, for the policy.

    The package's own errors by type; anything else that states an HTTP status (the openai SDK's,
    another provider SDK's, httpx's) by that status; the openai SDK's timeouts and connection errors
    as such; any other exception (what a foreign member raises) is ``"other"``.
    """
    if isinstance(exc, E.ContextLengthExceededError):
        return "context_length"
    if isinstance(exc, E.ContentPolicyError):
        return "content_policy"
    if isinstance(exc, E.RateLimitError):
        return "rate_limit"
    if isinstance(exc, E.AuthenticationError | E.PermissionDeniedError):
        return "auth"
    if isinstance(exc, E.InsufficientCreditsError):
        return "credits"
    if isinstance(exc, E.ModelNotFoundError):
        return "not_found"
    if isinstance(exc, E.ServerError):
        return "server"
    if isinstance(exc, E.BadRequestError | E.InvalidRequestError | E.ConfigurationError):
        return "bad_request"
    if isinstance(exc, E.StreamStalledError | E.StreamInterruptedError | E.MalformedResponseError):
        return "incomplete"
    if isinstance(exc, E.APITimeoutError):
        return "timeout"
    if isinstance(exc, E.APIConnectionError):
        return "connection"
    if isinstance(exc, AllModelsFailedError):
        return "other"  # a nested fallback that gave up: the next member may still answer
    status = _status_of(exc)
    if status is not None:
        return _by_status(status)
    try:
        import openai
    except ImportError:  # pragma: no cover
        return "other"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    return "other"


@dataclass(frozen=True)
class FallbackPolicy:
    """How failures are treated. Every timing is in seconds.

    >>> sorted(FallbackPolicy(first_token_timeout=5, fallback_on={"server", "timeout"}).fallback_on)
    ['server', 'timeout']
    """

    fallback_on: frozenset[str] = DEFAULT_FALLBACK_ON
    """Failure classes that fail over (see :func:`classify`); others raise."""
    rate_limit_retries: int = 1
    """Retries of the same model after a 429 before failing over."""
    max_retry_after: float = 5.0
    """The longest Retry-After honoured by waiting; a longer one fails over at once."""
    rate_limit_min_interval: float = 1.5
    """Never two attempts at a rate-limited model closer than this."""
    backoff_initial: float = 0.5
    backoff_max: float = 4.0
    server_retries: int = 1
    """Quick retries of the same model after a 5xx, a connection failure or a cut answer."""
    first_token_timeout: float | None = 10.0
    """No content within this long: abandon the attempt and fail over (a silent model is not retried)."""
    stall_timeout: float | None = 30.0
    """Silence after content for this long: the attempt has stalled."""
    circuit_breaker: bool = True
    failure_threshold: int = 3
    """Consecutive failures that open a model's circuit breaker."""
    cooldown: float = 5.0
    """How long an open breaker waits before its first probe; doubles after each failed probe..."""
    max_cooldown: float = 60.0
    """...up to this."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback_on", frozenset(self.fallback_on))
        unknown = set(self.fallback_on) - FAILURE_CLASSES
        if unknown:
            raise E.ConfigurationError(
                f"Unknown failure classes in fallback_on: {sorted(unknown)}; known: {sorted(FAILURE_CLASSES)}."
            )
        for name in ("first_token_timeout", "stall_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise E.ConfigurationError(f"{name} must be a positive number of seconds or None, got {value!r}.")
        if self.failure_threshold < 1 or self.cooldown < 0 or self.max_cooldown < self.cooldown:
            raise E.ConfigurationError(
                "Breaker settings need failure_threshold >= 1 and 0 <= cooldown <= max_cooldown "
                f"(got {self.failure_threshold}, {self.cooldown}, {self.max_cooldown})."
            )

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults, as JSON values (what ``dumpd`` stores).

        >>> FallbackPolicy.from_dict(FallbackPolicy(server_retries=3).to_dict()) == FallbackPolicy(server_retries=3)
        True
        """
        defaults = FallbackPolicy()
        out: dict[str, Any] = {}
        for name in sorted(self.field_names()):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                out[name] = sorted(value) if isinstance(value, frozenset) else value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FallbackPolicy:
        """A policy from :meth:`to_dict`'s output; unknown names are a ConfigurationError."""
        unknown = set(values) - cls.field_names()
        if unknown:
            raise E.ConfigurationError(
                f"Unknown fallback policy settings {sorted(unknown)}; known: {sorted(cls.field_names())}."
            )
        return cls(**dict(values))

    @property
    def breaker(self) -> BreakerSettings:
        return BreakerSettings(
            failure_threshold=self.failure_threshold, cooldown=self.cooldown, max_cooldown=self.max_cooldown
        )

    def retry_wait(self, failure: str, exc: BaseException, retry_number: int) -> float | None:
        """Seconds to wait before retrying the same model, or None to move on."""
        if failure == "rate_limit" and retry_number < self.rate_limit_retries:
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                if retry_after > self.max_retry_after:
                    return None  # the server asks for longer than we will wait here: fail over
                # Never hammer: a retry waits at least rate_limit_min_interval (2 attempts in 1.5 s at most).
                return max(retry_after, self.rate_limit_min_interval)
            backoff = min(self.backoff_initial * (2**retry_number), self.backoff_max)
            return max(self.rate_limit_min_interval, backoff * (1 + random.random()))
        if failure in ("server", "connection", "incomplete") and retry_number < self.server_retries:
            return min(self.backoff_initial * (2**retry_number), self.backoff_max) * random.uniform(0.1, 0.3)
        return None


@dataclass
class AttemptRecord:
    """One attempt (or a candidate skipped without one)."""

    model: str
    outcome: Literal["ok", "error", "skipped"]
    error: str | None = None
    error_type: str | None = None
    failure: str | None = None
    status: int | None = None
    latency_ms: float = 0.0
    cost: float | None = None
    waited_s: float = 0.0
    """How long the policy waited before this attempt (Retry-After or backoff)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FallbackReport:
    """Every attempt one call made, the primary's first."""

    requested_model: str
    served_model: str | None = None
    fallback_index: int | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def total_cost(self) -> float:
        """The sum of what every billed attempt reported."""
        return sum(a.cost for a in self.attempts if a.cost is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested_model": self.requested_model,
            "served_model": self.served_model,
            "fallback_index": self.fallback_index,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def all_failed(report: FallbackReport, first: BaseException | None) -> AllModelsFailedError:
    lines = [
        f"{i + 1}. {a.model}: {a.outcome}" + (f" — {a.error_type}: {a.error}" if a.error else "")
        for i, a in enumerate(report.attempts)
    ]
    err = AllModelsFailedError(
        "Every model failed:\n" + "\n".join(lines),
        model=report.requested_model,
        status_code=getattr(first, "status_code", None),
        code=getattr(first, "code", None),
    )
    err.attempts = report.attempts
    err.fallback_report = report
    if first is not None:
        err.__cause__ = first
    return err
