"""The engine's loop on its own: targets that fail on cue, a fake clock, recorded sleeps (no waiting)."""

from __future__ import annotations

import asyncio

import pytest

from aisa_integrations.core import errors as E
from aisa_integrations.core.config import ClientConfig
from aisa_integrations.core.engine import Engine, ForeignTarget, make_plan
from aisa_integrations.core.fallback import AllModelsFailedError, FallbackPolicy

CONFIG = ClientConfig.resolve(api_key="test-key", base_url="http://127.0.0.1:9/v1")
REQUEST = {"messages": [{"role": "user", "content": "hi"}]}


def rate_limited(retry_after=None):
    err = E.RateLimitError("slow down", status_code=429)
    err.retry_after = retry_after
    return err


class Scripted:
    """A member whose calls fail with the given errors, in order, then answer."""

    def __init__(self, name, *failures):
        self.name = name
        self.failures = list(failures)
        self.calls = 0

    def _next(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return f"answer from {self.name}"

    def target(self) -> ForeignTarget:
        async def acall(_input, _prefill):
            return self._next()

        def stream(_input, _prefill):
            yield self._next()

        async def astream(_input, _prefill):
            yield self._next()

        return ForeignTarget(
            name=self.name,
            call=lambda _input, _prefill: self._next(),
            acall=acall,
            stream=stream,
            astream=astream,
            is_content=bool,
            text_of=str,
        )


class Timeline:
    """A fake clock that sleeping advances: the loop's waits are recorded, never waited for."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds):
        self.sleep(seconds)


def engine(*members, **policy):
    timeline = Timeline()
    plan = make_plan(
        CONFIG,
        model=members[0].target(),
        fallback_models=[m.target() for m in members[1:]],
        policy=FallbackPolicy(**policy),
    )
    return Engine(plan, clock=timeline.clock, sleep=timeline.sleep, asleep=timeline.asleep), timeline


def complete(eng):
    return eng.complete(eng.prepare(REQUEST))


def test_retry_after_is_waited_then_the_same_model_answers():
    primary = Scripted("a", rate_limited(retry_after=2.0))
    eng, timeline = engine(primary, Scripted("b"))
    outcome = complete(eng)
    assert outcome.foreign == "answer from a" and timeline.sleeps == [2.0]
    assert [a.waited_s for a in outcome.report.attempts] == [0.0, 2.0]


def test_a_short_retry_after_is_stretched_to_the_minimum_interval():
    eng, timeline = engine(Scripted("a", rate_limited(retry_after=0.2)), Scripted("b"))
    complete(eng)
    assert timeline.sleeps == [1.5]


def test_a_retry_after_beyond_the_cap_fails_over_without_waiting():
    eng, timeline = engine(Scripted("a", rate_limited(retry_after=60)), Scripted("b"))
    assert complete(eng).foreign == "answer from b" and timeline.sleeps == []


def test_backoff_without_retry_after_stays_within_its_bounds():
    eng, timeline = engine(Scripted("a", rate_limited()), Scripted("b"))
    complete(eng)
    assert len(timeline.sleeps) == 1 and 1.5 <= timeline.sleeps[0] <= 2 * 4.0


def test_a_server_error_is_retried_once_quickly_then_fails_over():
    primary = Scripted("a", E.ServerError("boom", status_code=503), E.ServerError("boom", status_code=503))
    eng, timeline = engine(primary, Scripted("b"))
    outcome = complete(eng)
    assert outcome.foreign == "answer from b" and primary.calls == 2
    assert len(timeline.sleeps) == 1 and 0 < timeline.sleeps[0] < 0.2


def test_a_timeout_fails_over_at_once():
    primary = Scripted("a", E.FirstTokenTimeoutError("silent"))
    eng, timeline = engine(primary, Scripted("b"))
    assert complete(eng).foreign == "answer from b" and primary.calls == 1 and timeline.sleeps == []


def test_a_foreign_exception_fails_over_and_is_recorded_as_other():
    eng, _ = engine(Scripted("a", RuntimeError("library bug")), Scripted("b"))
    outcome = complete(eng)
    assert outcome.foreign == "answer from b"
    assert (outcome.report.attempts[0].failure, outcome.report.attempts[0].error_type) == ("other", "RuntimeError")


def test_fallback_on_can_exclude_foreign_exceptions():
    eng, _ = engine(Scripted("a", RuntimeError("library bug")), Scripted("b"), fallback_on={"server"})
    with pytest.raises(RuntimeError):
        complete(eng)


def test_everything_failing_lists_every_attempt():
    eng, _ = engine(Scripted("a", *[E.ServerError("x", status_code=500)] * 2), Scripted("b", RuntimeError("y")))
    with pytest.raises(AllModelsFailedError) as info:
        complete(eng)
    assert [(a.model, a.outcome) for a in info.value.attempts] == [("a", "error"), ("a", "error"), ("b", "error")]
    assert isinstance(info.value.__cause__, E.ServerError)


def test_async_loop_records_the_same_waits():
    primary = Scripted("a", rate_limited(retry_after=2.0))
    eng, timeline = engine(primary, Scripted("b"))
    outcome = asyncio.run(eng.acomplete(eng.prepare(REQUEST)))
    assert outcome.foreign == "answer from a" and timeline.sleeps == [2.0]


def test_a_stream_fails_over_before_content_and_reports_the_waits():
    eng, timeline = engine(Scripted("a", E.ServerError("x", status_code=500), rate_limited(3.0)), Scripted("b"))
    stream = eng.stream(eng.prepare(REQUEST))
    items = [item.value for item in stream]
    assert items == ["answer from b"]
    assert [a.outcome for a in stream.report.attempts] == ["error", "error", "ok"]
    assert len(timeline.sleeps) == 1  # the 5xx retry; a second failure (429) moves on


def test_bad_input_is_refused_before_any_member_is_called():
    primary = Scripted("a")
    eng, _ = engine(primary)
    for bad in ({"messages": []}, {**REQUEST, "temperature": 5}, {**REQUEST, "n": 0}, {**REQUEST, "temprature": 1}):
        with pytest.raises(E.InvalidRequestError):
            eng.prepare(bad)
    assert primary.calls == 0
