"""FallbackRunnable as a LangChain citizen: binding, chains, agents, callbacks, construction."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel

from aisa_integrations import AIsaChatModel, FallbackRunnable
from aisa_integrations.core.fallback import FallbackPolicy
from aisa_integrations.testing import Fault


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"22C in {city}"


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def fallback(sim):
    sim.inject("gpt-4.1", Fault(status=503))
    return FallbackRunnable(
        ["gpt-4.1", "claude-3-sonnet"],
        api_key=sim.api_key,
        base_url=sim.base_url,
        first_token_timeout=2,
        stall_timeout=2,
    )


def test_the_policy_is_the_one_retry_layer_and_members_keep_their_settings(sim):
    member = AIsaChatModel(model="qwen-max", api_key=sim.api_key, base_url=sim.base_url, max_retries=5, temperature=0.9)
    runnable = FallbackRunnable(["gpt-4.1", member], api_key=sim.api_key, base_url=sim.base_url, temperature=0.2)
    assert (
        runnable.model_names == ["gpt-4.1", "qwen-max"] and member.max_retries == 5
    )  # the caller's model is untouched
    sim.inject("gpt-4.1", Fault(status=503))
    sim.inject("qwen-max", Fault(status=503, times=1))
    reply = runnable.invoke("hi")
    assert reply.response_metadata["model_name"] == "qwen-max"
    assert len(sim.chat_requests("gpt-4.1")) == 2 and len(sim.chat_requests("qwen-max")) == 2  # no SDK retries
    assert sim.chat_requests("gpt-4.1")[0].body["temperature"] == 0.2
    assert sim.chat_requests("qwen-max")[-1].body["temperature"] == 0.9  # the member's own setting
    assert (
        runnable.invoke("hi", temperature=0.1) and sim.chat_requests()[-1].body["temperature"] == 0.1
    )  # the call's wins


def test_signature_lists_every_policy_knob():
    import inspect

    params = inspect.signature(FallbackRunnable).parameters
    for knob in FallbackPolicy.field_names():
        assert knob in params, knob
    assert "mid_stream" in params and "policy" in params


def test_policy_fields_as_keywords_or_object(sim):
    runnable = FallbackRunnable(["gpt-4.1"], api_key="k", first_token_timeout=3, fallback_on={"server"})
    assert runnable.policy.first_token_timeout == 3 and runnable.policy.fallback_on == frozenset({"server"})
    with pytest.raises(Exception, match="either policy"):
        FallbackRunnable(["gpt-4.1"], api_key="k", policy=FallbackPolicy(), cooldown=1)


def test_bind_tools_binds_every_member(fallback, sim):
    reply = fallback.bind_tools([multiply], tool_choice="multiply").invoke("Multiply 6 by 7")
    assert reply.tool_calls[0]["args"] == {"a": 6, "b": 7}
    assert reply.response_metadata["model_name"] == "claude-3-sonnet"
    assert all(r.body["tool_choice"]["function"]["name"] == "multiply" for r in sim.chat_requests())


def test_structured_output_with_fallback(fallback, sim):
    structured = fallback.with_structured_output(Person)
    assert structured.invoke("Ada is 36") == Person(name="Ada", age=36)
    assert sim.chat_requests()[-1].model == "claude-3-sonnet"


def test_json_schema_output_skips_a_member_that_cannot_honour_it(sim):
    sim.inject("gpt-4.1", Fault(status=503))
    runnable = FallbackRunnable(
        ["gpt-4.1", "claude-3-sonnet", "gemini-2.0-flash"], api_key=sim.api_key, base_url=sim.base_url
    )
    raw = runnable.with_structured_output(Person, method="json_schema", include_raw=True).invoke("Ada is 36")
    assert raw["parsed"] == Person(name="Ada", age=36)
    attempts = raw["raw"].response_metadata["aisa"]["attempts"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [
        ("claude-3-sonnet", "skipped"),
        ("gpt-4.1", "error"),
        ("gpt-4.1", "error"),
        ("gemini-2.0-flash", "ok"),
    ]
    assert attempts[0]["error"] == "no json_schema response format"
    assert sim.chat_requests("claude-3-sonnet") == []


def test_bind_with_config_with_retry(fallback):
    assert fallback.bind(stop=["zzz"]).invoke("hi").content
    assert fallback.with_config(tags=["x"]).invoke("hi").content
    assert fallback.with_retry(stop_after_attempt=2).invoke("hi").content


def test_lcel_and_batch(fallback):
    chain = ChatPromptTemplate.from_template("Tell me about {x}") | fallback | StrOutputParser()
    assert "Tell me about routers" in chain.invoke({"x": "routers"})
    assert len(chain.batch([{"x": "a"}, {"x": "b"}])) == 2
    assert "Tell me about streams" in "".join(chain.stream({"x": "streams"}))


async def test_async_paths(fallback):
    assert (await fallback.ainvoke("hi")).response_metadata["model_name"] == "claude-3-sonnet"
    chunks = [c async for c in fallback.astream("hi")]
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    assert len(await fallback.abatch(["a", "b"])) == 2


def test_as_the_model_of_an_agent(fallback, sim):
    agent = create_agent(fallback, tools=[multiply, get_weather])
    result = agent.invoke({"messages": [("user", "Multiply 6 by 7 and get the weather in Paris")]})
    assert "42" in result["messages"][-1].content


def test_one_run_per_call_and_each_token_reported_once(fallback):
    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.starts: list[Any] = []
            self.tokens: list[str] = []
            self.errors = 0

        def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kwargs):
            self.starts.append(run_id)

        def on_llm_new_token(self, token, **kwargs):
            self.tokens.append(token)

        def on_llm_error(self, error, **kwargs):
            self.errors += 1

    recorder = Recorder()
    reply = fallback.invoke("hi", config={"callbacks": [recorder]})
    assert len(recorder.starts) == 1 and recorder.errors == 0  # the attempts are in the report, not runs
    assert [a["outcome"] for a in reply.response_metadata["aisa"]["attempts"]] == ["error", "error", "ok"]
    streamed = "".join(c.content for c in fallback.stream("hi there", config={"callbacks": [recorder]}))
    assert len(recorder.starts) == 2 and "".join(recorder.tokens) == streamed


def test_circuit_state_is_inspectable(sim):
    sim.inject("gpt-4.1", Fault(status=503))
    runnable = FallbackRunnable(
        ["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url, failure_threshold=2
    )
    runnable.invoke("hi")
    state = runnable.circuit_state()
    assert state["gpt-4.1"]["state"] == "open" and state["claude-3-sonnet"]["state"] == "closed"
