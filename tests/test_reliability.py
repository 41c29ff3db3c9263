"""Reliability and security: secrets never leak, bad input never slips through, load never loses a call."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)

from aisa_integrations import AIsaChatModel, AIsaLLM, FallbackRunnable, TaskRouterRunnable, get_aisa_callback
from aisa_integrations.core import ClientConfig, get_client
from aisa_integrations.core import errors as E
from aisa_integrations.core.fallback import AllModelsFailedError
from aisa_integrations.core.wire import normalize_request
from aisa_integrations.langchain._convert import format_tools, messages_to_openai
from aisa_integrations.llama_index._convert import message_to_openai
from aisa_integrations.testing import AIsaSimulator, Fault
from aisa_integrations.testing._validation import _check_part
from tests._media import b64, png_bytes


def lc_request(messages):
    """What the LangChain adapter translates and the core then checks (before anything is sent)."""
    return normalize_request({"model": "gpt-4o", "messages": messages_to_openai(messages)})["messages"]


def li_request(message):
    return normalize_request({"model": "gpt-4o", "messages": [message_to_openai(message, 0)]})["messages"][0]


SECRET = "sk-aisa-" + "Z9" * 16  # key-shaped on purpose


# -- secrets ---------------------------------------------------------------------------------


@pytest.fixture
def secret_sim():
    with AIsaSimulator(api_key=SECRET) as sim:
        yield sim


def _objects(sim):
    kw = {"api_key": SECRET, "base_url": sim.base_url}
    return [
        ClientConfig.resolve(**kw),
        AIsaChatModel(model="gpt-4o", **kw),
        FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], **kw),
        TaskRouterRunnable({"code": ["deepseek-coder", "gpt-4.1"]}, **kw),
        AIsaLLM(model="gpt-4o", api_key=SECRET, api_base=sim.base_url),
        AIsaLLM(model="gpt-4o", fallback_models=["qwen-max"], api_key=SECRET, api_base=sim.base_url),
        AIsaLLM(routes={}, api_key=SECRET, api_base=sim.base_url),
    ]


def test_the_key_is_in_no_repr_str_or_serialisation(secret_sim):
    for obj in _objects(secret_sim):
        texts = [repr(obj), str(obj)]
        if hasattr(obj, "lc_id"):
            texts += [dumps(obj), str(dumpd(obj))]
        if isinstance(obj, AIsaLLM):
            texts += [obj.to_json(), str(obj.to_dict())]
        for text in texts:
            assert SECRET not in text, f"{type(obj).__name__} leaks the key"


def test_the_key_is_in_no_debug_log_or_exception(secret_sim):
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    caught: list[BaseException] = []
    try:
        llm = AIsaChatModel(model="gpt-4o", api_key=SECRET, base_url=secret_sim.base_url, max_retries=1)
        llm.invoke("hi")
        list(llm.stream("hi"))
        AIsaLLM(model="gpt-4o", api_key=SECRET, api_base=secret_sim.base_url).complete("hi")
        secret_sim.inject("*", Fault(status=401, message=f"Key {SECRET} was revoked", times=1))
        secret_sim.inject("*", Fault(status=503, message=f"upstream rejected {SECRET}"))
        for call in (
            lambda: llm.invoke("hi"),
            lambda: FallbackRunnable(
                ["gpt-4.1", "claude-3-sonnet"], api_key=SECRET, base_url=secret_sim.base_url
            ).invoke("hi"),
            lambda: AIsaChatModel(
                model="gpt-4o", api_key="wrong-" + SECRET[6:], base_url=secret_sim.base_url, max_retries=0
            ).invoke("hi"),
        ):
            try:
                call()
            except Exception as exc:
                caught.append(exc)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert len(caught) == 3
    assert isinstance(caught[1], AllModelsFailedError)
    for exc in caught:
        assert SECRET not in str(exc) and SECRET not in repr(exc) and SECRET not in str(exc.args)
        assert SECRET not in str(getattr(exc, "server_message", ""))
    log = buffer.getvalue()
    assert log and SECRET not in log


# -- bad input (property-based) --------------------------------------------------------------

PNG = b64(png_bytes())
_urls = st.sampled_from(
    [
        "https://example.com/a.png",
        "http://x.test/b.jpg",
        f"data:image/png;base64,{PNG}",
        "data:image/png;base64,@@",
        "ftp://nope/x.png",
        "file:///etc/passwd",
        "",
        "javascript:alert(1)",
    ]
)
_b64 = st.one_of(st.just(PNG), st.just("not base64!"), st.just(""), st.text(max_size=12))
_mimes = st.sampled_from(["image/png", "image/jpeg", "application/pdf", "audio/wav", "audio/mp3", "", None])

lc_blocks = st.one_of(
    st.text(max_size=20),
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=20)),
    st.builds(lambda: {"type": "text"}),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, _urls),
    st.builds(lambda u: {"type": "image_url", "image_url": u}, _urls),
    st.builds(lambda u: {"type": "image", "url": u}, _urls),
    st.builds(lambda d, m: {"type": "image", "base64": d, **({"mime_type": m} if m else {})}, _b64, _mimes),
    st.builds(
        lambda d, m: {"type": "image", "source_type": "base64", "data": d, "mime_type": m or "image/png"}, _b64, _mimes
    ),
    st.builds(lambda d, m: {"type": "file", "base64": d, "mime_type": m or "application/pdf"}, _b64, _mimes),
    st.builds(lambda u: {"type": "file", "url": u}, _urls),
    st.builds(lambda d, m: {"type": "audio", "base64": d, "mime_type": m or "audio/wav"}, _b64, _mimes),
    st.builds(
        lambda d, f: {"type": "input_audio", "input_audio": {"data": d, "format": f}},
        _b64,
        st.sampled_from(["wav", "mp3", None]),
    ),
    st.builds(lambda k: {"type": k, "payload": 1}, st.text(max_size=8)),
    st.builds(lambda: {"no_type": True}),
)


def _lc_messages(draw_blocks):
    return st.lists(
        st.one_of(
            st.builds(lambda b: HumanMessage(content=b), st.lists(draw_blocks, min_size=1, max_size=4)),
            st.builds(lambda t: SystemMessage(content=t), st.text(max_size=10)),
            st.builds(lambda t: AIMessage(content=t), st.text(max_size=10)),
            st.builds(lambda t: ToolMessage(content=t, tool_call_id="c1"), st.text(max_size=10)),
        ),
        min_size=1,
        max_size=4,
    )


def _is_text(block):
    return isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")


@settings(max_examples=300, deadline=None)
@given(messages=_lc_messages(lc_blocks))
def test_langchain_messages_become_valid_requests_or_typed_errors(messages):
    try:
        converted = lc_request(messages)
    except E.InvalidRequestError as exc:
        assert "messages[" in str(exc)
        return
    for source, sent in zip(messages, converted, strict=True):
        if isinstance(source, HumanMessage) and isinstance(source.content, list):
            expected_non_text = [b for b in source.content if not _is_text(b)]
            parts = sent["content"] if isinstance(sent["content"], list) else []
            assert len([p for p in parts if p["type"] != "text"]) == len(expected_non_text)  # nothing dropped
            for part in parts:
                assert _check_part(part, True) is None, part  # what a strict server accepts


_names = st.one_of(st.text(max_size=70), st.sampled_from(["get_weather", "a-b_c", "x" * 64, "x" * 65, "bad name"]))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
_tools = st.one_of(
    st.builds(
        lambda n, p: {"type": "function", "function": {"name": n, "parameters": p}},
        _names,
        st.one_of(_json, st.just({"type": "object", "properties": {}})),
    ),
    st.builds(lambda n: {"name": n, "description": "d", "parameters": {"type": "object", "properties": {}}}, _names),
    st.builds(lambda n: {"title": n, "type": "object", "properties": {"a": {"type": "integer"}}}, _names),
    _json,
)


@settings(max_examples=300, deadline=None)
@given(tools=st.lists(_tools, min_size=1, max_size=3))
def test_tool_schemas_become_valid_tools_or_typed_errors(tools):
    try:
        specs = format_tools(tools)
    except E.InvalidRequestError:
        return
    for spec in specs:
        if spec.get("type") == "function":
            assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", spec["function"]["name"])


li_blocks = st.one_of(
    st.builds(TextBlock, text=st.text(max_size=20)),
    st.builds(
        lambda u: ImageBlock(url=u),
        st.sampled_from(["https://example.com/a.png", "ftp://x/y.png", "http://x.test/b.jpg"]),
    ),
    st.builds(
        lambda d: ImageBlock(image=d, image_mimetype="image/png"),
        st.one_of(st.just(png_bytes()), st.binary(min_size=1, max_size=30)),
    ),
    st.builds(
        lambda d, f: AudioBlock(audio=d, format=f),
        st.binary(min_size=1, max_size=30),
        st.sampled_from(["wav", "mp3", "flac", None]),
    ),
    st.builds(lambda d: DocumentBlock(data=d, document_mimetype="application/pdf"), st.binary(min_size=1, max_size=30)),
    st.builds(lambda: DocumentBlock(url="https://example.com/x.pdf")),
    st.builds(lambda: VideoBlock(url="https://example.com/v.mp4")),
    st.builds(lambda t: ThinkingBlock(content=t), st.text(max_size=10)),
    st.builds(lambda n: ToolCallBlock(tool_name=n, tool_kwargs={"a": 1}, tool_call_id="c1"), _names),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(li_blocks, min_size=1, max_size=4), role=st.sampled_from(["user", "assistant", "system"]))
def test_llama_index_blocks_become_valid_requests_or_typed_errors(blocks, role):
    message = ChatMessage(role=role, blocks=blocks)
    try:
        sent = li_request(message)
    except E.InvalidRequestError as exc:
        assert "messages[0]" in str(exc) or "tool call" in str(exc)
        return
    media = [b for b in blocks if isinstance(b, ImageBlock | AudioBlock | DocumentBlock)]
    parts = sent["content"] if isinstance(sent["content"], list) else []
    assert len([p for p in parts if p["type"] != "text"]) == len(media)  # nothing dropped
    for part in parts:
        assert _check_part(part, True) is None, part
    calls = [b for b in blocks if isinstance(b, ToolCallBlock)]
    if role == "assistant":
        assert len(sent.get("tool_calls", [])) == len(calls)


@pytest.fixture(scope="module")
def shared_sim():
    with AIsaSimulator() as sim:
        yield sim


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=_lc_messages(lc_blocks))
def test_end_to_end_nothing_malformed_reaches_the_gateway(shared_sim, messages):
    llm = AIsaChatModel(model="gpt-4o", api_key=shared_sim.api_key, base_url=shared_sim.base_url, max_retries=0)
    before = len(shared_sim.requests)
    try:
        llm.invoke(messages)
    except (E.InvalidRequestError, ValueError):
        assert len(shared_sim.requests) == before  # refused before anything was sent
        return
    assert shared_sim.requests[-1].status == 200


# -- load ------------------------------------------------------------------------------------


async def test_500_concurrent_calls_with_20_percent_faults():
    with AIsaSimulator(seed=11) as sim, get_aisa_callback() as cb:
        sim.inject("*", Fault(status=503, probability=0.10))
        sim.inject("*", Fault(reset=True, probability=0.06))
        sim.inject("*", Fault(drop_after=3, probability=0.05))
        kw = {"api_key": sim.api_key, "base_url": sim.base_url}
        fallback = FallbackRunnable(["gpt-4.1", "claude-3-sonnet", "gemini-2.0-flash"], cooldown=0.2, **kw)
        router = TaskRouterRunnable({"default": ["gpt-4o", "qwen-plus", "gemini-1.5-flash"]}, cooldown=0.2, **kw)

        async def call(i: int):
            runnable = fallback if i % 2 else router
            try:
                return i, await runnable.ainvoke(f"request number {i} please answer it in full")
            except E.AIsaError as exc:
                return i, exc

        outcomes = await asyncio.gather(*(call(i) for i in range(500)))

    assert sorted(i for i, _ in outcomes) == list(range(500))  # every call ended, none lost or duplicated
    answers = {i: r for i, r in outcomes if isinstance(r, AIMessage)}
    errors = {i: r for i, r in outcomes if not isinstance(r, AIMessage)}
    assert all(isinstance(e, E.AIsaError) for e in errors.values())
    assert len(answers) > 400
    for i, reply in answers.items():
        assert f"request number {i} please" in reply.content  # each answer is its own request's
    delivered = [r for r in sim.chat_requests() if r.billed_cost is not None]
    prompts = [r.body["messages"][-1]["content"] for r in delivered]
    assert len(prompts) == len(set(prompts)) == len(answers)  # one billed answer per answered call
    assert cb.requests == len(delivered)
    assert cb.total_cost == pytest.approx(sim.total_billed)
    assert sum(1 for r in sim.chat_requests() if r.fault) > 50  # the faults really happened


def test_16_threads_share_one_client(sim):
    llm = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)
    clients, failures = set(), []

    def work(t: int) -> None:
        try:
            for k in range(10):
                reply = llm.invoke(f"thread {t} call {k}")
                assert f"thread {t} call {k}" in reply.content
                clients.add(id(get_client(llm._config)))
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(clients) == 1 and len(sim.chat_requests()) == 160
