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


def test_members_built_from_ids_and_instances_have_sdk_retries_off(sim):
    member = AIsaChatModel(model="qwen-max", api_key=sim.api_key, base_url=sim.base_url, max_retries=5)
    runnable = FallbackRunnable(["gpt-4.1", member], api_key=sim.api_key, base_url=sim.base_url, temperature=0.2)
    assert [m.max_retries for m in runnable.models] == [0, 0]
    assert runnable.models[0].temperature == 0.2 and member.max_retries == 5  # the caller's model is untouched
    assert runnable.model_names == ["gpt-4.1", "qwen-max"]


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


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_with_fallback(fallback, sim, method):
    structured = fallback.with_structured_output(Person, method=method)
    assert structured.invoke("Ada is 36") == Person(name="Ada", age=36)
    assert sim.chat_requests()[-1].model == "claude-3-sonnet"


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


def test_each_attempt_is_a_child_of_one_parent_run(fallback):
    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.starts: list[tuple[Any, Any, str]] = []
            self.errors = 0

        def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kwargs):
            self.starts.append((run_id, parent_run_id, kwargs.get("invocation_params", {}).get("model")))

        def on_llm_error(self, error, **kwargs):
            self.errors += 1

    recorder = Recorder()
    fallback.invoke("hi", config={"callbacks": [recorder]})
    parent_id = recorder.starts[0][0]
    children = recorder.starts[1:]
    assert recorder.starts[0][1] is None
    assert [c[1] for c in children] == [parent_id] * 3  # two gpt-4.1 attempts, one claude attempt
    assert recorder.errors == 2


def test_circuit_state_is_inspectable(sim):
    sim.inject("gpt-4.1", Fault(status=503))
    runnable = FallbackRunnable(
        ["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url, failure_threshold=2
    )
    runnable.invoke("hi")
    state = runnable.circuit_state()
    assert state["gpt-4.1"]["state"] == "open" and state["claude-3-sonnet"]["state"] == "closed"
