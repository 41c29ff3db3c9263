"""Gemini's native format through both adapters, against the simulator over real sockets: text, an
image, a tool call and its result, JSON output, streaming and the one-chunk fallback, errors, and a
fallback from a native-format model to a chat-completions one."""

from __future__ import annotations

import base64
import json

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from pydantic import BaseModel

from aisa_integrations import (
    AIsaChatModel,
    AIsaLLM,
    AuthenticationError,
    ConfigurationError,
    FallbackPolicy,
    ModelNotFoundError,
    RateLimitError,
)
from aisa_integrations.core.transport import forget_native_streaming
from aisa_integrations.testing import AIsaSimulator, Fault, ScriptedReply, ScriptedToolCall

from ._media import png_bytes

PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()

GEMINI = "gemini-2.0-flash"
GENERATE = f"/v1/models/{GEMINI}:generateContent"
STREAM = f"/v1/models/{GEMINI}:streamGenerateContent"


class Person(BaseModel):
    name: str
    age: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.fixture(autouse=True)
def _fresh_streaming_memory():
    forget_native_streaming()  # simulator ports are reused between tests
    yield
    forget_native_streaming()


@pytest.fixture
def chat(sim):
    return AIsaChatModel(model=GEMINI, api="gemini-native", api_key=sim.api_key, base_url=sim.base_url)


@pytest.fixture
def llm(sim):
    return AIsaLLM(model=GEMINI, api="gemini-native", api_key=sim.api_key, api_base=sim.base_url)


def _paths(sim) -> list[str]:
    return [r.path.split("?")[0] for r in sim.chat_requests()]


# -- LangChain ----------------------------------------------------------------------------------


def test_langchain_text_and_image_go_out_as_contents_and_parts(chat, sim):
    answer = chat.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PNG_DATA_URL}},
                ]
            )
        ]
    )
    assert answer.content and answer.usage_metadata["total_tokens"] > 0
    assert answer.response_metadata["cost"] > 0  # the gateway's cost, read from usageMetadata
    body = sim.chat_requests()[-1].body
    assert _paths(sim) == [GENERATE]
    parts = body["contents"][0]["parts"]
    assert parts[0] == {"text": "What is this?"} and parts[1]["inlineData"]["mimeType"] == "image/png"


def test_langchain_system_and_sampling_become_native_fields(chat, sim):
    chat.invoke([("system", "Be brief."), ("human", "hi")], temperature=0.2, max_tokens=50, stop=["END"])
    body = sim.chat_requests()[-1].body
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50, "stopSequences": ["END"]}


def test_langchain_tool_call_and_result_round_trip(chat, sim):
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"})]), model=GEMINI)
    bound = chat.bind_tools([get_weather])
    question = HumanMessage("Weather in Oslo?")
    call = bound.invoke([question])
    assert call.tool_calls[0]["name"] == "get_weather" and call.tool_calls[0]["args"] == {"city": "Oslo"}
    declared = sim.chat_requests()[-1].body["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather" and "city" in declared["parameters"]["properties"]
    result = ToolMessage(get_weather("Oslo"), tool_call_id=call.tool_calls[0]["id"])
    final = bound.invoke([question, call, result])
    assert final.content
    contents = sim.chat_requests()[-1].body["contents"]
    assert contents[1]["role"] == "model" and contents[1]["parts"][0]["functionCall"]["name"] == "get_weather"
    answered = contents[2]["parts"][0]["functionResponse"]
    assert answered["name"] == "get_weather" and answered["response"] == {"result": "sunny in Oslo"}


def test_langchain_json_output(chat, sim):
    person = chat.with_structured_output(Person, method="json_schema").invoke("Ada is 36")
    assert isinstance(person, Person)
    config = sim.chat_requests()[-1].body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "name" in config["responseSchema"]["properties"]


def test_langchain_streams_natively_with_usage(chat, sim):
    chunks = list(chat.stream("Tell me a story"))
    assert _paths(sim) == [STREAM]
    assert "".join(c.content for c in chunks) and sum(1 for c in chunks if c.usage_metadata) == 1


def test_a_gateway_without_native_streaming_streams_one_answer():
    with AIsaSimulator(native_streaming=False) as sim:
        chat = AIsaChatModel(model=GEMINI, api="gemini-native", api_key=sim.api_key, base_url=sim.base_url)
        first = "".join(c.content for c in chat.stream("one"))
        second = "".join(c.content for c in chat.stream("two"))
        assert first and second
        assert _paths(sim) == [STREAM, GENERATE, GENERATE]  # learnt once, then straight to :generateContent


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (404, ModelNotFoundError), (429, RateLimitError)]
)
def test_langchain_native_errors_are_typed(chat, sim, status, error):
    sim.inject(GEMINI, Fault(status=status, times=5))
    with pytest.raises(error):
        chat.invoke("hi")


def test_a_native_model_falls_back_to_a_chat_completions_model(sim):
    sim.inject(GEMINI, Fault(status=503))
    model = AIsaChatModel(
        model=GEMINI,
        api="gemini-native",
        fallback_models=["gpt-4o-mini"],
        fallback_policy=FallbackPolicy(server_retries=0),
        api_key=sim.api_key,
        base_url=sim.base_url,
    )
    answer = model.invoke("hi")
    assert answer.response_metadata["model_name"] == "gpt-4o-mini"
    # Under a fallback policy with a first-token timeout, a call is streamed under the hood (that is how
    # a silent model is caught), so the native attempt goes to :streamGenerateContent.
    assert _paths(sim) == [STREAM, "/v1/chat/completions"]
    streamed = "".join(c.content for c in model.stream("again"))
    assert streamed and _paths(sim)[-2:] == [STREAM, "/v1/chat/completions"]


def test_a_chat_model_falls_back_to_a_native_member(sim):
    sim.inject("gpt-4o-mini", Fault(status=503))
    native = AIsaChatModel(model=GEMINI, api="gemini-native", api_key=sim.api_key, base_url=sim.base_url)
    model = AIsaChatModel(
        model="gpt-4o-mini",
        fallback_models=[native],
        fallback_policy=FallbackPolicy(server_retries=0),
        api_key=sim.api_key,
        base_url=sim.base_url,
    )
    assert model.invoke("hi").response_metadata["model_name"] == GEMINI
    assert _paths(sim) == ["/v1/chat/completions", STREAM]


def test_native_options_pass_through_and_misuse_is_caught(sim):
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    chat = AIsaChatModel(
        model=GEMINI,
        api="gemini-native",
        extra_body={"gemini": {"safetySettings": safety, "generationConfig": {"topK": 5}}},
        api_key=sim.api_key,
        base_url=sim.base_url,
    )
    chat.invoke("hi")
    body = sim.chat_requests()[-1].body
    assert body["safetySettings"] == safety and body["generationConfig"]["topK"] == 5
    with pytest.raises(ConfigurationError, match="Gemini"):
        AIsaChatModel(model="gpt-4o", api="gemini-native", api_key="k")


# -- LlamaIndex -------------------------------------------------------------------------------


def test_llama_index_text_image_and_stream(llm, sim):
    assert llm.complete("hi").text
    message = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"), ImageBlock(url=PNG_DATA_URL)])
    response = llm.chat([message])
    assert response.message.content and response.additional_kwargs["cost"] > 0
    assert "inlineData" in sim.chat_requests()[-1].body["contents"][0]["parts"][1]
    streamed = "".join(r.delta or "" for r in llm.stream_complete("story"))
    assert streamed and _paths(sim) == [GENERATE, GENERATE, STREAM]


def test_llama_index_tool_call_and_structured_output(llm, sim):
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.tools import FunctionTool

    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"})]), model=GEMINI)
    tool = FunctionTool.from_defaults(fn=get_weather)
    response = llm.chat_with_tools([tool], user_msg="Weather in Oslo?")
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert calls[0].tool_name == "get_weather" and calls[0].tool_kwargs == {"city": "Oslo"}
    person = llm.structured_predict(Person, PromptTemplate("Extract: {text}"), text="Ada is 36")
    assert isinstance(person, Person)
    assert json.dumps(sim.chat_requests()[-1].body["generationConfig"]).count("responseSchema") == 1


async def test_llama_index_async_and_errors(llm, sim):
    assert (await llm.acomplete("hi")).text
    chunks = [c async for c in await llm.astream_chat([ChatMessage(role="user", content="story")])]
    assert chunks and _paths(sim) == [GENERATE, STREAM]
    sim.inject(GEMINI, Fault(status=404, times=1))
    with pytest.raises(ModelNotFoundError):
        await llm.acomplete("hi")


def test_the_one_chunk_fallback_is_not_held_to_the_first_token_limit():
    """Without native streaming an answer comes whole: a managed call (streamed under the hood, with a
    first-token limit) waits for it under the request's own timeout instead of failing over."""
    with AIsaSimulator(native_streaming=False) as sim:
        sim.set_latency(0.8, model=GEMINI)
        model = AIsaChatModel(
            model=GEMINI,
            api="gemini-native",
            fallback_models=["gpt-4o-mini"],
            first_token_timeout=0.3,
            api_key=sim.api_key,
            base_url=sim.base_url,
        )
        assert model.invoke("hi").response_metadata["model_name"] == GEMINI
        assert model.invoke("again").response_metadata["model_name"] == GEMINI  # straight to :generateContent
