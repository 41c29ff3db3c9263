"""AIsaChatModel against the simulator: fields, calls, messages, blocks, tools, output, errors."""

from __future__ import annotations

import json
import threading
import warnings
from typing import TypedDict

import httpx2
import openai
import pytest
from langchain_core import exceptions as lc_exceptions
from langchain_core.load import dumpd, dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from aisa_integrations import AIsaChatModel
from aisa_integrations.core import errors as E
from aisa_integrations.testing import Fault, ScriptedReply, ScriptedToolCall
from tests._media import b64, pdf_bytes, png_bytes, wav_bytes


@tool
def get_weather(location: str) -> str:
    """Get the current weather for a city."""
    return f"22C and sunny in {location}"


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Person(BaseModel):
    """A person."""

    name: str = Field(description="Their name")
    age: int


class PersonDict(TypedDict):
    """A person."""

    name: str
    age: int


PERSON_SCHEMA = {
    "title": "Person",
    "description": "A person.",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture
def llm(sim):
    return AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, max_retries=0)


def last_body(sim):
    return sim.chat_requests()[-1].body


def merged(chunks):
    total = None
    for chunk in chunks:
        total = chunk if total is None else total + chunk
    return total


# -- configuration ---------------------------------------------------------------------------


def test_model_name_alias_and_env_configuration(sim_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-be-used")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    llm = AIsaChatModel(model_name="qwen-max")
    assert llm.model == "qwen-max" == llm.model_name
    assert llm.invoke("hi").response_metadata["model_name"] == "qwen-max"
    assert sim_env.chat_requests()  # it went to AISA_BASE_URL, with AISA_API_KEY


def test_missing_key_fails_at_construction_before_any_request(sim, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    with pytest.raises(E.MissingAPIKeyError, match="AISA_API_KEY"):
        AIsaChatModel(model="gpt-4o", base_url=sim.base_url)
    assert sim.requests == []


def test_request_parameters_are_sent(llm, sim):
    AIsaChatModel(
        model="gpt-4o",
        api_key=sim.api_key,
        base_url=sim.base_url,
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop=["END"],
        seed=7,
    ).invoke("hi")
    body = last_body(sim)
    assert {
        k: body[k]
        for k in ("temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty", "stop", "seed")
    } == {
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "stop": ["END"],
        "seed": 7,
    }
    llm.invoke("hi", stop=["x"], temperature=1.0)
    assert last_body(sim)["stop"] == ["x"] and last_body(sim)["temperature"] == 1.0
    assert "max_tokens" not in last_body(sim)  # unset parameters are not sent as null


def test_model_kwargs_and_unknown_init_kwargs_travel_in_the_body(sim):
    with pytest.warns(UserWarning, match="top_k"):
        llm = AIsaChatModel(
            model="qwen-max", api_key=sim.api_key, base_url=sim.base_url, top_k=3, model_kwargs={"enable_search": True}
        )
    llm.invoke("hi")
    body = last_body(sim)
    assert body["top_k"] == 3 and body["enable_search"] is True


def test_default_headers_and_injected_http_client(sim):
    seen = []
    client = httpx2.Client(event_hooks={"request": [lambda request: seen.append(dict(request.headers))]})
    llm = AIsaChatModel(
        model="gpt-4o",
        api_key=sim.api_key,
        base_url=sim.base_url,
        default_headers={"X-Team": "search"},
        http_client=client,
    )
    llm.invoke("hi")
    assert seen and seen[0]["x-team"] == "search"
    assert sim.chat_requests()[-1].headers["x-team"] == "search"


async def test_injected_async_http_client(sim):
    seen = []

    async def hook(request):
        seen.append(request.url.path)

    client = httpx2.AsyncClient(event_hooks={"request": [hook]})
    llm = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, http_async_client=client)
    await llm.ainvoke("hi")
    assert seen == ["/v1/chat/completions"]


def test_timeout_and_retries(sim):
    sim.inject("gpt-4o", Fault(delay=1.0, times=1))
    fast = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, timeout=0.2, max_retries=0)
    with pytest.raises(lc_exceptions.ModelTimeoutError):
        fast.invoke("hi")
    sim.inject("gpt-4o", Fault(status=503, times=1))
    retrying = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, max_retries=1)
    assert retrying.invoke("hi").content
    assert [r.status for r in sim.chat_requests()][-2:] == [503, 200]


def test_rate_limiter_is_consulted(llm):
    class Counting(BaseRateLimiter):
        def __init__(self):
            self.calls = 0

        def acquire(self, *, blocking=True):
            self.calls += 1
            return True

        async def aacquire(self, *, blocking=True):
            self.calls += 1
            return True

    limiter = Counting()
    limited = llm.model_copy(update={"rate_limiter": limiter})
    limited.invoke("a")
    list(limited.stream("b"))
    assert limiter.calls == 2


# -- calls -----------------------------------------------------------------------------------


def test_invoke_stream_batch(llm, sim):
    assert isinstance(llm.invoke("one").content, str)
    chunks = list(llm.stream("two words"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks) and len(chunks) > 3
    assert merged(chunks).content.startswith("Simulated reply from gpt-4o")
    replies = llm.batch(["a", "b", "c"])
    assert [r.content.split("“")[1][0] for r in replies] == ["a", "b", "c"]


async def test_async_calls_are_native(llm, monkeypatch):
    import langchain_core.language_models.chat_models as chat_models

    def no_threads(*args, **kwargs):
        raise AssertionError("the async path fell back to a thread")

    monkeypatch.setattr(chat_models, "run_in_executor", no_threads)
    assert (await llm.ainvoke("one")).content
    chunks = [c async for c in llm.astream("two")]
    assert merged(chunks).content
    assert len(await llm.abatch(["a", "b"])) == 2


def test_streaming_flag_streams_under_invoke(sim):
    llm = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, streaming=True)
    reply = llm.invoke("hi")
    assert sim.chat_requests()[-1].stream is True
    assert reply.content and reply.usage_metadata["total_tokens"] > 0


# -- messages and content blocks -------------------------------------------------------------


def test_every_message_kind_and_name(llm, sim):
    llm.invoke(
        [
            SystemMessage("Be brief."),
            HumanMessage("Hi", name="ada"),
            AIMessage("Hello!", name="bot"),
            ChatMessage(role="developer", content="Use metric units."),
            AIMessage("", tool_calls=[{"name": "get_weather", "args": {"location": "Oslo"}, "id": "c1"}]),
            ToolMessage("5C", tool_call_id="c1"),
            FunctionMessage(name="legacy_fn", content="42"),
            HumanMessage("And tomorrow?"),
        ]
    )
    sent = last_body(sim)["messages"]
    assert [m["role"] for m in sent] == [
        "system",
        "user",
        "assistant",
        "developer",
        "assistant",
        "tool",
        "function",
        "user",
    ]
    assert sent[1]["name"] == "ada" and sent[2]["name"] == "bot"
    assert sent[4]["content"] is None
    assert sent[4]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'}}
    ]
    assert sent[5] == {"role": "tool", "tool_call_id": "c1", "content": "5C"}
    assert sent[6] == {"role": "function", "name": "legacy_fn", "content": "42"}


def test_unknown_chat_message_role_is_rejected(llm, sim):
    with pytest.raises(E.InvalidRequestError, match="role 'narrator'"):
        llm.invoke([ChatMessage(role="narrator", content="Once upon a time")])
    assert sim.requests == []


PNG = b64(png_bytes())


@pytest.mark.parametrize(
    ("block", "expected_url"),
    [
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
            "https://example.com/a.jpg",
        ),
        ({"type": "image_url", "image_url": "https://example.com/b.jpg"}, "https://example.com/b.jpg"),
        ({"type": "image", "url": "https://example.com/c.jpg"}, "https://example.com/c.jpg"),
        ({"type": "image", "base64": PNG, "mime_type": "image/png"}, f"data:image/png;base64,{PNG}"),
        ({"type": "image", "source_type": "url", "url": "https://example.com/d.jpg"}, "https://example.com/d.jpg"),
        (
            {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
            f"data:image/png;base64,{PNG}",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            f"data:image/png;base64,{PNG}",
        ),
    ],
    ids=["openai", "openai-str", "v1-url", "v1-base64", "v0-url", "v0-base64", "anthropic"],
)
def test_image_blocks_in_every_form(llm, sim, block, expected_url):
    reply = llm.invoke([HumanMessage(content=[{"type": "text", "text": "What is this?"}, block])])
    assert reply.content.startswith("I see 1 image")
    part = last_body(sim)["messages"][0]["content"][1]
    assert part["type"] == "image_url" and part["image_url"]["url"] == expected_url


def test_pdf_and_audio_blocks(llm, sim):
    pdf, wav = b64(pdf_bytes()), b64(wav_bytes())
    llm.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Summarise"},
                    {"type": "file", "base64": pdf, "mime_type": "application/pdf", "filename": "report.pdf"},
                    {"type": "file", "source_type": "base64", "data": pdf, "mime_type": "application/pdf"},
                    {"type": "audio", "base64": wav, "mime_type": "audio/wav"},
                    {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
                ]
            )
        ]
    )
    parts = last_body(sim)["messages"][0]["content"]
    assert parts[1] == {
        "type": "file",
        "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "report.pdf"},
    }
    assert parts[2]["file"]["filename"] == "document.pdf"
    assert parts[3] == {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}
    assert parts[4]["type"] == "input_audio"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "image", "base64": "not base64!!", "mime_type": "image/png"}, "not valid base64"),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, "not valid base64"),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "http"),
        ({"type": "file", "url": "https://example.com/x.pdf"}, "does not support file URLs"),
        ({"type": "video", "url": "https://example.com/v.mp4"}, "video"),
        ({"type": "mystery", "payload": 1}, "'mystery'"),
        ({"type": "text"}, "missing expected key"),
    ],
    ids=["bad-base64", "bad-data-url", "file-url-image", "file-by-url", "video", "unknown", "no-text"],
)
def test_bad_blocks_raise_before_sending(llm, sim, block, message):
    with pytest.raises(E.InvalidRequestError, match=message) as info:
        llm.invoke([HumanMessage(content=[{"type": "text", "text": "hi"}, block])])
    assert isinstance(info.value, ValueError) and isinstance(info.value, lc_exceptions.ModelInvalidRequestError)
    assert "messages[0].content[1]" in str(info.value)
    assert sim.requests == []


def test_base64_image_without_mime_type_is_refused_before_sending(llm, sim):
    # langchain-core's own tracing step refuses it first, with a ValueError that names the fix.
    with pytest.raises(ValueError, match="mime_type"):
        llm.invoke([HumanMessage(content=[{"type": "image", "base64": PNG}])])
    assert sim.requests == []


# -- tools -----------------------------------------------------------------------------------


def test_bind_tools_in_every_form(llm, sim):
    def lookup(query: str) -> str:
        """Look something up."""
        return query

    bound = llm.bind_tools(
        [
            get_weather,
            lookup,
            Person,
            PersonDict,
            PERSON_SCHEMA | {"title": "PersonSchema"},
            {"type": "function", "function": {"name": "raw", "parameters": {"type": "object"}}},
        ]
    )
    bound.invoke("What is the weather in Lima?")
    names = [t["function"]["name"] for t in last_body(sim)["tools"]]
    assert names == ["get_weather", "lookup", "Person", "PersonDict", "PersonSchema", "raw"]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        ("multiply", {"type": "function", "function": {"name": "multiply"}}),
        (True, "required"),
    ],
)
def test_tool_choice(llm, sim, choice, wire):
    llm.bind_tools([get_weather, multiply], tool_choice=choice).invoke("Weather in Rome?")
    assert last_body(sim)["tool_choice"] == wire


def test_tool_choice_true_with_one_tool_forces_it(llm, sim):
    llm.bind_tools([multiply], tool_choice=True).invoke("hello")
    assert last_body(sim)["tool_choice"] == {"type": "function", "function": {"name": "multiply"}}


def test_bad_tools_raise_before_sending(llm, sim):
    bad = {"type": "function", "function": {"name": "get weather!", "parameters": {"type": "object"}}}
    with pytest.raises(E.InvalidRequestError, match="tool name 'get weather!' is invalid"):
        llm.bind_tools([bad])
    with pytest.raises(E.InvalidRequestError, match="names no bound tool"):
        llm.bind_tools([multiply], tool_choice="divide")
    assert sim.requests == []


def test_parallel_tool_calls_and_strict(llm, sim):
    llm.bind_tools([get_weather, multiply], parallel_tool_calls=False, strict=True).invoke("hi")
    body = last_body(sim)
    assert body["parallel_tool_calls"] is False
    assert all(t["function"]["strict"] is True for t in body["tools"])


def test_tool_calls_and_invalid_tool_calls(llm, sim):
    sim.script(
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall("multiply", {"a": 3, "b": 4}),
                ScriptedToolCall("get_weather", "{not json"),
            ]
        )
    )
    reply = llm.bind_tools([get_weather, multiply]).invoke("go")
    assert reply.tool_calls == [
        {"name": "multiply", "args": {"a": 3, "b": 4}, "id": reply.tool_calls[0]["id"], "type": "tool_call"}
    ]
    assert reply.invalid_tool_calls[0]["name"] == "get_weather"
    assert reply.invalid_tool_calls[0]["args"] == "{not json"
    # The malformed call is sent back as it was, so the model can see it and repair it.
    llm.invoke(["go", reply, ToolMessage("12", tool_call_id=reply.tool_calls[0]["id"])])
    assert len(last_body(sim)["messages"][1]["tool_calls"]) == 2


def test_streamed_tool_calls_merge_into_valid_calls(llm, sim):
    chunks = list(llm.bind_tools([get_weather, multiply]).stream("Multiply 6 by 7 and the weather in Paris"))
    indexed = [tc for c in chunks for tc in c.tool_call_chunks]
    assert {tc["index"] for tc in indexed} == {0, 1}
    total = merged(chunks)
    assert {(c["name"], json.dumps(c["args"], sort_keys=True)) for c in total.tool_calls} == {
        ("get_weather", '{"location": "Paris"}'),
        ("multiply", '{"a": 6, "b": 7}'),
    }
    assert all(c["id"].startswith("call_sim_") and c["id"].count("call_") == 1 for c in total.tool_calls)


def test_tool_ids_repeated_by_the_provider_are_not_concatenated():
    from aisa_integrations.langchain._convert import StreamState, chunk_to_generation

    def delta(arguments, **fn):
        return {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gemini-2.0-flash",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": None,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"arguments": arguments, **fn},
                            }
                        ]
                    },
                }
            ],
        }

    state = StreamState()
    parts = [
        chunk_to_generation(delta('{"a": ', name="multiply"), state),
        chunk_to_generation(delta("1}", name="multiply"), state),
    ]
    total = parts[0].message + parts[1].message
    assert total.tool_calls == [{"name": "multiply", "args": {"a": 1}, "id": "call_1", "type": "tool_call"}]


def test_tool_message_round_trip_with_error_status(llm, sim):
    first = llm.bind_tools([get_weather]).invoke("Weather in Oslo?")
    call = first.tool_calls[0]
    result = ToolMessage("service down", tool_call_id=call["id"], status="error")
    final = llm.bind_tools([get_weather]).invoke(["Weather in Oslo?", first, result])
    assert last_body(sim)["messages"][2] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "Error: service down",
    }
    assert "service down" in final.content and not final.tool_calls


def test_legacy_functions_format(sim):
    llm = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url, tool_format="functions")
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    reply = bound.invoke("What is the weather in Tokyo?")
    body = last_body(sim)
    assert "tools" not in body and body["functions"][0]["name"] == "get_weather"
    assert body["function_call"] == {"name": "get_weather"}
    assert reply.tool_calls[0]["name"] == "get_weather" and reply.tool_calls[0]["args"] == {"location": "Tokyo"}
    final = bound.invoke(
        ["What is the weather in Tokyo?", reply, ToolMessage("22C", tool_call_id=reply.tool_calls[0]["id"])]
    )
    sent = last_body(sim)["messages"]
    assert sent[1]["function_call"]["name"] == "get_weather" and "tool_calls" not in sent[1]
    assert sent[2] == {"role": "function", "name": "get_weather", "content": "22C"}
    assert "22C" in final.content
    streamed = merged(bound.stream("What is the weather in Tokyo?"))
    assert streamed.tool_calls[0]["args"] == {"location": "Tokyo"}


# -- structured output -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
@pytest.mark.parametrize("schema", [Person, PersonDict, PERSON_SCHEMA], ids=["pydantic", "typeddict", "json"])
def test_structured_output(llm, sim, method, schema):
    result = llm.with_structured_output(schema, method=method).invoke("Ada is 36")
    value = result.model_dump() if isinstance(result, BaseModel) else result
    assert value == {"name": "Ada", "age": 36}
    body = last_body(sim)
    if method == "function_calling":
        assert body["tool_choice"]["function"]["name"] in ("Person", "PersonDict")
        assert body["parallel_tool_calls"] is False
    else:
        assert body["response_format"]["type"] == "json_schema"


def test_json_mode(llm, sim):
    result = llm.with_structured_output(None, method="json_mode").invoke("Reply with 'name' and 'age' as JSON")
    assert set(result) == {"name", "age"}
    assert last_body(sim)["response_format"] == {"type": "json_object"}


def test_include_raw_and_parsing_errors(llm, sim):
    out = llm.with_structured_output(Person, include_raw=True).invoke("Ada is 36")
    assert isinstance(out["raw"], AIMessage) and out["parsed"] == Person(name="Ada", age=36)
    assert out["parsing_error"] is None
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("Person", {"name": "Ada"})]))
    broken = llm.with_structured_output(Person, include_raw=True).invoke("Ada")
    assert broken["parsed"] is None and broken["parsing_error"] is not None


def test_json_schema_on_a_model_without_it_is_refused_before_sending(sim):
    claude = AIsaChatModel(model="claude-3-opus", api_key=sim.api_key, base_url=sim.base_url)
    structured = claude.with_structured_output(Person, method="json_schema")
    with pytest.raises(E.InvalidRequestError, match="claude-3-opus: no json_schema response format"):
        structured.invoke("Ada is 36")
    assert sim.requests == []
    trusting = AIsaChatModel(
        model="claude-3-opus", api_key=sim.api_key, base_url=sim.base_url, check_capabilities=False
    )
    trusting.with_structured_output(Person, method="json_schema").invoke("Ada is 36")  # the user knows better
    assert last_body(sim)["response_format"]["type"] == "json_schema"


def test_bind_tools_forwards_response_format(llm, sim):
    llm.bind_tools([get_weather], response_format=Person, strict=True).invoke("hi")
    rf = last_body(sim)["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "Person" and rf["json_schema"]["strict"]


# -- usage, metadata, reasoning --------------------------------------------------------------


def test_usage_and_metadata(llm, sim):
    sim.serve_as("gpt-4o", "gpt-4o-2024-11-20")
    reply = llm.invoke("hi")
    usage = reply.usage_metadata
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert usage["input_token_details"] == {"cache_read": 0}
    meta = reply.response_metadata
    assert meta["model_name"] == "gpt-4o-2024-11-20"  # the model that served, not the one asked for
    assert meta["model_provider"] == "aisa" and meta["finish_reason"] == "stop"
    assert meta["id"].startswith("chatcmpl-") and meta["system_fingerprint"] == "fp_aisa_sim"
    assert meta["cost"] == pytest.approx(sim.total_billed)
    assert meta["credits_remaining"] == pytest.approx(sim.credits)


def test_stream_usage_on_exactly_one_chunk_and_fields_merge_cleanly(llm, sim):
    sim.serve_as("gpt-4o", "gpt-4o-2024-11-20")
    chunks = list(llm.stream("hi there"))
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    total = merged(chunks)
    meta = total.response_metadata
    assert meta["model_name"] == "gpt-4o-2024-11-20" and meta["finish_reason"] == "stop"
    assert meta["model_provider"] == "aisa" and meta["cost"] == pytest.approx(sim.total_billed)
    assert total.usage_metadata["total_tokens"] > 0


def test_stream_usage_can_be_hidden_but_is_always_counted(sim):
    from aisa_integrations import get_aisa_callback

    llm = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, stream_usage=False)
    with get_aisa_callback() as cb:
        chunks = list(llm.stream("hi"))
    assert not any(c.usage_metadata for c in chunks)
    assert last_body(sim)["stream_options"] == {
        "include_usage": True
    }  # a stream that cannot be counted cannot be tracked
    assert cb.requests == 1 and cb.total_cost == pytest.approx(sim.total_billed)


def test_reasoning_content_read_and_sent_back(sim):
    llm = AIsaChatModel(model="deepseek-r1", api_key=sim.api_key, base_url=sim.base_url)
    reply = llm.invoke("Why is the sky blue?")
    assert reply.additional_kwargs["reasoning_content"].startswith("The user asked")
    assert reply.usage_metadata["output_token_details"]["reasoning"] > 0
    streamed = merged(llm.stream("Why is the sky blue?"))
    assert streamed.additional_kwargs["reasoning_content"] == reply.additional_kwargs["reasoning_content"]
    llm.invoke(["Why is the sky blue?", reply, "And at sunset?"])
    assert last_body(sim)["messages"][1]["reasoning_content"] == reply.additional_kwargs["reasoning_content"]


def test_reasoning_blocks_in_content_become_reasoning_content(llm, sim):
    ai = AIMessage(content=[{"type": "reasoning", "reasoning": "thought"}, {"type": "text", "text": "answer"}])
    llm.invoke(["q", ai, "more"])
    assert last_body(sim)["messages"][1] == {"role": "assistant", "content": "answer", "reasoning_content": "thought"}


# -- tracing, serialisation, secrets ---------------------------------------------------------


def test_langsmith_params_and_identity(sim):
    llm = AIsaChatModel(
        model="gpt-4o", api_key="key-abcdef123456", base_url=sim.base_url, temperature=0.3, max_tokens=9, stop="END"
    )
    ls = llm._get_ls_params()
    assert ls == {
        "ls_provider": "aisa",
        "ls_model_name": "gpt-4o",
        "ls_model_type": "chat",
        "ls_temperature": 0.3,
        "ls_max_tokens": 9,
        "ls_stop": ["END"],
    }
    assert llm._get_ls_params(model="qwen-max")["ls_model_name"] == "qwen-max"
    for text in (repr(llm), str(llm), json.dumps(llm._identifying_params), dumps(llm), json.dumps(dumpd(llm))):
        assert "key-abcdef123456" not in text
    assert dumpd(llm)["kwargs"]["api_key"] == {"lc": 1, "type": "secret", "id": ["AISA_API_KEY"]}


def test_profile_from_the_catalog():
    assert AIsaChatModel(model="gpt-4o", api_key="k").profile["image_inputs"] is True
    profile = AIsaChatModel(model="deepseek-r1", api_key="k").profile
    assert profile["max_input_tokens"] == 65_536 and profile["tool_calling"] is False
    assert profile["reasoning_output"] is True
    assert AIsaChatModel(model="brand-new-model", api_key="k").profile is None


def test_tools_on_a_model_without_tools_are_refused_before_sending(sim):
    bound = AIsaChatModel(model="deepseek-r1", api_key=sim.api_key, base_url=sim.base_url).bind_tools([multiply])
    with pytest.raises(E.InvalidRequestError, match="deepseek-r1: no tool calling"):
        bound.invoke("Multiply 6 by 7")
    assert sim.requests == []


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "ours", "lc_type", "sdk_type"),
    [
        (Fault(status=401), E.AuthenticationError, lc_exceptions.ModelAuthenticationError, openai.AuthenticationError),
        (Fault(status=404), E.ModelNotFoundError, lc_exceptions.ModelNotFoundError, openai.NotFoundError),
        (Fault(status=429, retry_after=2), E.RateLimitError, lc_exceptions.ModelRateLimitError, openai.RateLimitError),
        (
            Fault(status=400, code="context_length_exceeded"),
            E.ContextLengthExceededError,
            lc_exceptions.ContextOverflowError,
            openai.BadRequestError,
        ),
        (Fault(status=500), E.ServerError, lc_exceptions.ModelAPIError, openai.InternalServerError),
        (Fault(status=402), E.InsufficientCreditsError, lc_exceptions.ModelError, openai.APIStatusError),
        (Fault(reset=True), E.APIConnectionError, lc_exceptions.ModelConnectionError, openai.APIConnectionError),
    ],
)
def test_errors_are_catchable_three_ways(llm, sim, fault, ours, lc_type, sdk_type):
    sim.inject("gpt-4o", fault)
    with pytest.raises(ours) as info:
        llm.invoke("hi")
    assert isinstance(info.value, lc_type) and isinstance(info.value, sdk_type)
    assert info.value.model == "gpt-4o"


def test_stream_errors_are_typed(llm, sim):
    sim.inject("gpt-4o", Fault(drop_after=4))
    with pytest.raises(E.StreamInterruptedError) as info:
        list(llm.stream("hello there"))
    assert isinstance(info.value, lc_exceptions.ModelConnectionError) and info.value.partial_text


def test_unknown_model_error_suggests(sim):
    llm = AIsaChatModel(model="claude-3-opuss", api_key=sim.api_key, base_url=sim.base_url)
    with pytest.raises(E.ModelNotFoundError, match="claude-3-opus"):
        llm.invoke("hi")


def test_thread_safety_of_shared_client(llm, sim):
    errors = []

    def work():
        try:
            for _ in range(5):
                assert llm.invoke("hi").content
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(sim.chat_requests()) == 40


def test_no_warning_noise_on_plain_use(llm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm.invoke("hi")
        list(llm.stream("hi"))
