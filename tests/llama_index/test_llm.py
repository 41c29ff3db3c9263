"""AIsaLLM against the simulator: configuration, calls, blocks, tools, agents, RAG, usage, errors."""

from __future__ import annotations

import base64

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
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
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from aisa_integrations import AIsaLLM
from aisa_integrations.core import errors as E
from aisa_integrations.testing import Fault, ScriptedReply, ScriptedToolCall
from tests._media import pdf_bytes, png_bytes, wav_bytes


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"It is 22C and sunny in {city}."


TOOLS = [FunctionTool.from_defaults(multiply), FunctionTool.from_defaults(get_weather)]


class Person(BaseModel):
    """A person."""

    name: str
    age: int


@pytest.fixture
def llm(sim):
    return AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url, max_retries=0)


def body(sim):
    return sim.chat_requests()[-1].body


def user(*blocks):
    return [ChatMessage(role="user", blocks=list(blocks))]


# -- configuration ---------------------------------------------------------------------------


def test_env_configuration_and_openai_env_ignored(sim_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-be-used")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    llm = AIsaLLM(model="qwen-max")
    assert llm.api_base == sim_env.base_url
    assert llm.complete("hi").text
    assert sim_env.chat_requests()


def test_base_url_alias(sim):
    llm = AIsaLLM(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url)
    assert llm.api_base == sim.base_url


def test_missing_key(sim):
    with pytest.raises(E.MissingAPIKeyError, match="AISA_API_KEY"):
        AIsaLLM(model="gpt-4o", api_base=sim.base_url)
    assert sim.requests == []


def test_key_never_serialised(sim):
    llm = AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url)
    for text in (repr(llm), str(llm), llm.to_json(), str(llm.to_dict())):
        assert sim.api_key not in text
    assert llm.complete("still works").text


def test_metadata_from_the_catalog(sim):
    meta = AIsaLLM(model="qwen-max", api_key="k").metadata
    assert (meta.context_window, meta.is_chat_model, meta.is_function_calling_model) == (32768, True, True)
    assert AIsaLLM(model="deepseek-r1", api_key="k").metadata.is_function_calling_model is False
    unknown = AIsaLLM(model="new-model", api_key="k", context_window=50_000, is_function_calling=True).metadata
    assert unknown.context_window == 50_000 and unknown.is_function_calling_model
    assert AIsaLLM(model="gpt-4o", api_key="k", max_tokens=300).metadata.num_output == 300


def test_parameters_and_additional_kwargs(sim):
    llm = AIsaLLM(
        model="qwen-max",
        api_key=sim.api_key,
        api_base=sim.base_url,
        temperature=0.3,
        max_tokens=99,
        additional_kwargs={"enable_search": True, "top_p": 0.5},
    )
    llm.complete("hi")
    sent = body(sim)
    assert (sent["temperature"], sent["max_tokens"], sent["top_p"], sent["enable_search"]) == (0.3, 99, 0.5, True)


def test_injected_http_client(sim):
    import httpx2

    seen = []
    client = httpx2.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url, http_client=client).complete("hi")
    assert seen == ["/v1/chat/completions"]


# -- calls, callbacks, usage -----------------------------------------------------------------


def test_all_sync_calls(llm):
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content
    assert llm.complete("hi").text
    deltas = [r.delta for r in llm.stream_chat([ChatMessage(role="user", content="hello there")])]
    assert len(deltas) > 3 and "hello there" in "".join(d for d in deltas if d)
    pieces = list(llm.stream_complete("hello again"))
    assert "hello again" in pieces[-1].text


async def test_all_async_calls(llm):
    assert (await llm.achat([ChatMessage(role="user", content="hi")])).message.content
    assert (await llm.acomplete("hi")).text
    responses = [r async for r in await llm.astream_chat([ChatMessage(role="user", content="async hi")])]
    assert "async hi" in responses[-1].message.content
    pieces = [r async for r in await llm.astream_complete("async again")]
    assert "async again" in pieces[-1].text


def test_usage_and_cost_in_raw_and_additional_kwargs(llm, sim):
    response = llm.chat([ChatMessage(role="user", content="hi")])
    assert response.raw["usage"]["total_tokens"] > 0  # raw is the completion, as a dict
    assert response.additional_kwargs["cost"] == pytest.approx(sim.total_billed)
    assert response.additional_kwargs["credits_remaining"] == pytest.approx(sim.credits)
    streamed = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
    last = streamed[-1]
    assert last.raw["usage"] is not None and last.additional_kwargs["total_tokens"] > 0
    assert body(sim)["stream_options"] == {"include_usage": True}


def test_token_counting_handler_counts_streamed_calls(sim):
    counter = TokenCountingHandler()
    llm = AIsaLLM(
        model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url, callback_manager=CallbackManager([counter])
    )
    list(llm.stream_chat([ChatMessage(role="user", content="count me")]))
    llm.chat([ChatMessage(role="user", content="and me")])
    billed = [r for r in sim.chat_requests()]
    assert counter.prompt_llm_token_count == sum(r.usage["prompt_tokens"] for r in billed)
    assert counter.completion_llm_token_count == sum(r.usage["completion_tokens"] for r in billed)


def test_instrumentation_events_fire(llm):
    seen = []

    class Recorder(BaseEventHandler):
        def handle(self, event, **kwargs):
            seen.append(event.class_name())

    dispatcher = get_dispatcher()
    handler = Recorder()
    dispatcher.add_event_handler(handler)
    try:
        llm.chat([ChatMessage(role="user", content="hi")])
        chat_events = list(seen)
        seen.clear()
        list(llm.stream_complete("hi"))
    finally:
        dispatcher.event_handlers.remove(handler)
    assert chat_events == ["LLMChatStartEvent", "LLMChatEndEvent"]
    assert seen[0] == "LLMCompletionStartEvent" and seen[-1] == "LLMCompletionEndEvent"
    assert "LLMCompletionInProgressEvent" in seen
    assert not any(e.startswith("LLMChat") for e in seen)  # one call, one event path: nothing counted twice


# -- blocks ----------------------------------------------------------------------------------


def test_image_blocks(llm, sim, tmp_path):
    png = png_bytes()
    path = tmp_path / "pic.png"
    path.write_bytes(png)
    response = llm.chat(
        user(
            TextBlock(text="What is this?"),
            ImageBlock(url="https://example.com/cat.jpg", detail="high"),
            ImageBlock(path=path),
            ImageBlock(image=png, image_mimetype="image/png"),
        )
    )
    assert response.message.content.startswith("I see 3 images")
    parts = body(sim)["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
    expected = "data:image/png;base64," + base64.b64encode(png).decode()
    assert parts[2]["image_url"]["url"] == expected == parts[3]["image_url"]["url"]


def test_document_and_audio_blocks(llm, sim):
    llm.chat(
        user(
            TextBlock(text="Summarise"),
            DocumentBlock(data=pdf_bytes(), title="report"),
            AudioBlock(audio=wav_bytes(), format="wav"),
        )
    )
    parts = body(sim)["messages"][0]["content"]
    assert parts[1]["type"] == "file" and parts[1]["file"]["filename"] == "report.pdf"
    assert parts[1]["file"]["file_data"] == "data:application/pdf;base64," + base64.b64encode(pdf_bytes()).decode()
    assert parts[2] == {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(wav_bytes()).decode(), "format": "wav"},
    }


def test_unsupported_blocks_raise_before_sending(llm, sim):
    with pytest.raises(E.InvalidRequestError, match="VideoBlock"):
        llm.chat(user(TextBlock(text="watch"), VideoBlock(url="https://example.com/v.mp4")))
    with pytest.raises(E.InvalidRequestError, match="'wav' or 'mp3'"):
        llm.chat(user(AudioBlock(audio=wav_bytes(), format="flac")))
    with pytest.raises(E.InvalidRequestError, match="by URL"):
        llm.chat(user(DocumentBlock(url="https://example.com/x.pdf")))
    assert sim.requests == []


def test_thinking_and_tool_call_blocks_are_sent_back(llm, sim):
    history = [
        ChatMessage(role="user", content="Multiply 2 by 3"),
        ChatMessage(
            role="assistant",
            blocks=[
                ThinkingBlock(content="I should multiply."),
                ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 2, "b": 3}),
            ],
        ),
        ChatMessage(role="tool", content="6", additional_kwargs={"tool_call_id": "c1"}),
    ]
    response = llm.chat(history)
    sent = body(sim)["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "I should multiply.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 2, "b": 3}'}}
        ],
    }
    assert sent[2] == {"role": "tool", "content": "6", "tool_call_id": "c1"}
    assert "6" in response.message.content


def test_reasoning_comes_back_as_a_thinking_block(sim):
    llm = AIsaLLM(model="deepseek-r1", api_key=sim.api_key, api_base=sim.base_url)
    response = llm.chat([ChatMessage(role="user", content="Why?")])
    assert isinstance(response.message.blocks[0], ThinkingBlock)
    streamed = list(llm.stream_chat([ChatMessage(role="user", content="Why?")]))
    assert any(r.additional_kwargs.get("thinking_delta") for r in streamed)
    assert streamed[-1].message.blocks[0].content == response.message.blocks[0].content


# -- tools -----------------------------------------------------------------------------------


def test_prepare_chat_with_tools(llm):
    prepared = llm._prepare_chat_with_tools(TOOLS, user_msg="hi", tool_required=True, strict=True)
    assert prepared["tool_choice"] == "required" and prepared["parallel_tool_calls"] is False
    assert all(t["function"]["strict"] for t in prepared["tools"])
    named = llm._prepare_chat_with_tools(TOOLS, user_msg="hi", tool_choice="multiply", allow_parallel_tool_calls=True)
    assert named["tool_choice"] == {"type": "function", "function": {"name": "multiply"}}
    with pytest.raises(E.InvalidRequestError, match="names no bound tool"):
        llm._prepare_chat_with_tools(TOOLS, tool_choice="divide")
    bad = FunctionTool.from_defaults(multiply, name="multiply numbers!")
    with pytest.raises(E.InvalidRequestError, match="invalid"):
        llm._prepare_chat_with_tools([bad])


def test_chat_with_tools_and_streamed_tool_calls(llm):
    prompt = "Multiply 6 by 7 and get the weather in Paris"
    response = llm.chat_with_tools(TOOLS, user_msg=prompt, allow_parallel_tool_calls=True)
    calls = llm.get_tool_calls_from_response(response)
    assert {(c.tool_name, tuple(sorted(c.tool_kwargs.items()))) for c in calls} == {
        ("multiply", (("a", 6), ("b", 7))),
        ("get_weather", (("city", "Paris"),)),
    }
    streamed = list(llm.stream_chat_with_tools(TOOLS, user_msg=prompt, allow_parallel_tool_calls=True))
    final_calls = llm.get_tool_calls_from_response(streamed[-1])
    assert [c.tool_id for c in final_calls] == [c.tool_id for c in final_calls if c.tool_id.count("call_") == 1]
    assert {c.tool_name for c in final_calls} == {"multiply", "get_weather"}
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(llm.chat([ChatMessage(role="user", content="hi")]))


def test_malformed_tool_arguments_do_not_crash(llm, sim):
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("multiply", '{"a": 2, "b"')]))
    response = llm.chat_with_tools(TOOLS, user_msg="go")
    call = llm.get_tool_calls_from_response(response)[0]
    assert call.tool_name == "multiply" and call.tool_kwargs == {}  # nothing complete to pass on
    assert response.message.blocks[0].tool_kwargs == '{"a": 2, "b"'  # the raw text is kept


def test_predict_and_call(llm):
    out = llm.predict_and_call(TOOLS, user_msg="Multiply 6 by 7")
    assert str(out) == "42"


async def test_function_agent_tool_loop(llm, sim):
    agent = FunctionAgent(tools=TOOLS, llm=llm, system_prompt="Use the tools.")
    result = await agent.run("Multiply 6 by 7 and get the weather in Paris")
    assert "42" in str(result) and "Paris" in str(result)
    assert len(sim.chat_requests()) == 2


async def test_function_agent_streaming(llm, sim):
    from llama_index.core.agent.workflow import AgentStream, ToolCallResult

    agent = FunctionAgent(tools=TOOLS, llm=llm, streaming=True)
    handler = agent.run("Multiply 6 by 7 and get the weather in Paris")
    deltas, results = [], []
    async for event in handler.stream_events():
        if isinstance(event, AgentStream):
            deltas.append(event.delta)
        elif isinstance(event, ToolCallResult):
            results.append(event.tool_name)
    final = await handler
    assert sorted(results) == ["get_weather", "multiply"] and "42" in str(final) and len(deltas) > 5


async def test_agent_workflow(llm):
    workflow = AgentWorkflow.from_tools_or_functions([multiply, get_weather], llm=llm)
    result = await workflow.run(user_msg="Multiply 6 by 7")
    assert "42" in str(result)


# -- structured output -----------------------------------------------------------------------


PROMPT = PromptTemplate("Extract the person: {text}")


def test_structured_predict_uses_json_schema_where_supported(llm, sim):
    person = llm.structured_predict(Person, PROMPT, text="Ada is 36")
    assert person == Person(name="Ada", age=36)
    assert body(sim)["response_format"]["type"] == "json_schema" and "tools" not in body(sim)


def test_structured_predict_uses_function_calling_otherwise(sim):
    claude = AIsaLLM(model="claude-3-opus", api_key=sim.api_key, api_base=sim.base_url)
    assert claude.structured_predict(Person, PROMPT, text="Ada is 36") == Person(name="Ada", age=36)
    assert "response_format" not in body(sim) and body(sim)["tools"][0]["function"]["name"] == "Person"


async def test_async_and_streaming_structured_output(llm):
    assert await llm.astructured_predict(Person, PROMPT, text="Ada is 36") == Person(name="Ada", age=36)
    partials = list(llm.stream_structured_predict(Person, PROMPT, text="Ada is 36"))
    assert partials and partials[-1].name == "Ada" and partials[-1].age == 36


def test_as_structured_llm(llm):
    structured = llm.as_structured_llm(Person)
    response = structured.chat([ChatMessage(role="user", content="Ada is 36")])
    assert response.raw == Person(name="Ada", age=36)


# -- RAG -------------------------------------------------------------------------------------


DOCS = [
    Document(text="AIsa routes requests to GPT, Claude, Gemini, Qwen, DeepSeek and Grok."),
    Document(text="Every AIsa response reports usage.cost and credits_remaining."),
]


def test_query_engine(llm, sim):
    index = VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))
    response = index.as_query_engine(llm=llm).query("Which models does AIsa route to?")
    assert str(response).startswith("Simulated reply from gpt-4o")
    sent = " ".join(str(m["content"]) for m in body(sim)["messages"])
    assert "Which models does AIsa route to?" in sent and "Context information" in sent
    streaming = index.as_query_engine(llm=llm, streaming=True).query("What does each response report?")
    text = "".join(streaming.response_gen)
    assert text.startswith("Simulated reply from gpt-4o")


def test_settings_llm(llm, sim, monkeypatch):
    monkeypatch.setattr(Settings, "_llm", None)
    Settings.llm = llm
    index = VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))
    assert str(index.as_query_engine().query("cost?"))
    assert sim.chat_requests()


# -- errors ----------------------------------------------------------------------------------


def test_errors_are_typed(llm, sim):
    sim.inject("gpt-4o", Fault(status=429, retry_after=3))
    with pytest.raises(E.RateLimitError) as info:
        llm.complete("hi")
    assert info.value.retry_after == 3
    sim.clear_faults()
    sim.inject("gpt-4o", Fault(drop_after=4))
    with pytest.raises(E.StreamInterruptedError):
        list(llm.stream_complete("hello there"))
