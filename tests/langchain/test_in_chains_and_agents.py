"""AIsaChatModel where users put it: LCEL chains and LangChain agents, against the simulator."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel

from aisa_integrations import AIsaChatModel

calls: list[str] = []


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    calls.append(f"weather:{city}")
    return f"It is 22C and sunny in {city}."


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    calls.append(f"multiply:{a}x{b}")
    return a * b


@pytest.fixture
def llm(sim):
    calls.clear()
    return AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url)


@pytest.fixture
def chain(llm):
    prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "Tell me about {topic}")])
    return prompt | llm | StrOutputParser()


def test_lcel_chain_sync(chain, sim):
    out = chain.invoke({"topic": "routers"})
    assert isinstance(out, str) and "Tell me about routers" in out
    assert [m["role"] for m in sim.chat_requests()[-1].body["messages"]] == ["system", "user"]


async def test_lcel_chain_async(chain):
    out = await chain.ainvoke({"topic": "gateways"})
    assert "Tell me about gateways" in out


def test_lcel_chain_streaming(chain):
    pieces = list(chain.stream({"topic": "streams"}))
    assert len(pieces) > 3 and all(isinstance(p, str) for p in pieces)
    assert "Tell me about streams" in "".join(pieces)


async def test_lcel_chain_astreaming_and_batch(chain):
    pieces = [p async for p in chain.astream({"topic": "async"})]
    assert "Tell me about async" in "".join(pieces)
    assert len(await chain.abatch([{"topic": "a"}, {"topic": "b"}])) == 2


def _assert_tool_loop(messages, sim):
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert {m.name for m in tool_messages} == {"get_weather", "multiply"}
    assert sorted(calls) == ["multiply:6x7", "weather:Paris"]
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "42" in final.content and "Paris" in final.content
    assert len(sim.chat_requests()) == 2  # the tool round and the answer


def test_agent_tool_loop(llm, sim):
    agent = create_agent(llm, tools=[get_weather, multiply], system_prompt="Use the tools.")
    result = agent.invoke({"messages": [("user", "Multiply 6 by 7 and get the weather in Paris")]})
    _assert_tool_loop(result["messages"], sim)


def test_agent_tool_loop_streaming(llm, sim):
    agent = create_agent(llm, tools=[get_weather, multiply])
    tokens = []
    final_state = None
    for mode, payload in agent.stream(
        {"messages": [("user", "Multiply 6 by 7 and get the weather in Paris")]},
        stream_mode=["messages", "values"],
    ):
        if mode == "messages":
            chunk, _meta = payload
            if isinstance(chunk, AIMessageChunk):
                tokens.append(chunk)
        else:
            final_state = payload
    assert len(tokens) > 5
    _assert_tool_loop(final_state["messages"], sim)
    assert all(r.stream for r in sim.chat_requests())


async def test_agent_tool_loop_async(llm, sim):
    agent = create_agent(llm, tools=[get_weather, multiply])
    result = await agent.ainvoke({"messages": [("user", "Multiply 6 by 7 and get the weather in Paris")]})
    _assert_tool_loop(result["messages"], sim)


class Weather(BaseModel):
    city: str
    temperature_c: int


def test_agent_with_provider_structured_output(llm, sim):
    agent = create_agent(llm, tools=[get_weather], response_format=Weather)
    result = agent.invoke({"messages": [("user", "Weather in 'Paris' please, 22 degrees")]})
    assert isinstance(result["structured_response"], Weather)
    assert any(r.body.get("response_format", {}).get("type") == "json_schema" for r in sim.chat_requests())
