"""Replayed HTTP traffic (cassettes/test_replayed/*.yaml).

Assertions are about structure and behaviour, never wording, so the cassettes can be re-recorded
live: AISA_API_KEY=... AISA_RECORD_MODE=rewrite pytest tests/langchain/test_replayed.py
"""

from __future__ import annotations

from langchain_core.tools import tool
from pydantic import BaseModel

from aisa_integrations import AIsaChatModel


@tool
def get_weather(location: str) -> str:
    """Get the current weather for a location."""
    return "22C"


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int


def model(cassette, name="gpt-4.1", **kw):
    return AIsaChatModel(model=name, api_key=cassette.api_key, base_url=cassette.base_url, temperature=0, **kw)


def test_invoke(cassette):
    reply = model(cassette).invoke("Explain quantum computing in one sentence.")
    assert isinstance(reply.content, str) and reply.content
    assert reply.response_metadata["model_name"].startswith("gpt-4.1")
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata["total_tokens"] > 0
    assert reply.response_metadata["cost"] >= 0


def test_stream(cassette):
    chunks = list(model(cassette, "claude-3-sonnet").stream("Write a two-line poem about AI."))
    assert len(chunks) > 2
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content and total.usage_metadata["output_tokens"] > 0
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_tool_call(cassette):
    reply = model(cassette).bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Tokyo?")
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    assert isinstance(reply.tool_calls[0]["args"].get("location"), str)


def test_structured_output(cassette):
    person = model(cassette).with_structured_output(Person).invoke("Ada Lovelace was 36.")
    assert isinstance(person, Person) and isinstance(person.age, int)
