"""The fallback policy's pieces on their own: classification, waits, circuit breakers."""

from __future__ import annotations

import threading

import pytest

from aisa_integrations.core import errors as E
from aisa_integrations.core.fallback import (
    CircuitBreaker,
    FallbackPolicy,
    FirstTokenTimeoutError,
    classify,
)


def status_error(cls, status, **attrs):
    err = cls("x", status_code=status)
    for k, v in attrs.items():
        setattr(err, k, v)
    return err


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (status_error(E.RateLimitError, 429), "rate_limit"),
        (status_error(E.ServerError, 503), "server"),
        (status_error(E.ContextLengthExceededError, 400), "context_length"),
        (status_error(E.ContentPolicyError, 400), "content_policy"),
        (status_error(E.BadRequestError, 400), "bad_request"),
        (status_error(E.AuthenticationError, 401), "auth"),
        (status_error(E.InsufficientCreditsError, 402), "credits"),
        (status_error(E.ModelNotFoundError, 404), "not_found"),
        (E.APITimeoutError("t"), "timeout"),
        (FirstTokenTimeoutError("t"), "timeout"),
        (E.StreamStalledError("s"), "timeout"),
        (E.StreamInterruptedError("cut"), "incomplete"),
        (E.MalformedResponseError("bad"), "incomplete"),
        (E.APIConnectionError("reset"), "connection"),
        (E.InvalidRequestError("bad block"), "bad_request"),
    ],
)
def test_classification(exc, expected):
    assert classify(exc) == expected


def test_rate_limit_wait_honours_retry_after_within_the_cap():
    policy = FallbackPolicy()
    assert policy.retry_wait("rate_limit", status_error(E.RateLimitError, 429, retry_after=2.0), 0) == 2.0
    assert policy.retry_wait("rate_limit", status_error(E.RateLimitError, 429, retry_after=60.0), 0) is None
    assert policy.retry_wait("rate_limit", status_error(E.RateLimitError, 429, retry_after=2.0), 1) is None


def test_never_two_rate_limited_attempts_within_one_and_a_half_seconds():
    policy = FallbackPolicy()
    for _ in range(50):
        assert policy.retry_wait("rate_limit", status_error(E.RateLimitError, 429, retry_after=0.0), 0) >= 1.5
        wait = policy.retry_wait("rate_limit", status_error(E.RateLimitError, 429), 0)
        assert 1.5 <= wait <= 2 * policy.backoff_max


def test_server_errors_retry_once_quickly_and_silence_never():
    policy = FallbackPolicy()
    assert 0 < policy.retry_wait("server", E.ServerError("x"), 0) < 0.2
    assert policy.retry_wait("server", E.ServerError("x"), 1) is None
    assert policy.retry_wait("timeout", E.APITimeoutError("x"), 0) is None


def test_unknown_failure_class_is_refused():
    with pytest.raises(E.ConfigurationError, match="fallback_on"):
        FallbackPolicy(fallback_on={"server", "sometimes"})


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_breaker_opens_probes_once_and_closes():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # exactly one probe
    breaker.success()
    assert breaker.state == "closed" and breaker.failures == 0


def test_failed_probe_reopens_and_retry_after_extends_the_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=5, clock=clock)
    breaker.failure(retry_after=30)
    clock.now = 10
    assert breaker.state == "open"  # Retry-After said 30 s
    clock.now = 30
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and breaker.snapshot()["times_opened"] == 2


def test_breaker_is_thread_safe_one_probe_among_many_threads():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=1, clock=clock)
    breaker.failure()
    clock.now = 2
    allowed = []
    threads = [threading.Thread(target=lambda: allowed.append(breaker.allow())) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1
