"""The fault suite: every scenario through both frameworks and every entry point, real SDK, real sockets.

One engine serves both adapters, so every entry point must reach the same verdict:

- non-streamed calls (LangChain invoke/ainvoke, LlamaIndex complete/acomplete/chat/achat) rescue all
  16 scenarios: nothing had reached the caller, so a cut, stalled or malformed answer is restarted;
- streamed calls rescue everything that fails before the first content; a cut, stall or malformed
  chunk after content ends in a typed stream error carrying the partial text (never a truncated
  answer passed off as complete, never two models' outputs joined).

Timings are short (first-token and stall timeouts of 0.3 s) so the suite stays fast; waits
are asserted on the report's recorded ``waited_s``, never on the wall clock.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass

import pytest
from llama_index.core.base.llms.types import ChatMessage

from aisa_integrations import AIsaLLM, FallbackRunnable
from aisa_integrations.core import errors as E
from aisa_integrations.core.breakers import breakers
from aisa_integrations.core.fallback import AllModelsFailedError, FallbackPolicy
from aisa_integrations.testing import Fault, ScriptedReply

FAST = {
    "first_token_timeout": 0.3,
    "stall_timeout": 0.3,
    "rate_limit_min_interval": 0.05,
    "max_retry_after": 1.0,
    "cooldown": 0.4,
}
MODELS = ["gpt-4.1", "claude-3-sonnet", "gemini-2.0-flash"]
PROMPT = "Say hello to the whole world please"


@dataclass
class Result:
    text: str
    served: str
    report: dict


# -- the two frameworks, every entry point --------------------------------------------------


class LangChainSide:
    name = "langchain"

    def __init__(self, sim, models=MODELS, mid_stream="raise", **policy):
        self.llm = FallbackRunnable(
            models,
            api_key=sim.api_key,
            base_url=sim.base_url,
            mid_stream=mid_stream,
            policy=FallbackPolicy(**{**FAST, **policy}),
        )

    @staticmethod
    def _result(message) -> Result:
        return Result(message.content, message.response_metadata["model_name"], message.response_metadata["aisa"])

    def invoke(self, prompt=PROMPT):
        return self._result(self.llm.invoke(prompt))

    async def ainvoke(self, prompt=PROMPT):
        return self._result(await self.llm.ainvoke(prompt))

    def stream(self, prompt=PROMPT, seen=None):
        total = None
        for chunk in self.llm.stream(prompt):
            if seen is not None and chunk.content:
                seen.append(chunk.content)
            total = chunk if total is None else total + chunk
        return self._result(total)

    async def astream(self, prompt=PROMPT, seen=None):
        total = None
        async for chunk in self.llm.astream(prompt):
            if seen is not None and chunk.content:
                seen.append(chunk.content)
            total = chunk if total is None else total + chunk
        return self._result(total)


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

    @staticmethod
    def _result(text, extra) -> Result:
        return Result(text, extra["aisa"]["served_model"], extra["aisa"])

    def invoke(self, prompt=PROMPT):
        response = self.llm.complete(prompt)
        return self._result(response.text, response.additional_kwargs)

    def chat(self, prompt=PROMPT):
        response = self.llm.chat([ChatMessage(role="user", content=prompt)])
        return self._result(response.message.content, response.additional_kwargs)

    async def ainvoke(self, prompt=PROMPT):
        response = await self.llm.acomplete(prompt)
        return self._result(response.text, response.additional_kwargs)

    async def achat(self, prompt=PROMPT):
        response = await self.llm.achat([ChatMessage(role="user", content=prompt)])
        return self._result(response.message.content, response.additional_kwargs)

    def stream(self, prompt=PROMPT, seen=None):
        last = None
        for last in self.llm.stream_complete(prompt):
            if seen is not None and last.delta:
                seen.append(last.delta)
        return self._result(last.text, last.additional_kwargs)

    async def astream(self, prompt=PROMPT, seen=None):
        last = None
        async for last in await self.llm.astream_complete(prompt):
            if seen is not None and last.delta:
                seen.append(last.delta)
        return self._result(last.text, last.additional_kwargs)


@pytest.fixture(params=[LangChainSide, LlamaIndexSide], ids=["langchain", "llama_index"])
def side(request, sim):
    return lambda **kw: request.param(sim, **kw)


def run(runner, entry, **kw):
    method = getattr(runner, entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 404's fail-over warning
        if asyncio.iscoroutinefunction(method):
            return asyncio.run(method(**kw))
        return method(**kw)


# -- the 16 scenarios -----------------------------------------------------------------------

# name -> (fault on the primary, whether content reaches a streaming caller before it fails)
SCENARIOS = {
    "429-once-retry-after": (Fault(status=429, retry_after=0.1, times=1), False),
    "429-persistent": (Fault(status=429, retry_after=0.05), False),
    "429-retry-after-too-long": (Fault(status=429, retry_after=30), False),
    "500-once": (Fault(status=500, times=1), False),
    "502-persistent": (Fault(status=502), False),
    "503-persistent": (Fault(status=503), False),
    "reset-before-headers": (Fault(reset=True), False),
    "no-response": (Fault(delay=5), False),
    "silent-after-headers": (Fault(stall_after=1, stall_for=5), False),
    "malformed-before-content": (Fault(malformed_at=1), False),
    "404-unknown-model": (Fault(status=404), False),
    "context-length": (Fault(status=400, code="context_length_exceeded"), False),
    "missing-done": (Fault(missing_done=True), False),
    "cut-mid-answer": (Fault(drop_after=4), True),
    "stall-mid-answer": (Fault(stall_after=4, stall_for=5), True),
    "malformed-mid-answer": (Fault(malformed_at=4), True),
}
NON_STREAMED = ["invoke", "ainvoke", "chat", "achat"]
STREAMED = ["stream", "astream"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("entry", NON_STREAMED)
def test_non_streamed_calls_rescue_every_scenario(side, sim, scenario, entry):
    runner = side()
    if not hasattr(runner, entry):
        pytest.skip(f"{runner.name} has no {entry}")
    sim.inject("gpt-4.1", SCENARIOS[scenario][0])
    result = run(runner, entry)
    assert result.text.startswith("Simulated reply from "), result
    assert result.text.endswith("The AIsa simulator scripts its answers."), result.text  # whole, not truncated
    served = [a for a in result.report["attempts"] if a["outcome"] == "ok"]
    assert len(served) == 1 and served[0]["model"] == result.served


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("entry", STREAMED)
def test_streamed_calls_rescue_or_end_in_a_clean_typed_error(side, sim, scenario, entry):
    fault, after_content = SCENARIOS[scenario]
    sim.inject("gpt-4.1", fault)
    seen: list[str] = []
    if after_content:
        with pytest.raises(E.StreamError) as info:
            run(side(), entry, seen=seen)
        assert info.value.partial_text and info.value.partial_text == "".join(seen)
        assert sim.chat_requests("claude-3-sonnet") == []  # never two models' outputs joined
        assert info.value.fallback_report.attempts[-1].outcome == "error"
    else:
        result = run(side(), entry, seen=seen)
        assert result.text == "".join(seen) and result.text.startswith("Simulated reply from ")


# -- what each scenario does, precisely ------------------------------------------------------


def statuses(sim, model):
    return [r.status for r in sim.chat_requests(model)]


def outcomes(report):
    return [(a["model"], a["outcome"]) for a in report["attempts"]]


def test_429_with_retry_after_is_retried_on_the_same_model_after_waiting(side, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=0.1, times=1))
    result = side().invoke()
    assert result.served == "gpt-4.1" and statuses(sim, "gpt-4.1") == [429, 200]
    assert outcomes(result.report) == [("gpt-4.1", "error"), ("gpt-4.1", "ok")]
    assert result.report["attempts"][1]["waited_s"] == pytest.approx(0.1)  # Retry-After honoured


def test_429_persistent_fails_over_after_one_retry(side, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=0.05))
    result = side().invoke()
    assert result.served == "claude-3-sonnet" and statuses(sim, "gpt-4.1") == [429, 429]
    assert result.report["attempts"][1]["waited_s"] == 0.05  # never hammered: at least the minimum interval


def test_retry_after_longer_than_the_cap_fails_over_at_once(side, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=30))
    assert side().invoke().served == "claude-3-sonnet"
    assert statuses(sim, "gpt-4.1") == [429]


def test_a_silent_model_is_not_retried(side, sim):
    sim.inject("gpt-4.1", Fault(delay=5))
    result = side().invoke()
    assert result.served == "claude-3-sonnet" and len(sim.chat_requests("gpt-4.1")) == 1
    assert result.report["attempts"][0]["error_type"] == "FirstTokenTimeoutError"


def test_a_cut_answer_is_restarted_on_the_same_model_once(side, sim):
    sim.inject("gpt-4.1", Fault(drop_after=4, times=1))
    result = side().invoke()
    assert result.served == "gpt-4.1" and len(sim.chat_requests("gpt-4.1")) == 2
    assert result.report["attempts"][0]["error_type"] == "StreamInterruptedError"


def test_context_length_skips_to_a_larger_window_and_tries_unknown_windows(side, sim):
    sim.inject("gpt-4o", Fault(status=400, code="context_length_exceeded"))
    sim.add_model("brand-new-model")
    result = side(models=["gpt-4o", "qwen-max", "brand-new-model"]).invoke()
    assert result.served == "brand-new-model"  # its window is unknown: tried, not skipped
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
    with pytest.raises(error) as info:
        side().invoke()
    assert len(sim.chat_requests()) == 1
    assert info.value.fallback_report.attempts[0].status == status


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
    assert [a.model for a in info.value.attempts] == [m for m in MODELS for _ in range(2)]
    assert "1. gpt-4.1: error" in str(info.value)


def test_stream_cut_mid_answer_raises_with_the_partial_text(side, sim):
    sim.inject("gpt-4.1", Fault(drop_after=4))
    seen: list[str] = []
    with pytest.raises(E.StreamInterruptedError) as info:
        side().stream(seen=seen)
    assert info.value.partial_text == "".join(seen) and info.value.partial_text


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


# -- circuit breakers and accounting ---------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(breakers, "clock", fake)
    return fake


def test_circuit_opens_then_the_primary_comes_back(side, sim, clock):
    runner = side(failure_threshold=2, cooldown=5)
    sim.inject("gpt-4.1", Fault(status=503))
    served = [run(runner, "invoke").served for _ in range(4)]
    assert served == ["claude-3-sonnet"] * 4
    assert len(sim.chat_requests("gpt-4.1")) == 2  # opened after two failures: no attempts while open
    sim.clear_faults("gpt-4.1")
    clock.now += 5  # the cooldown passes; the next request is the probe
    served = [run(runner, "invoke").served for _ in range(3)]
    assert served == ["gpt-4.1"] * 3
    assert any(s["state"] == "closed" and s["times_opened"] == 1 for s in breakers.state().values())


def test_skipping_an_open_circuit_records_it(side, sim, clock):
    runner = side(failure_threshold=1)
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
