"""The fallback policy on its own: classification (ours, the SDK's, foreign exceptions) and waits."""

from __future__ import annotations

import httpx2
import openai
import pytest

from aisa_integrations.core import errors as E
from aisa_integrations.core.fallback import (
    AllModelsFailedError,
    FallbackPolicy,
    FirstTokenTimeoutError,
    classify,
)

_REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def sdk_status(cls, status):
    return cls("x", response=httpx2.Response(status, request=_REQUEST), body=None)


class ProviderError(Exception):
    """Another provider SDK's error: states an HTTP status."""

    def __init__(self, status_code):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


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
        (E.StreamStalledError("s"), "incomplete"),  # a non-streamed call restarts it; nothing reached the caller
        (E.StreamInterruptedError("cut"), "incomplete"),
        (E.MalformedResponseError("bad"), "incomplete"),
        (E.APIConnectionError("reset"), "connection"),
        (E.InvalidRequestError("bad block"), "bad_request"),
        (E.ConfigurationError("no key"), "bad_request"),
        # what a foreign member raises: the SDK's errors by status, others per fallback_on
        (sdk_status(openai.InternalServerError, 500), "server"),
        (sdk_status(openai.RateLimitError, 429), "rate_limit"),
        (sdk_status(openai.AuthenticationError, 401), "auth"),
        (sdk_status(openai.BadRequestError, 400), "bad_request"),
        (openai.APITimeoutError(request=_REQUEST), "timeout"),
        (openai.APIConnectionError(request=_REQUEST), "connection"),
        (ProviderError(503), "server"),
        (ProviderError(402), "credits"),
        (RuntimeError("boom"), "other"),
        (AllModelsFailedError("nested fallback gave up"), "other"),
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


def test_other_failures_fail_over_by_default_and_can_be_excluded():
    assert "other" in FallbackPolicy().fallback_on
    assert "other" not in FallbackPolicy(fallback_on={"server"}).fallback_on


def test_timeouts_must_be_positive():
    with pytest.raises(E.ConfigurationError, match="first_token_timeout"):
        FallbackPolicy(first_token_timeout=0)
    with pytest.raises(E.ConfigurationError, match="cooldown"):
        FallbackPolicy(cooldown=10, max_cooldown=5)
