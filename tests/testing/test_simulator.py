"""The simulator speaks the documented protocol and misbehaves exactly as told."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import openai
import pytest

from aisa_integrations.testing import AIsaSimulator, Fault, ScriptedReply, ScriptedToolCall

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
MULTIPLY = {
    "type": "function",
    "function": {
        "name": "multiply",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
    },
}


@pytest.fixture
def client(sim):
    return openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url, max_retries=0, timeout=5)


def ask(client, content="Hello", model="gpt-4.1", **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kw)


def test_plain_completion_has_the_documented_shape(client, sim):
    reply = ask(client, "Explain quantum computing in simple terms.")
    assert reply.object == "chat.completion" and reply.model == "gpt-4.1"
    assert reply.choices[0].finish_reason == "stop"
    assert "quantum computing" in reply.choices[0].message.content
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    extra = reply.usage.model_extra
    assert extra["cost"] > 0 and extra["credits_remaining"] == pytest.approx(sim.initial_credits - extra["cost"])


def test_replies_are_deterministic(client):
    assert ask(client, "same").choices[0].message.content == ask(client, "same").choices[0].message.content


def test_streaming_sse_with_usage(client):
    chunks = list(ask(client, "Write a poem about AI.", stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Write a poem about AI." in text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_streaming_without_include_usage_has_no_usage_chunk(client):
    chunks = list(ask(client, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_tool_call_with_arguments_from_the_prompt(client):
    reply = ask(client, "What is the weather in Tokyo?", tools=[WEATHER, MULTIPLY])
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Tokyo", "unit": "celsius"}


def test_parallel_tool_calls_and_switching_them_off(client):
    prompt = "Multiply 3 by 4 and get the weather in Paris"
    both = ask(client, prompt, tools=[WEATHER, MULTIPLY]).choices[0].message.tool_calls
    assert {c.function.name for c in both} == {"get_weather", "multiply"}
    assert len({c.id for c in both}) == 2
    one = ask(client, prompt, tools=[WEATHER, MULTIPLY], parallel_tool_calls=False).choices[0].message.tool_calls
    assert len(one) == 1


def test_tool_choice_none_and_forced(client):
    assert ask(client, "weather?", tools=[WEATHER], tool_choice="none").choices[0].message.tool_calls is None
    forced = ask(
        client,
        "weather?",
        tools=[WEATHER, MULTIPLY],
        tool_choice={"type": "function", "function": {"name": "multiply"}},
    )
    assert forced.choices[0].message.tool_calls[0].function.name == "multiply"


def test_answer_after_tool_results(client):
    reply = client.chat.completions.create(
        model="gpt-4.1",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Tokyo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "22C and sunny"},
        ],
    )
    assert reply.choices[0].message.tool_calls is None
    assert "22C and sunny" in reply.choices[0].message.content


def test_streamed_tool_calls_carry_index_and_id_once(client):
    chunks = list(ask(client, "Multiply 3 by 4 and get the weather in Paris", tools=[WEATHER, MULTIPLY], stream=True))
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    ids = [d.id for d in deltas if d.id]
    assert len(ids) == 2 and {d.index for d in deltas} == {0, 1}
    args = {}
    for d in deltas:
        args[d.index] = args.get(d.index, "") + (d.function.arguments or "")
    assert all(json.loads(a) for a in args.values())


def test_legacy_functions(client):
    reply = client.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "What is the weather in Tokyo?"}],
        functions=[WEATHER["function"]],
        function_call="auto",
    )
    assert reply.choices[0].finish_reason == "function_call"
    assert reply.choices[0].message.function_call.name == "get_weather"
    assert json.loads(reply.choices[0].message.function_call.arguments)["location"] == "Tokyo"


def test_json_schema_and_json_object(client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    reply = ask(
        client,
        "Ada is 36",
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content) == {"name": "Ada", "age": 36}
    reply = ask(client, "json please", response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_vision_parts(client):
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/image.jpg"}},
    ]
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content.startswith("I see 1 image")
    with pytest.raises(openai.BadRequestError, match="does not accept image input"):
        client.chat.completions.create(model="qwen-max", messages=[{"role": "user", "content": content}])


@pytest.mark.parametrize(
    ("part", "message"),
    [
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "image_url.url"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}, "base64"),
        ({"type": "mystery"}, "unknown content part type"),
    ],
)
def test_invalid_parts_are_rejected_like_a_server(client, part, message):
    with pytest.raises(openai.BadRequestError, match=message):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [part]}])


def test_invalid_tool_name_is_rejected(client):
    bad = {"type": "function", "function": {"name": "get weather!", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError, match="name must match"):
        ask(client, tools=[bad])


def test_reasoning_models_send_reasoning_content(client):
    reply = ask(client, "Why is the sky blue?", model="deepseek-r1")
    assert reply.choices[0].message.model_extra["reasoning_content"].startswith("The user asked")
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0


def test_stop_and_max_tokens(client):
    reply = ask(client, "Hello", stop=["said"])
    assert "said" not in reply.choices[0].message.content
    short = ask(client, "Hello there", max_tokens=3)
    assert short.choices[0].finish_reason == "length" and len(short.choices[0].message.content) <= 12


def test_scripted_replies_queue_per_model(client, sim):
    sim.script("first", ScriptedReply(tool_calls=[ScriptedToolCall("multiply", {"a": 1, "b": 2})]), model="gpt-4o")
    assert ask(client, model="gpt-4o").choices[0].message.content == "first"
    assert ask(client, model="gpt-4.1").choices[0].message.content.startswith("Simulated")
    call = ask(client, model="gpt-4o").choices[0].message.tool_calls[0]
    assert call.function.name == "multiply" and json.loads(call.function.arguments) == {"a": 1, "b": 2}


def test_models_endpoint_lists_the_catalog(client, sim):
    sim.add_model("grok-3")
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4.1", "claude-3-opus", "gemini-2.0-flash", "qwen-max", "deepseek-r1", "grok-2", "grok-3"} <= ids


def test_bearer_key_is_checked(sim):
    with pytest.raises(openai.AuthenticationError):
        ask(openai.OpenAI(api_key="nope", base_url=sim.base_url, max_retries=0))


def test_unknown_model_body(client):
    with pytest.raises(openai.NotFoundError) as info:
        ask(client, model="gpt-5-ultra")
    assert info.value.body == {"code": "model_not_found", "message": "Model 'gpt-5-ultra' is not available"}


def test_fault_times_and_wildcard(client, sim):
    sim.inject("*", Fault(status=503, times=2))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(client, model="gemini-2.0-flash")
    assert ask(client).choices  # the fault is used up
    assert [r.status for r in sim.chat_requests()] == [503, 503, 200]


def test_retry_after_header_and_first_byte_delay(client, sim):
    sim.inject("gpt-4.1", Fault(status=429, retry_after=3, times=1))
    with pytest.raises(openai.RateLimitError) as info:
        ask(client)
    assert info.value.response.headers["retry-after"] == "3"
    sim.inject("gpt-4.1", Fault(delay=0.2, times=1))
    start = time.perf_counter()
    ask(client)
    assert time.perf_counter() - start >= 0.2


def test_latency_setting(client, sim):
    sim.set_latency(0.15, model="gpt-4o")
    start = time.perf_counter()
    ask(client, model="gpt-4o")
    assert time.perf_counter() - start >= 0.15


def test_request_log_never_keeps_the_key(client, sim):
    ask(client, "logged")
    entry = sim.chat_requests()[-1]
    assert entry.body["messages"][0]["content"] == "logged" and entry.status == 200
    assert not any(k.lower() == "authorization" for k in entry.headers)
    assert sim.api_key not in json.dumps(entry.headers)
    assert entry.billed_cost == pytest.approx(sim.total_billed)


def control(sim, path, payload=None, *, method=None, headers=None, key=True, raw=None):
    """A control-API request, as a user's script would send it."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key:
        sent["Authorization"] = f"Bearer {sim.api_key}"
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    req = urllib.request.Request(
        sim.base_url.replace("/v1", "") + path, data=data, method=method or ("POST" if data else "GET"), headers=sent
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def test_control_api_over_http(sim, client):
    def post(path, payload):
        return control(sim, path, payload)

    assert post("/_simulator/faults", {"model": "gpt-4.1", "status": 500, "times": 1}) == {"ok": True}
    with pytest.raises(openai.InternalServerError):
        ask(client)
    post("/_simulator/script", {"model": "gpt-4.1", "reply": {"content": "scripted over http"}})
    assert ask(client).choices[0].message.content == "scripted over http"
    log = control(sim, "/_simulator/requests")
    assert [e["status"] for e in log] == [500, 200]
    with pytest.raises(urllib.error.HTTPError):
        post("/_simulator/faults", {"model": "gpt-4.1", "no_such_fault": 1})


def test_reset_restores_everything(client, sim):
    sim.inject("*", Fault(status=500))
    sim.credits = 0
    sim.reset()
    assert ask(client).choices and sim.credits < sim.initial_credits


def test_python_dash_m_runs_a_server():
    proc = subprocess.Popen(
        [sys.executable, "-m", "aisa_integrations.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "AIsa simulator listening on http://127.0.0.1:" in line
        base = line.split(" on ", 1)[1].split()[0]
        reply = ask(openai.OpenAI(api_key="sim-key-not-secret", base_url=base, max_retries=0))
        assert reply.choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(10)


def test_environ_context_manager(monkeypatch):
    import os

    with AIsaSimulator() as sim, sim.environ():
        assert os.environ["AISA_BASE_URL"] == sim.base_url
    assert "AISA_BASE_URL" not in os.environ


@pytest.mark.parametrize(
    "fault", [Fault(drop_after=3, times=1), Fault(malformed_at=2, times=1), Fault(malformed_body=True, times=1)]
)
def test_undelivered_answers_are_not_billed(client, sim, fault):
    sim.inject("gpt-4.1", fault)
    stream = not fault.malformed_body
    with pytest.raises((openai.APIError, json.JSONDecodeError)):
        result = ask(client, "hello there", stream=stream, stream_options={"include_usage": True} if stream else None)
        if stream:
            list(result)
    entry = sim.chat_requests()[-1]
    deadline = time.time() + 2  # the client gives up on a bad chunk before the server has finished writing
    while entry.billed_cost is not None and time.time() < deadline:
        time.sleep(0.01)
    assert entry.billed_cost is None and sim.credits == sim.initial_credits
    ask(client, "delivered")
    assert sim.chat_requests()[-1].billed_cost > 0 and sim.credits < sim.initial_credits


def test_fixed_replies_persist_until_reset(client, sim):
    sim.fix_reply("always this", model="gpt-4o")
    assert [ask(client, model="gpt-4o").choices[0].message.content for _ in range(3)] == ["always this"] * 3
    assert ask(client, model="gpt-4.1").choices[0].message.content.startswith("Simulated")
    sim.reset()
    assert ask(client, model="gpt-4o").choices[0].message.content.startswith("Simulated")
