"""The fallback fault suite: real SDK, real sockets, the simulator; the same cases for both adapters.

Timings are short (first-token and stall timeouts of a few tenths of a second) so the suite stays fast.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import pytest

from aisa_integrations import AIsaLLM, FallbackRunnable
from aisa_integrations.core import errors as E
from aisa_integrations.core.fallback import AllModelsFailedError, FallbackPolicy, breakers
from aisa_integrations.testing import Fault, ScriptedReply

FAST = {
    "first_token_timeout": 0.5,
    "stall_timeout": 0.5,
    "rate_limit_min_interval": 0.05,
    "max_retry_after": 1.0,
    "cooldown": 0.4,
}
MODELS = ["gpt-4.1", "claude-3-sonnet", "gemini-2.0-flash"]


@dataclass
class Result:
    text: str
    served: str
    report: dict


class LangChainSide:
    name = "langchain"

    def __init__(self, sim, models=MODELS, mid_stream="raise", **policy):
        self.sim = sim
        self.llm = FallbackRunnable(
            models,
            api_key=sim.api_key,
            base_url=sim.base_url,
            mid_stream=mid_stream,
            policy=FallbackPolicy(**{**FAST, **policy}),
        )

    def invoke(self, prompt="Say hello to the whole world please"):
        reply = self.llm.invoke(prompt)
        return Result(reply.content, reply.response_metadata["model_name"], reply.response_metadata["aisa"])

    def stream(self, prompt="Say hello to the whole world please", seen=None):
        total = None
        for chunk in self.llm.stream(prompt):
            if seen is not None and chunk.content:
                seen.append(chunk.content)
            total = chunk if total is None else total + chunk
        return Result(total.content, total.response_metadata["model_name"], total.response_metadata["aisa"])

    async def ainvoke(self, prompt="Say hello to the whole world please"):
        reply = await self.llm.ainvoke(prompt)
        return Result(reply.content, reply.response_metadata["model_name"], reply.response_metadata["aisa"])


class LlamaIndexSide:
    name = "llama_index"

    def __init__(self, sim, models=MODELS, mid_stream="raise", **policy):
        self.llm = AIsaLLM(
            model=models[0],
            fallback_models=list(models[1:]),
            api_key=sim.api_key,
            api_base=sim.base_url,
            mid_stream=mid_stream,
            fallback_policy=FallbackPolicy(**{**FAST, **policy}),
        )

    def invoke(self, prompt="Say hello to the whole world please"):
        response = self.llm.complete(prompt)
        report = response.additional_kwargs["aisa"]
        return Result(response.text, report["served_model"], report)

    def stream(self, prompt="Say hello to the whole world please", seen=None):
        last = None
        for last in self.llm.stream_complete(prompt):
            if seen is not None and last.delta:
                seen.append(last.delta)
        report = last.additional_kwargs["aisa"]
        return Result(last.text, report["served_model"], report)

    async def ainvoke(self, prompt="Say hello to the whole world please"):
        response = await self.llm.acomplete(prompt)
        report = response.additional_kwargs["aisa"]
        return Result(response.text, report["served_model"], report)


@pytest.fixture(params=[LangChainSide, LlamaIndexSide], ids=["langchain", "llama_index"])
def side(request, sim):
    return lambda **kw: request.param(sim, **kw)


def statuses(sim, model):
    return [r.status for r in sim.chat_requests(model)]


def outcomes(report):
    return [(a["model"], a["outcome"]) for a in report["attempts"]]


# -- retry and fail-over ---------------------------------------------------------------------


def test_429_with_retry_after_once_is_retried_on_the_same_model(side, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=0.1, times=1))
    start = time.perf_counter()
    result = side().invoke()
    assert result.served == "gpt-4.1" and statuses(sim, "gpt-4.1") == [429, 200]
    assert time.perf_counter() - start >= 0.1  # Retry-After honoured
    assert outcomes(result.report) == [("gpt-4.1", "error"), ("gpt-4.1", "ok")]


def test_429_persistent_fails_over_after_one_retry(side, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=0.05))
    result = side().invoke()
    assert result.served == "claude-3-sonnet"
    assert statuses(sim, "gpt-4.1") == [429, 429]


def test_retry_after_longer_than_the_cap_fails_over_at_once(side, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=30))
    assert side().invoke().served == "claude-3-sonnet"
    assert statuses(sim, "gpt-4.1") == [429]


def test_500_once_is_retried(side, sim):
    sim.inject("gpt-4.1", Fault(status=500, times=1))
    result = side().invoke()
    assert result.served == "gpt-4.1" and statuses(sim, "gpt-4.1") == [500, 200]


def test_503_persistent_fails_over(side, sim):
    sim.inject("gpt-4.1", Fault(status=503))
    result = side().invoke()
    assert result.served == "claude-3-sonnet" and result.report["fallback_index"] == 1
    assert statuses(sim, "gpt-4.1") == [503, 503]


def test_reset_before_headers_fails_over(side, sim):
    sim.inject("gpt-4.1", Fault(reset=True))
    assert side().invoke().served == "claude-3-sonnet"
    assert len(sim.chat_requests("gpt-4.1")) == 2  # one retry for a connection failure


def test_no_response_at_all_fails_over_at_once_without_retry(side, sim):
    sim.inject("gpt-4.1", Fault(delay=5))
    start = time.perf_counter()
    result = side().invoke()
    elapsed = time.perf_counter() - start
    assert result.served == "claude-3-sonnet"
    assert len(sim.chat_requests("gpt-4.1")) == 1  # a silent model is not retried
    assert elapsed < 1.5  # first_token_timeout 0.5 s, not the SDK's 120 s with retries


def test_slow_first_token_fails_over(side, sim):
    sim.inject("gpt-4.1", Fault(stall_after=1, stall_for=5))  # headers and the role chunk, then nothing
    assert side().stream().served == "claude-3-sonnet"


def test_malformed_chunk_before_content_is_retried_then_fails_over(side, sim):
    sim.inject("gpt-4.1", Fault(malformed_at=1))
    assert side().invoke().served == "claude-3-sonnet"
    assert len(sim.chat_requests("gpt-4.1")) == 2


def test_missing_done_is_a_success(side, sim):
    sim.inject("gpt-4.1", Fault(missing_done=True))
    assert side().invoke().served == "gpt-4.1"


# -- streaming contract ----------------------------------------------------------------------


def test_stream_cut_mid_answer_raises_with_the_partial_text(side, sim):
    sim.inject("gpt-4.1", Fault(drop_after=4))
    seen = []
    with pytest.raises(E.StreamError) as info:
        side().stream(seen=seen)
    assert info.value.partial_text == "".join(seen) and info.value.partial_text
    assert sim.chat_requests("claude-3-sonnet") == []  # never two models' outputs joined


def test_stream_stall_after_content_raises_stalled(side, sim):
    sim.inject("gpt-4.1", Fault(stall_after=4, stall_for=5))
    with pytest.raises(E.StreamStalledError) as info:
        side().stream()
    assert info.value.partial_text.startswith("Simulated")


def test_mid_stream_continue_resumes_with_a_prefill(side, sim):
    sim.inject("gpt-4.1", Fault(drop_after=4))
    sim.script("and the rest of the answer.", model="claude-3-sonnet")
    result = side(mid_stream="continue").stream()
    prefill = sim.chat_requests("claude-3-sonnet")[-1].body["messages"][-1]
    assert prefill["role"] == "assistant" and prefill["content"] and result.text.startswith(prefill["content"])
    assert result.text.endswith("and the rest of the answer.")


def test_empty_successful_stream_is_a_success(side, sim):
    sim.script(ScriptedReply(content=""), model="gpt-4.1")
    result = side().stream()
    assert result.served == "gpt-4.1" and result.text == ""


# -- what is not retried ---------------------------------------------------------------------


def test_context_length_skips_to_a_larger_window(side, sim):
    sim.inject("gpt-4o", Fault(status=400, code="context_length_exceeded"))
    result = side(models=["gpt-4o", "qwen-max", "gemini-2.0-flash"]).invoke()
    assert result.served == "gemini-2.0-flash"
    assert sim.chat_requests("qwen-max") == []  # 32K is not larger than 128K
    assert [a["outcome"] for a in result.report["attempts"]] == ["error", "skipped", "ok"]


def test_content_policy_propagates_without_fail_over(side, sim):
    sim.inject("gpt-4.1", Fault(status=400, code="content_policy_violation"))
    with pytest.raises(E.ContentPolicyError):
        side().invoke()
    assert len(sim.chat_requests()) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(401, E.AuthenticationError), (402, E.InsufficientCreditsError), (400, E.BadRequestError)]
)
def test_account_and_request_errors_raise_at_once(side, sim, status, error):
    sim.inject("gpt-4.1", Fault(status=status))
    with pytest.raises(error):
        side().invoke()
    assert len(sim.chat_requests()) == 1


def test_404_fails_over_with_a_warning(side, sim):
    sim.inject("gpt-4.1", Fault(status=404))
    with pytest.warns(UserWarning, match="not found"):
        assert side().invoke().served == "claude-3-sonnet"


def test_fallback_on_narrows_the_classes(side, sim):
    sim.inject("gpt-4.1", Fault(status=503))
    with pytest.raises(E.ServerError):
        side(fallback_on={"timeout"}).invoke()


def test_every_model_failing_lists_every_attempt_primary_first(side, sim):
    sim.inject("*", Fault(status=503))
    with pytest.raises(AllModelsFailedError) as info:
        side().invoke()
    attempts = info.value.attempts
    assert [a.model for a in attempts] == [
        "gpt-4.1",
        "gpt-4.1",
        "claude-3-sonnet",
        "claude-3-sonnet",
        "gemini-2.0-flash",
        "gemini-2.0-flash",
    ]
    assert "1. gpt-4.1: error" in str(info.value)


# -- circuit breaker and accounting ----------------------------------------------------------


def test_circuit_opens_then_primary_comes_back(side, sim):
    runner = side(failure_threshold=2, cooldown=0.3)
    sim.inject("gpt-4.1", Fault(status=503))
    served = []
    primary_attempts_while_open = None
    for i in range(20):
        if i == 3:
            primary_attempts_while_open = len(sim.chat_requests("gpt-4.1"))
        if i == 8:
            assert len(sim.chat_requests("gpt-4.1")) == primary_attempts_while_open  # 0 attempts while open
            sim.clear_faults("gpt-4.1")
            time.sleep(0.35)  # the cooldown passes; the next request is the probe
        served.append(side_invoke(runner).served)
    assert served[:8] == ["claude-3-sonnet"] * 8
    assert served[8:] == ["gpt-4.1"] * 12  # the probe succeeded and closed the circuit
    assert any(s["state"] == "closed" for s in breakers.state().values())


def side_invoke(runner):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner.invoke()


def test_skipping_an_open_circuit_records_it(side, sim):
    runner = side(failure_threshold=1, cooldown=30)
    sim.inject("gpt-4.1", Fault(status=503))
    runner.invoke()
    result = runner.invoke()
    assert result.report["attempts"][0] == {
        **result.report["attempts"][0],
        "model": "gpt-4.1",
        "outcome": "skipped",
        "error": "circuit open",
    }


def test_fail_over_accounting(side, sim):
    sim.inject("gpt-4.1", Fault(status=503))
    result = side().invoke()
    ok = [a for a in result.report["attempts"] if a["outcome"] == "ok"]
    assert len(ok) == 1 and ok[0]["model"] == "claude-3-sonnet"
    assert all(a["cost"] is None for a in result.report["attempts"] if a["outcome"] == "error")  # not billed
    assert ok[0]["cost"] == pytest.approx(sim.total_billed)


async def test_async_fail_over(side, sim):
    sim.inject("gpt-4.1", Fault(delay=5))
    result = await side().ainvoke()
    assert result.served == "claude-3-sonnet"
