"""One engine behind both frameworks: the same request on the wire, the same policy, nothing left behind.

Real SDK, real sockets, the simulator. Each test names the behaviour it protects.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from typing import Any

import httpx2
import openai
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from aisa_integrations import AIsaChatModel, AIsaLLM, FallbackRunnable, TaskRouterRunnable, get_aisa_callback
from aisa_integrations.core import errors as E
from aisa_integrations.core.breakers import breakers
from aisa_integrations.core.timeouts import watchdog
from aisa_integrations.testing import Fault, ScriptedReply, ScriptedToolCall
from tests._media import b64, png_bytes, wav_bytes

PNG = b64(png_bytes())
WAV = b64(wav_bytes())
PDF = b64(b"%PDF-1.4 tiny")


def key(sim: Any) -> dict[str, Any]:
    return {"api_key": sim.api_key, "base_url": sim.base_url}


def bodies(sim, model=None):
    return [r.body for r in sim.chat_requests(model)]


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"22C in {city}"


def weather(city: str) -> str:
    """Get the weather for a city."""
    return f"22C in {city}"


# -- the same request from both frameworks --------------------------------------------------

CONVERSATIONS = {
    "system-and-user": (
        [SystemMessage("Be brief."), HumanMessage("Hello there")],
        [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hello there")],
    ),
    "text-parts": (
        [
            HumanMessage(content=["first passage", "second passage"]),
            AIMessage(content=["Hello ", "world"]),
            HumanMessage("and?"),
        ],
        [
            ChatMessage(role="user", blocks=[TextBlock(text="first passage"), TextBlock(text="second passage")]),
            ChatMessage(role="assistant", blocks=[TextBlock(text="Hello "), TextBlock(text="world")]),
            ChatMessage(role="user", content="and?"),
        ],
    ),
    "images": (
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Compare these"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "image", "base64": PNG, "mime_type": "image/png"},
                ]
            )
        ],
        [
            ChatMessage(
                role="user",
                blocks=[
                    TextBlock(text="Compare these"),
                    ImageBlock(url="https://example.com/cat.png", detail="low"),
                    ImageBlock(image=png_bytes(), image_mimetype="image/png"),
                ],
            )
        ],
    ),
    "pdf-and-audio": (
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Summarise both"},
                    {"type": "file", "base64": PDF, "mime_type": "application/pdf", "filename": "report.pdf"},
                    {"type": "audio", "base64": WAV, "mime_type": "audio/wav"},
                ]
            )
        ],
        [
            ChatMessage(
                role="user",
                blocks=[
                    TextBlock(text="Summarise both"),
                    DocumentBlock(data=b"%PDF-1.4 tiny", document_mimetype="application/pdf", title="report"),
                    AudioBlock(audio=wav_bytes(), format="wav"),
                ],
            )
        ],
    ),
    "tool-loop-with-reasoning": (
        [
            HumanMessage("Weather in Oslo?"),
            AIMessage(
                content="",
                tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1"}],
                additional_kwargs={"reasoning_content": "I should look it up."},
            ),
            ToolMessage("22C in Oslo", tool_call_id="call_1"),
        ],
        [
            ChatMessage(role="user", content="Weather in Oslo?"),
            ChatMessage(
                role="assistant",
                blocks=[
                    ThinkingBlock(content="I should look it up."),
                    ToolCallBlock(tool_call_id="call_1", tool_name="get_weather", tool_kwargs={"city": "Oslo"}),
                ],
            ),
            ChatMessage(role="tool", content="22C in Oslo", additional_kwargs={"tool_call_id": "call_1"}),
        ],
    ),
}


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_both_frameworks_send_the_same_request(sim, name):
    lc_messages, li_messages = CONVERSATIONS[name]
    AIsaChatModel(model="gpt-4o", temperature=0.3, max_tokens=200, **key(sim)).invoke(lc_messages)
    AIsaLLM(model="gpt-4o", temperature=0.3, max_tokens=200, api_key=sim.api_key, api_base=sim.base_url).chat(
        li_messages
    )
    langchain, llama_index = bodies(sim)
    assert langchain == llama_index


def test_both_frameworks_send_the_same_tools_and_tool_choice(sim):
    AIsaChatModel(model="gpt-4o", **key(sim)).bind_tools([get_weather], tool_choice="any").invoke("Weather in Oslo?")
    AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url).chat_with_tools(
        [FunctionTool.from_defaults(weather, name="get_weather")], user_msg="Weather in Oslo?", tool_required=True
    )
    langchain, llama_index = bodies(sim)
    assert langchain["tool_choice"] == llama_index["tool_choice"] == "required"
    assert [t["function"]["name"] for t in langchain["tools"]] == [t["function"]["name"] for t in llama_index["tools"]]


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def test_both_frameworks_build_the_same_json_schema_format(sim):
    AIsaChatModel(model="gpt-4.1", **key(sim)).with_structured_output(Person, method="json_schema").invoke("Ada is 36")
    AIsaLLM(model="gpt-4.1", api_key=sim.api_key, api_base=sim.base_url).structured_predict(
        Person, PromptTemplate("Ada is 36")
    )
    langchain, llama_index = bodies(sim)
    assert langchain["response_format"] == llama_index["response_format"]
    assert langchain["response_format"]["json_schema"]["name"] == "Person"


# -- bad input: refused before anything is sent, the same way in both -----------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1}, "temperature=-1 is out of range"),
        ({"temperature": 5}, "temperature=5 is out of range"),
        ({"temperature": float("nan")}, "finite"),
        ({"max_tokens": 0}, "max_tokens=0 is out of range"),
        ({"max_tokens": -5}, "max_tokens=-5 is out of range"),
        ({"max_tokens": 20_000}, "exceeds its output limit of 16384"),
        ({"stop": 5}, "stop must be a string or a list"),
        ({"temprature": 0.3}, "Did you mean 'temperature'"),
    ],
)
def test_bad_parameters_are_refused_before_sending_in_both(sim, kwargs, message):
    with pytest.raises(E.InvalidRequestError, match=message):
        AIsaChatModel(model="gpt-4o", **key(sim)).invoke("hi", **kwargs)
    with pytest.raises(E.InvalidRequestError, match=message):
        AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url).chat(
            [ChatMessage(role="user", content="hi")], **kwargs
        )
    assert sim.requests == []


def test_bad_conversations_are_refused_before_sending_in_both(sim):
    llm = AIsaChatModel(model="gpt-4o", **key(sim))
    li = AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url)
    with pytest.raises(E.InvalidRequestError, match="conversation is empty"):
        llm.invoke([])
    with pytest.raises(E.InvalidRequestError, match="conversation is empty"):
        li.chat([])
    bad_url = "data:image/png,notbase64!!"
    with pytest.raises(E.InvalidRequestError, match="data URL must look like"):
        llm.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": bad_url}}])])
    with pytest.raises(E.InvalidRequestError, match="data URL must look like"):
        li.chat([ChatMessage(role="user", blocks=[ImageBlock(url=bad_url)])])
    with pytest.raises(E.InvalidRequestError, match="non-empty tool_call_id"):
        llm.invoke([HumanMessage("hi"), ToolMessage("result", tool_call_id="")])
    with pytest.raises(E.InvalidRequestError, match="non-empty tool_call_id"):
        li.chat([ChatMessage(role="user", content="hi"), ChatMessage(role="tool", content="result")])
    assert sim.requests == []


# -- capabilities, on every path -------------------------------------------------------------

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def test_a_single_model_refuses_what_it_cannot_take_and_unknown_models_are_tried(sim):
    with pytest.raises(E.InvalidRequestError, match="deepseek-chat: no image input"):
        AIsaChatModel(model="deepseek-chat", **key(sim)).invoke([HumanMessage(content=["what is it?", IMAGE])])
    assert sim.requests == []
    sim.add_model("brand-new-model")
    AIsaChatModel(model="brand-new-model", **key(sim)).invoke([HumanMessage(content=["what is it?", IMAGE])])
    with pytest.raises(E.BadRequestError, match="max_tokens"):  # sent: the gateway itself refuses it
        AIsaChatModel(model="gpt-4o", check_capabilities=False, **key(sim)).invoke("hi", max_tokens=20_000)
    assert [r.model for r in sim.chat_requests()] == ["brand-new-model", "gpt-4o"]


def test_fallback_members_that_cannot_serve_are_skipped_with_the_reason(sim):
    vision = FallbackRunnable(["deepseek-chat", "gpt-4o"], **key(sim))
    reply = vision.invoke([HumanMessage(content=["what is it?", IMAGE])])
    attempts = reply.response_metadata["aisa"]["attempts"]
    assert attempts[0] == {**attempts[0], "model": "deepseek-chat", "outcome": "skipped", "error": "no image input"}
    tools = FallbackRunnable(["deepseek-r1", "gpt-4.1"], **key(sim)).bind_tools([get_weather])
    reply = tools.invoke("Weather in Oslo?")
    assert reply.response_metadata["aisa"]["attempts"][0]["error"] == "no tool calling"
    li = AIsaLLM(model="deepseek-chat", fallback_models=["gpt-4o"], api_key=sim.api_key, api_base=sim.base_url)
    response = li.chat(
        [ChatMessage(role="user", blocks=[TextBlock(text="what?"), ImageBlock(url=IMAGE["image_url"]["url"])])]
    )
    assert response.additional_kwargs["aisa"]["attempts"][0]["error"] == "no image input"
    assert sim.chat_requests("deepseek-chat") == [] and sim.chat_requests("deepseek-r1") == []


# -- foreign members -------------------------------------------------------------------------


class Broken(BaseChatModel):
    """Another library's chat model that fails with a given exception."""

    error: Any = None

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        raise self.error


def _sdk_500() -> openai.InternalServerError:
    request = httpx2.Request("POST", "http://127.0.0.1/x")
    return openai.InternalServerError("boom", response=httpx2.Response(500, request=request), body=None)


@pytest.mark.parametrize("error", [RuntimeError("library bug"), _sdk_500()], ids=["RuntimeError", "sdk-500"])
def test_a_foreign_member_fails_over_like_ours(sim, error):
    runnable = FallbackRunnable([Broken(error=error), "claude-3-sonnet"], **key(sim))
    reply = runnable.invoke("hi")
    assert reply.response_metadata["model_name"] == "claude-3-sonnet"
    assert reply.response_metadata["aisa"]["attempts"][0]["error_type"] == type(error).__name__
    chunks = list(runnable.stream("hi"))
    assert "".join(c.content for c in chunks).startswith("Simulated reply from claude-3-sonnet")
    assert asyncio.run(runnable.ainvoke("hi")).response_metadata["model_name"] == "claude-3-sonnet"


def test_a_nested_fallback_fails_over_as_a_unit(sim):
    sim.inject("gpt-4.1", Fault(status=503))
    sim.inject("gpt-4o", Fault(status=503))
    inner = FallbackRunnable(["gpt-4.1", "gpt-4o"], **key(sim))
    reply = FallbackRunnable([inner, "claude-3-sonnet"], **key(sim)).invoke("hi")
    assert reply.response_metadata["model_name"] == "claude-3-sonnet"
    assert reply.response_metadata["aisa"]["attempts"][0]["error_type"] == "AllModelsFailedError"


# -- per-attempt timeouts leave nothing behind ----------------------------------------------


def _established_to(port: int) -> int:
    """Open TCP connections from this process's sockets to the port (Linux /proc)."""
    import os

    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def _package_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("aisa-") and t.name != "aisa-simulator"]


def test_a_timed_out_sync_attempt_leaves_no_thread_no_socket_and_no_bill(sim):
    sim.inject("gpt-4.1", Fault(delay=1.0, times=1))
    runnable = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], first_token_timeout=0.2, **key(sim))
    sim.inject("gpt-4.1", Fault(stall_after=1, stall_for=1.0, times=1))
    runnable.invoke("first")  # no response at all: abandoned at the headers
    runnable.invoke("second")  # headers and a role chunk, then silence: abandoned by the deadline
    if watchdog.running:  # it exits as soon as nothing is watched
        watchdog._thread.join(timeout=2)  # type: ignore[union-attr]
    assert _package_threads() == []
    assert _established_to(sim.port) <= 1  # only the pooled connection of the answers that arrived
    abandoned = [r for r in sim.chat_requests("gpt-4.1")]
    assert len(abandoned) == 2
    # The simulator notices the hang-up when its delay or stall ends, as a gateway would, and refunds.
    _wait_until(lambda: all(r.status and r.billed_cost is None for r in abandoned))
    assert all(r.billed_cost is None for r in abandoned)  # the gateway bills no abandoned answer
    assert sim.total_billed == pytest.approx(sum(r.billed_cost or 0 for r in sim.chat_requests("claude-3-sonnet")))


def _wait_until(condition, limit=5.0):
    import time

    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


# -- breakers ----------------------------------------------------------------------------------


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


def _open(sim, runnable, clock):
    sim.inject("gpt-4.1", Fault(status=503, times=1))
    runnable.invoke("hi")
    assert runnable.circuit_state()["gpt-4.1"]["state"] == "open"
    clock.now += 10


def test_the_breaker_recovers_after_a_consumer_leaves_the_probe_stream(sim, clock):
    runnable = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], failure_threshold=1, server_retries=0, **key(sim))
    _open(sim, runnable, clock)
    for chunk in runnable.stream("hello"):  # the probe
        if chunk.content:
            break
    assert runnable.circuit_state()["gpt-4.1"]["state"] == "half_open"
    before = len(sim.chat_requests("gpt-4.1"))
    assert runnable.invoke("hi").response_metadata["model_name"] == "gpt-4.1"  # probed again, and closed
    assert len(sim.chat_requests("gpt-4.1")) == before + 1
    assert runnable.circuit_state()["gpt-4.1"]["state"] == "closed"


def test_the_breaker_recovers_after_a_cancelled_probe(sim, clock):
    runnable = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], failure_threshold=1, server_retries=0, **key(sim))
    _open(sim, runnable, clock)
    sim.inject("gpt-4.1", Fault(delay=1.0, times=1))

    async def cancelled_probe():
        task = asyncio.ensure_future(runnable.ainvoke("slow"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_probe())
    assert runnable.invoke("hi").response_metadata["model_name"] == "gpt-4.1"
    assert runnable.circuit_state()["gpt-4.1"]["state"] == "closed"


def test_a_hundred_concurrent_requests_open_a_dead_primary_once(sim):
    sim.inject("gpt-4.1", Fault(status=503))
    runnable = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], **key(sim))

    async def many():
        return await asyncio.gather(*(runnable.ainvoke(f"request {i}") for i in range(100)))

    replies = asyncio.run(many())
    assert all(r.response_metadata["model_name"] == "claude-3-sonnet" for r in replies)
    assert runnable.circuit_state()["gpt-4.1"]["times_opened"] == 1
    assert len(sim.chat_requests("gpt-4.1")) <= 100 + 3  # in-flight attempts, plus the retries before it opened


# -- provider fields across turns and families -----------------------------------------------


def _gemini_tool_turn(sim):
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"})]), model="gemini-2.0-flash")
    first = AIsaChatModel(model="gemini-2.0-flash", **key(sim)).bind_tools([get_weather]).invoke("Weather in Oslo?")
    call = first.tool_calls[0]
    return [HumanMessage("Weather in Oslo?"), first, ToolMessage("22C", tool_call_id=call["id"])]


def test_a_tool_loop_sends_the_thought_signature_back(sim):
    history = _gemini_tool_turn(sim)
    AIsaChatModel(model="gemini-2.0-flash", **key(sim)).bind_tools([get_weather]).invoke(history)
    sent = bodies(sim, "gemini-2.0-flash")[-1]["messages"][1]["tool_calls"][0]
    assert sent["extra_content"] == {"google": {"thought_signature": f"sig-{sent['id']}"}}


def test_a_history_failed_over_to_claude_carries_no_signature(sim):
    history = _gemini_tool_turn(sim)
    sim.inject("gemini-2.0-flash", Fault(status=503))
    runnable = FallbackRunnable(["gemini-2.0-flash", "claude-3-sonnet"], **key(sim)).bind_tools([get_weather])
    reply = runnable.invoke(history)
    assert reply.response_metadata["model_name"] == "claude-3-sonnet"
    sent = bodies(sim, "claude-3-sonnet")[-1]["messages"][1]
    assert "extra_content" not in sent["tool_calls"][0] and "_aisa_family" not in sent


def test_llama_index_keeps_the_signature_too(sim):
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"})]), model="gemini-2.0-flash")
    llm = AIsaLLM(model="gemini-2.0-flash", api_key=sim.api_key, api_base=sim.base_url)
    tools = [FunctionTool.from_defaults(weather, name="get_weather")]
    first = llm.chat_with_tools(tools, user_msg="Weather in Oslo?")
    call = llm.get_tool_calls_from_response(first)[0]
    history = [
        ChatMessage(role="user", content="Weather in Oslo?"),
        first.message,
        ChatMessage(role="tool", content="22C", additional_kwargs={"tool_call_id": call.tool_id}),
    ]
    llm.chat_with_tools(tools, chat_history=history)
    sent = bodies(sim, "gemini-2.0-flash")[-1]["messages"][1]["tool_calls"][0]
    assert sent["extra_content"]["google"]["thought_signature"] == f"sig-{call.tool_id}"


# -- caching ---------------------------------------------------------------------------------


@pytest.fixture
def llm_cache():
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_differently_configured_models_never_share_a_cache_entry(sim, llm_cache):
    truncated = FallbackRunnable(["gpt-4o"], max_tokens=5, **key(sim)).invoke("Tell me about caches")
    whole = FallbackRunnable(["gpt-4o"], **key(sim)).invoke("Tell me about caches")
    assert truncated.content != whole.content and len(sim.chat_requests()) == 2
    warm = FallbackRunnable(["gpt-4o"], temperature=0.9, **key(sim)).invoke("Tell me about caches")
    assert len(sim.chat_requests()) == 3 and warm.content
    routed = TaskRouterRunnable({"fast": "gpt-4o"}, **key(sim)).invoke("hi?")
    other_routes = TaskRouterRunnable({"fast": "gpt-4o-mini"}, **key(sim)).invoke("hi?")
    assert routed.response_metadata["model_name"] != other_routes.response_metadata["model_name"]
    for model in (FallbackRunnable(["gpt-4o"], **key(sim)), AIsaChatModel(model="gpt-4o", **key(sim))):
        assert sim.api_key not in model._get_llm_string()


def test_a_cache_hit_is_not_a_billed_request(sim, llm_cache):
    llm = AIsaChatModel(model="gpt-4o", **key(sim))
    with get_aisa_callback() as cb:
        first = llm.invoke("cache me")
        second = llm.invoke("cache me")
    assert first.content == second.content and len(sim.chat_requests()) == 1
    assert cb.requests == 1 and cb.total_cost == pytest.approx(sim.total_billed)


# -- errors --------------------------------------------------------------------------------------


def test_langchain_errors_pickle_with_their_classes(sim):
    sim.inject("gpt-4o", Fault(status=429, retry_after=3))
    with pytest.raises(E.RateLimitError) as info:
        AIsaChatModel(model="gpt-4o", max_retries=0, **key(sim)).invoke("hi")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is type(info.value) and copy.retry_after == 3 and str(copy) == str(info.value)


# -- connections -----------------------------------------------------------------------------


def test_streams_return_their_connection_to_the_pool(sim):
    llm = AIsaChatModel(model="gpt-4o", **key(sim))
    li = AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url)
    list(llm.stream("warm up"))
    before = sim.connections
    for _ in range(5):
        list(llm.stream("again"))
        list(li.stream_chat([ChatMessage(role="user", content="again")]))
        llm.invoke("and a plain call")
    assert sim.connections == before  # 0 new TCP connections per stream after the first

    async def async_streams():
        async for _ in llm.astream("warm up"):
            pass
        opened = sim.connections
        for _ in range(5):
            async for _ in llm.astream("again"):
                pass
        return sim.connections - opened

    assert asyncio.run(async_streams()) == 0
