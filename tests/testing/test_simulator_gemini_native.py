"""Gemini's native format end to end: the real transport and engine, the simulator over real sockets."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from aisa_integrations.core import errors as E
from aisa_integrations.core import transport
from aisa_integrations.core.config import ClientConfig
from aisa_integrations.core.costs import CostTracker, tracking
from aisa_integrations.core.engine import Engine, ModelTarget, make_plan
from aisa_integrations.core.fallback import AllModelsFailedError, FallbackPolicy
from aisa_integrations.core.stream import ChunkAccumulator
from aisa_integrations.testing import AIsaSimulator, Fault, ScriptedReply, ScriptedToolCall

GEMINI = "gemini-2.0-flash"
HELLO = {
    "model": GEMINI,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def post_native(config, request, **options):
    return transport.post(config, request, api="gemini-native", **options)


async def apost_native(config, request, **options):
    return await transport.apost(config, request, api="gemini-native", **options)


@pytest.fixture(autouse=True)
def _fresh_streaming_memory():
    """Which base URLs lack the streaming method is remembered process-wide: a later simulator may get the port."""
    transport.forget_native_streaming()
    yield
    transport.forget_native_streaming()


def config(sim: AIsaSimulator, **kw) -> ClientConfig:
    return ClientConfig.resolve(api_key=kw.pop("api_key", sim.api_key), base_url=sim.base_url, max_retries=0, **kw)


def added_up(chunks) -> dict:
    accumulator = ChunkAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.completion()


def post_raw(sim: AIsaSimulator, path: str, body: dict, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        sim.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key or sim.api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- the transport ----------------------------------------------------------------------------


def test_a_non_streamed_answer(sim):
    completion = post_native(config(sim), HELLO)
    assert completion["object"] == "chat.completion" and completion["model"] == GEMINI
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "stop" and "Hello" in choice["message"]["content"]
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["cost"] > 0 and usage["credits_remaining"] == pytest.approx(sim.initial_credits - usage["cost"])
    assert completion["_request_id"].startswith("req_sim_")
    [logged] = sim.chat_requests(GEMINI)
    assert logged.path == f"/v1/models/{GEMINI}:generateContent" and logged.api == "gemini-native"
    assert logged.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }
    assert logged.billed_cost == usage["cost"]


def test_a_streamed_answer(sim):
    stream = transport.open_generate_content_stream(config(sim), HELLO)
    chunks = list(stream)
    assert stream.request_id and "Hello" in stream.partial_text
    assert sum(1 for c in chunks if c.get("usage")) == 1  # the running counts on every event are not reported
    completion = added_up(chunks)
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["choices"][0]["message"]["content"] == stream.partial_text
    assert completion["usage"]["cost"] == sim.chat_requests()[0].billed_cost
    [logged] = sim.chat_requests()
    assert logged.path.endswith(":streamGenerateContent") and logged.stream


def test_async_answers(sim):
    async def run():
        completion = await apost_native(config(sim), HELLO)
        stream = await transport.aopen_generate_content_stream(config(sim), HELLO)
        chunks = [chunk async for chunk in stream]
        return completion, chunks

    completion, chunks = asyncio.run(run())
    assert completion["choices"][0]["message"]["content"] == added_up(chunks)["choices"][0]["message"]["content"]
    assert [r.path.rsplit(":", 1)[1] for r in sim.chat_requests()] == ["generateContent", "streamGenerateContent"]


def test_a_tool_call_round_trip_keeps_the_thought_signature(sim):
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]))
    request = {"model": GEMINI, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER]}
    first = post_native(config(sim), request)
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    call = message["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert call["extra_content"]["google"]["thought_signature"].startswith("sig-")
    tool_result = {"role": "tool", "tool_call_id": call["id"], "content": "22C and sunny"}
    second = post_native(config(sim), {**request, "messages": [*request["messages"], message, tool_result]})
    assert second["choices"][0]["message"]["content"] == "Based on the tool results: 22C and sunny."
    sent = sim.chat_requests()[1].body
    assert sent["contents"][1]["parts"][0]["thoughtSignature"] == call["extra_content"]["google"]["thought_signature"]
    assert sent["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"result": "22C and sunny"}}}
    ]
    declared = sent["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "additionalProperties" not in declared  # the simulator refuses it, as Gemini does


def test_a_streamed_tool_call(sim):
    sim.script(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Rome"})]))
    request = {"model": GEMINI, "messages": [{"role": "user", "content": "Weather in Rome?"}], "tools": [WEATHER]}
    completion = added_up(transport.open_generate_content_stream(config(sim), request))
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}


def test_scripted_limits_and_json(sim):
    sim.script(ScriptedReply(content="cut short", finish_reason="length"))
    cut = post_native(config(sim), HELLO)
    assert cut["choices"][0]["finish_reason"] == "length"
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    request = {
        **HELLO,
        "response_format": {"type": "json_schema", "json_schema": {"name": "Person", "schema": schema}},
        "max_tokens": 50,
    }
    person = post_native(config(sim), request)
    assert set(json.loads(person["choices"][0]["message"]["content"])) == {"name"}
    generation = sim.chat_requests()[-1].body["generationConfig"]
    assert generation == {"maxOutputTokens": 50, "responseMimeType": "application/json", "responseSchema": schema}


def test_streaming_falls_back_to_generate_content_where_the_gateway_lacks_it():
    with AIsaSimulator(native_streaming=False) as sim:
        first = list(transport.open_generate_content_stream(config(sim), HELLO))
        assert [r.status for r in sim.chat_requests()] == [404, 200]
        assert not transport.native_streaming_offered(sim.base_url)
        second = transport.open_generate_content_stream(config(sim), HELLO)
        chunks = list(second)
        assert second.request_id and "Hello" in second.partial_text
        # Remembered: the later stream went straight to :generateContent.
        paths = [r.path.rsplit(":", 1)[1] for r in sim.chat_requests()]
        assert paths == ["streamGenerateContent", "generateContent", "generateContent"]
        for answer in (first, chunks):
            completion = added_up(answer)
            assert completion["choices"][0]["finish_reason"] == "stop" and completion["usage"]["cost"] > 0


def test_async_streaming_falls_back_too():
    async def run(sim):
        stream = await transport.aopen_generate_content_stream(config(sim), HELLO)
        return [chunk async for chunk in stream]

    with AIsaSimulator(native_streaming=False) as sim:
        completion = added_up(asyncio.run(run(sim)))
        assert completion["choices"][0]["finish_reason"] == "stop"
        assert [r.status for r in sim.chat_requests()] == [404, 200]


def test_an_unknown_model_is_not_mistaken_for_a_gateway_without_streaming(sim):
    with pytest.raises(E.ModelNotFoundError):
        list(transport.open_generate_content_stream(config(sim), {**HELLO, "model": "gemini-9-ultra"}))
    assert transport.native_streaming_offered(sim.base_url)


# -- errors -----------------------------------------------------------------------------------


def test_a_wrong_key_is_an_authentication_error_in_googles_format(sim):
    with pytest.raises(E.AuthenticationError) as caught:
        post_native(config(sim, api_key="wrong"), HELLO)
    assert caught.value.status_code == 401 and caught.value.code == "UNAUTHENTICATED"
    assert "wrong" not in str(caught.value)


def test_a_model_outside_the_gemini_family_is_not_found(sim):
    with pytest.raises(E.ModelNotFoundError) as caught:
        post_native(config(sim), {**HELLO, "model": "gpt-4o-mini"})
    assert caught.value.status_code == 404 and caught.value.code == "NOT_FOUND"


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (Fault(status=429, retry_after=3), E.RateLimitError),
        (Fault(status=503), E.ServerError),
        (Fault(status=402), E.InsufficientCreditsError),
        (Fault(status=403), E.PermissionDeniedError),
        (Fault(status=400, code="context_length_exceeded", message="Too long."), E.ContextLengthExceededError),
        (Fault(error_in_body=True, code="UNAVAILABLE"), E.ServerError),
        (Fault(malformed_body=True), E.MalformedResponseError),
        (Fault(raw_body="<html>proxy</html>", content_type="text/html", status=200), E.MalformedResponseError),
    ],
)
def test_faults_are_typed(sim, fault, cls):
    sim.inject(GEMINI, fault)
    with pytest.raises(cls) as caught:
        post_native(config(sim), HELLO)
    if fault.retry_after is not None:
        assert caught.value.retry_after == 3


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (Fault(status=503), E.ServerError),
        (Fault(status=429), E.RateLimitError),
        (Fault(drop_after=3), E.StreamInterruptedError),
        (Fault(malformed_at=2), E.MalformedResponseError),
        (Fault(error_event_at=2, code="INTERNAL"), E.ServerError),
        (Fault(missing_done=True), E.StreamInterruptedError),
    ],
)
def test_stream_faults_are_typed(sim, fault, cls):
    sim.inject(GEMINI, fault)
    stream = None
    with pytest.raises(cls) as caught:
        stream = transport.open_generate_content_stream(config(sim), HELLO)
        list(stream)
    if stream is not None and fault.status is None and fault.error_event_at is None:
        assert caught.value.partial_text and stream.partial_text.startswith(caught.value.partial_text)


def test_the_simulator_refuses_what_gemini_refuses(sim):
    path = f"/models/{GEMINI}:generateContent"
    cases = [
        ({}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "empty text parameter"),
        (
            {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "function response turn comes immediately after a function call turn",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "x"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f"}}, {"functionCall": {"name": "f"}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
                ]
            },
            "number of function response parts",
        ),
        (
            {
                "contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "tools": [{"functionDeclarations": [{"name": "f", "parameters": WEATHER["function"]["parameters"]}]}],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"max_tokens": 5}},
            "max_tokens",
        ),
        ({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "messages": []}, 'Unknown name "messages"'),
    ]
    for body, problem in cases:
        status, answer = post_raw(sim, path, body)
        assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT", body
        assert answer["error"]["code"] == 400 and problem in answer["error"]["message"], answer


def test_the_native_paths_answer_in_googles_error_format(sim):
    status, answer = post_raw(sim, f"/models/{GEMINI}:generateContent", {"contents": []}, key="wrong")
    assert status == 401 and answer["error"]["status"] == "UNAUTHENTICATED" and answer["error"]["code"] == 401
    status, answer = post_raw(sim, "/models/claude-3-sonnet:generateContent", HELLO)
    assert status == 404 and answer["error"]["status"] == "NOT_FOUND"
    with AIsaSimulator(native_streaming=False) as other:
        status, answer = post_raw(other, f"/models/{GEMINI}:streamGenerateContent?alt=sse", {"contents": []})
        assert status == 404 and answer["error"]["status"] == "NOT_FOUND"


# -- the engine -------------------------------------------------------------------------------


def test_a_plain_native_call_through_the_engine_is_tracked(sim):
    engine = Engine(make_plan(config(sim), model=GEMINI, api="gemini-native"))
    tracker = CostTracker()
    with tracking(tracker):
        outcome = engine.complete(engine.prepare({"messages": HELLO["messages"]}))
        chunks = list(engine.stream(engine.prepare({"messages": HELLO["messages"]})))
    assert outcome.completion["choices"][0]["finish_reason"] == "stop"
    assert added_up(chunks)["choices"][0]["finish_reason"] == "stop"
    assert tracker.requests == 2 and tracker.total_cost == pytest.approx(sim.total_billed)
    assert [r.api for r in sim.chat_requests()] == ["gemini-native", "gemini-native"]


def test_a_native_target_fails_over_to_a_chat_completions_target(sim):
    sim.inject(GEMINI, Fault(status=503))
    plan = make_plan(
        config(sim),
        model=ModelTarget(GEMINI, api="gemini-native"),
        fallback_models=[ModelTarget("gpt-4o-mini")],
        policy=FallbackPolicy(circuit_breaker=False),
    )
    engine = Engine(plan, sleep=lambda _: None)
    outcome = engine.complete(engine.prepare({"messages": HELLO["messages"], "temperature": 0.2}))
    assert outcome.completion["model"] == "gpt-4o-mini" and outcome.report.fallback_index == 1
    assert outcome.report.attempts[0].status == 503 and outcome.report.attempts[-1].outcome == "ok"
    logged = sim.chat_requests()
    assert {r.api for r in logged if r.model == GEMINI} == {"gemini-native"}
    chat = logged[-1]
    assert chat.path == "/v1/chat/completions" and chat.body["model"] == "gpt-4o-mini"
    assert chat.body["messages"] == HELLO["messages"] and chat.body["temperature"] == 0.2


def test_a_streamed_native_target_fails_over_to_chat_and_back(sim):
    sim.inject(GEMINI, Fault(status=503))
    engine = Engine(
        make_plan(config(sim), model=GEMINI, api="gemini-native", fallback_models=["gpt-4o-mini"]),
        sleep=lambda _: None,
    )
    stream = engine.stream(engine.prepare({"messages": HELLO["messages"]}))
    completion = added_up(stream)
    assert completion["model"] == "gpt-4o-mini" and stream.report.served_model == "gpt-4o-mini"
    sim.clear_faults()
    # The other way round: a chat-completions primary that fails, a native member that answers.
    sim.inject("gpt-4o-mini", Fault(status=503))
    engine = Engine(
        make_plan(config(sim), model="gpt-4o-mini", fallback_models=[ModelTarget(GEMINI, api="gemini-native")]),
        sleep=lambda _: None,
    )
    outcome = asyncio.run(engine.acomplete(engine.prepare({"messages": HELLO["messages"]})))
    assert outcome.completion["model"] == GEMINI and sim.chat_requests()[-1].api == "gemini-native"


def test_all_members_failing_lists_both_formats(sim):
    sim.inject("*", Fault(status=503))
    engine = Engine(
        make_plan(config(sim), model=GEMINI, api="gemini-native", fallback_models=["gpt-4o-mini"]),
        sleep=lambda _: None,
    )
    with pytest.raises(AllModelsFailedError):
        engine.complete(engine.prepare({"messages": HELLO["messages"]}))
    assert {r.api for r in sim.chat_requests()} == {"gemini-native", "chat"}


def test_untranslatable_input_is_refused_before_anything_is_sent(sim):
    engine = Engine(make_plan(config(sim), model=GEMINI, api="gemini-native"))
    with pytest.raises(E.InvalidRequestError, match="logit_bias"):
        engine.complete(engine.prepare({"messages": HELLO["messages"], "logit_bias": {"1": 5}}))
    assert sim.chat_requests() == []


def test_gemini_native_is_for_gemini_models_only(sim):
    with pytest.raises(E.ConfigurationError, match="api='chat'"):
        make_plan(config(sim), model="gpt-4o-mini", api="gemini-native")
    with pytest.raises(E.ConfigurationError, match="claude"):
        make_plan(config(sim), model=GEMINI, fallback_models=[ModelTarget("claude-3-sonnet", api="gemini-native")])
    with pytest.raises(E.ConfigurationError):
        ModelTarget(GEMINI, api="vertex")  # type: ignore[arg-type]


def test_a_call_naming_another_model_keeps_the_format_it_can_take(sim):
    engine = Engine(make_plan(config(sim), model=GEMINI, api="gemini-native"))
    engine.complete(engine.prepare({"messages": HELLO["messages"], "model": "gemini-1.5-flash"}, explicit=["model"]))
    engine.complete(engine.prepare({"messages": HELLO["messages"], "model": "gpt-4o-mini"}, explicit=["model"]))
    assert [(r.model, r.api) for r in sim.chat_requests()] == [
        ("gemini-1.5-flash", "gemini-native"),
        ("gpt-4o-mini", "chat"),
    ]


def test_a_silent_native_target_fails_over_at_the_first_token_timeout(sim):
    sim.inject(GEMINI, Fault(delay=2.0))
    engine = Engine(
        make_plan(
            config(sim), model=GEMINI, api="gemini-native", fallback_models=["gpt-4o-mini"], first_token_timeout=0.3
        )
    )
    outcome = engine.complete(engine.prepare({"messages": HELLO["messages"]}))
    assert outcome.completion["model"] == "gpt-4o-mini"
    assert outcome.report.attempts[0].error_type == "FirstTokenTimeoutError"


def test_a_native_stream_that_stalls_mid_answer_raises_with_the_partial_text(sim):
    sim.inject(GEMINI, Fault(stall_after=3, stall_for=2.0))
    engine = Engine(make_plan(config(sim), model=GEMINI, api="gemini-native", stall_timeout=0.3))
    received = []
    with pytest.raises(E.StreamStalledError) as caught:
        for chunk in engine.stream(engine.prepare({"messages": HELLO["messages"]})):
            received.append(chunk)
    assert (
        caught.value.partial_text
        and caught.value.partial_text == added_up(received)["choices"][0]["message"]["content"]
    )


def test_native_options_reach_the_native_target_and_not_a_chat_one(sim):
    sim.inject(GEMINI, Fault(status=503))
    options = {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}], "topK": 8}
    engine = Engine(
        make_plan(config(sim), model=GEMINI, api="gemini-native", fallback_models=["gpt-4o-mini"]),
        sleep=lambda _: None,
    )
    engine.complete(engine.prepare({"messages": HELLO["messages"], "extra_body": {"gemini": options, "user_tag": "x"}}))
    native_body = sim.chat_requests(GEMINI)[0].body
    assert native_body["safetySettings"] == options["safetySettings"]
    assert native_body["generationConfig"] == {"topK": 8} and native_body["user_tag"] == "x"
    chat_body = sim.chat_requests("gpt-4o-mini")[0].body
    assert "gemini" not in chat_body and chat_body["user_tag"] == "x"


def test_a_stream_answered_as_a_json_array_of_events_is_read(sim):
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi "}]}}]},
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "there"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4, "cost": 0.01},
        },
    ]
    sim.inject(GEMINI, Fault(raw_body=json.dumps(events), status=200))
    completion = added_up(transport.open_generate_content_stream(config(sim), HELLO))
    assert completion["choices"][0]["message"]["content"] == "Hi there"
    assert completion["usage"]["cost"] == 0.01
