"""Gemini's native generateContent format: the translation both ways, pure (no sockets)."""

from __future__ import annotations

import json

import pytest

from aisa_integrations.core import errors as E
from aisa_integrations.core import provider_fields, wire
from aisa_integrations.core.gemini_native import (
    NativeStreamState,
    chunks_from_stream_event,
    completion_as_chunks,
    completion_from_generate_content,
    end_of_stream,
    gemini_schema,
    generate_content_path,
    native_error,
    to_generate_content,
)
from aisa_integrations.core.stream import ChunkAccumulator
from aisa_integrations.core.usage import parse_usage

MODEL = "gemini-2.0-flash"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": False,
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
        "strict": True,
    },
}


def native(**request):
    """A request as the engine would hand it over (validated by wire.normalize_request first)."""
    request.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return to_generate_content(wire.normalize_request({"model": MODEL, **request}))


def answer(parts, finish="STOP", **extra):
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}], **extra}


# -- requests ---------------------------------------------------------------------------------


def test_text_and_system_become_contents_and_system_instruction():
    body = native(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "How are you?"},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Bonjour"}]},
        {"role": "user", "parts": [{"text": "How are you?"}]},
    ]
    assert "model" not in body and "messages" not in body


def test_consecutive_turns_of_one_role_are_merged():
    body = native(
        messages=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "third"}]},
        ]
    )
    assert body["contents"] == [{"role": "user", "parts": [{"text": "first"}, {"text": "second\nthird"}]}]


def test_an_image_data_url_becomes_inline_data():
    body = native(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ]
    )
    assert body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        ("https://example.com/cat.png", "image/png"),
        ("https://example.com/photos/cat.webp?size=large", "image/webp"),
        ("https://example.com/image", "image/jpeg"),
    ],
)
def test_an_image_url_becomes_file_data_with_a_guessed_mime_type(url, mime):
    body = native(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert body["contents"][0]["parts"] == [{"fileData": {"mimeType": mime, "fileUri": url}}]


def test_audio_and_inline_files_are_inline_data():
    body = native(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}},
                    {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}"}},
                ],
            }
        ]
    )
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": PNG}},
        {"inlineData": {"mimeType": "application/pdf", "data": PNG}},
    ]


def test_tools_become_function_declarations_without_the_keys_gemini_refuses():
    body = native(tools=[WEATHER])
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Get the weather for a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]


def test_a_tool_without_parameters_is_declared_without_them():
    body = native(tools=[{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}])
    assert body["tools"] == [{"functionDeclarations": [{"name": "now"}]}]


def test_schemas_are_inlined_and_nullable():
    schema = {
        "$defs": {"Address": {"type": "object", "properties": {"street": {"type": "string"}}, "title": "Address"}},
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Address"},
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "kind": {"const": "person"},
            "age": {"type": ["integer", "null"], "exclusiveMinimum": 0},
            # A property whose *name* is a key Gemini refuses in a schema is still a property.
            "strict": {"type": "boolean"},
        },
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {
            "home": {"type": "object", "properties": {"street": {"type": "string"}}, "title": "Address"},
            "nickname": {"type": "string", "default": None, "nullable": True},
            "kind": {"enum": ["person"], "type": "string"},
            "age": {"type": "integer", "nullable": True},
            "strict": {"type": "boolean"},
        },
    }


def test_a_recursive_schema_is_refused_before_sending():
    schema = {"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}}
    with pytest.raises(E.InvalidRequestError, match="recursive"):
        gemini_schema({**schema, "$ref": "#/$defs/Node"})


def test_a_tool_call_and_its_result_round_trip():
    body = native(
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": '{"temp": 22}'},
            {"role": "tool", "tool_call_id": "b", "content": "sunny"},
        ],
    )
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"text": "Looking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
    }
    # One user turn with both results, in order; JSON results parsed, other text kept as it is.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"result": {"temp": 22}}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
        ],
    }


def test_a_tool_result_with_an_image_keeps_the_image_after_the_result():
    body = native(
        messages=[
            {"role": "user", "content": "Draw"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "a", "type": "function", "function": {"name": "draw", "arguments": "{}"}}],
            },
            {
                "role": "tool",
                "tool_call_id": "a",
                "content": [
                    {"type": "text", "text": "done"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ]
    )
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "draw", "response": {"result": "done"}}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


def test_thought_signatures_kept_by_provider_fields_go_back_on_their_parts():
    completion = completion_from_generate_content(
        answer(
            [
                {"text": "Let me check.", "thoughtSignature": "text-sig"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "call-sig"},
            ]
        ),
        MODEL,
    )
    message = completion["choices"][0]["message"]
    stored = provider_fields.extract(message, model=MODEL)
    call_id = message["tool_calls"][0]["id"]
    # What an adapter sends on the next turn: the standard message plus what provider_fields kept.
    outgoing = provider_fields.attach(
        {
            "role": "assistant",
            "content": message["content"],
            "tool_calls": [{k: v for k, v in message["tool_calls"][0].items() if k != "extra_content"}],
        },
        stored,
    )
    scoped = provider_fields.for_family(
        [
            {"role": "user", "content": "Weather?"},
            outgoing,
            {"role": "tool", "tool_call_id": call_id, "content": "22C"},
        ],
        "gemini",
    )
    body = to_generate_content({"model": MODEL, "messages": scoped})
    assert body["contents"][1]["parts"] == [
        {"text": "Let me check.", "thoughtSignature": "text-sig"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "call-sig"},
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        ("any", {"functionCallingConfig": {"mode": "ANY"}}),
        ("get_weather", {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        ),
    ],
)
def test_tool_choice_becomes_the_function_calling_mode(choice, config):
    assert native(tools=[WEATHER], tool_choice=choice)["toolConfig"] == config


def test_sampling_parameters_become_generation_config():
    body = native(
        temperature=0.3,
        top_p=0.9,
        max_tokens=256,
        stop=["END"],
        n=2,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
    )
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }
    assert native(max_completion_tokens=64, stop="STOP")["generationConfig"] == {
        "maxOutputTokens": 64,
        "stopSequences": ["STOP"],
    }


def test_response_formats_become_a_mime_type_and_a_schema():
    assert native(response_format={"type": "json_object"})["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False}
    body = native(response_format=wire.json_schema_format(schema, name="Person", strict=True))
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    assert "generationConfig" not in native(response_format={"type": "text"})


def test_reasoning_effort_becomes_a_thinking_budget():
    assert native(reasoning_effort="low")["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024}}


def test_native_only_options_pass_through():
    request = wire.normalize_request(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.1,
            "extra_body": {
                "gemini": {
                    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
                    "cachedContent": "cachedContents/abc",
                    "topK": 40,
                    "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "responseModalities": ["TEXT"]},
                    "tools": [{"googleSearch": {}}],
                }
            },
        }
    )
    body = to_generate_content(request)
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert body["cachedContent"] == "cachedContents/abc"
    assert body["generationConfig"] == {
        "temperature": 0.1,
        "topK": 40,
        "thinkingConfig": {"thinkingBudget": 0},
        "responseModalities": ["TEXT"],
    }
    assert body["tools"] == [{"googleSearch": {}}]
    # The same options given directly (a caller of this module, not through normalize_request):
    direct = to_generate_content({"model": MODEL, "messages": request["messages"], "gemini": {"topK": 3}})
    assert direct["generationConfig"] == {"topK": 3}


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"logprobs": True}, "logprobs"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-123"}}]}]},
            "file_id",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                    },
                ]
            },
            "JSON object",
        ),
        (
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "no earlier assistant message made",
        ),
        ({"messages": [{"role": "system", "content": "Only a system prompt"}]}, "at least one user"),
    ],
)
def test_what_cannot_be_translated_is_refused_before_sending(request_, problem):
    request = wire.normalize_request({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **request_})
    with pytest.raises(E.InvalidRequestError, match=problem):
        to_generate_content(request)


def test_the_path_quotes_the_model_id():
    assert generate_content_path("google/gemini-2.0-flash") == "/models/google%2Fgemini-2.0-flash:generateContent"


# -- responses --------------------------------------------------------------------------------


def test_a_text_answer_is_a_chat_completion():
    completion = completion_from_generate_content(
        answer(
            [{"text": "thinking...", "thought": True}, {"text": "Hello "}, {"text": "world"}],
            modelVersion="gemini-2.0-flash-001",
            responseId="resp-1",
        ),
        MODEL,
    )
    assert completion["object"] == "chat.completion" and completion["id"] == "resp-1"
    assert completion["model"] == "gemini-2.0-flash-001"
    choice = completion["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello world", "reasoning_content": "thinking..."}
    assert choice["finish_reason"] == "stop" and choice["index"] == 0


def test_function_calls_get_unique_ids_and_json_arguments():
    completion = completion_from_generate_content(
        answer(
            [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                {"functionCall": {"name": "now"}},
            ]
        ),
        MODEL,
    )
    choice = completion["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}, {}]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)
    other = completion_from_generate_content(answer([{"functionCall": {"name": "now"}}]), MODEL)
    assert other["choices"][0]["message"]["tool_calls"][0]["id"] not in ids  # never reused by a later answer


@pytest.mark.parametrize(
    ("native_reason", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(native_reason, reason):
    completion = completion_from_generate_content(answer([{"text": "x"}], native_reason), MODEL)
    assert completion["choices"][0]["finish_reason"] == reason


def test_a_candidate_stopped_by_the_filter_may_have_no_content():
    completion = completion_from_generate_content({"candidates": [{"finishReason": "SAFETY"}]}, MODEL)
    assert completion["choices"][0]["finish_reason"] == "content_filter"
    assert completion["choices"][0]["message"]["content"] == ""


def test_usage_with_thoughts_cache_and_the_gateways_cost():
    metadata = {
        "promptTokenCount": 100,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 30,
        "cachedContentTokenCount": 40,
        "totalTokenCount": 150,
        "cost": 0.0042,
        "credits_remaining": 12.5,
    }
    completion = completion_from_generate_content(answer([{"text": "x"}], usageMetadata=metadata), MODEL)
    assert completion["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 30},
        "cost": 0.0042,
        "credits_remaining": 12.5,
    }
    usage = parse_usage(completion["usage"])
    assert (usage.cost, usage.credits_remaining, usage.reasoning_tokens, usage.cached_tokens) == (0.0042, 12.5, 30, 40)


def test_cost_from_a_top_level_usage_object():
    body = answer(
        [{"text": "x"}],
        usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
        usage={"cost": 0.5, "credits_remaining": 9.0},
    )
    usage = completion_from_generate_content(body, MODEL)["usage"]
    assert (usage["total_tokens"], usage["cost"], usage["credits_remaining"]) == (4, 0.5, 9.0)


def test_a_blocked_prompt_is_a_content_policy_error():
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    with pytest.raises(E.ContentPolicyError, match="SAFETY") as caught:
        completion_from_generate_content(body, MODEL)
    assert caught.value.model == MODEL


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"choices": [{"message": {"content": "chat, not native"}}]},
        {"candidates": []},
        {"candidates": [{"content": {"parts": "text"}}]},
        {"candidates": ["x"]},
        {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]},
    ],
)
def test_other_shapes_are_malformed(body):
    with pytest.raises(E.MalformedResponseError):
        completion_from_generate_content(body, MODEL)


def test_an_error_body_is_typed():
    with pytest.raises(E.RateLimitError):
        completion_from_generate_content(
            {"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}, MODEL
        )


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "google", "cls"),
    [
        (400, "INVALID_ARGUMENT", E.BadRequestError),
        (401, "UNAUTHENTICATED", E.AuthenticationError),
        (402, "FAILED_PRECONDITION", E.InsufficientCreditsError),
        (403, "PERMISSION_DENIED", E.PermissionDeniedError),
        (404, "NOT_FOUND", E.ModelNotFoundError),
        (429, "RESOURCE_EXHAUSTED", E.RateLimitError),
        (500, "INTERNAL", E.ServerError),
        (503, "UNAVAILABLE", E.ServerError),
    ],
)
def test_native_errors_use_the_packages_status_mapping(status, google, cls):
    err = native_error(status, {"error": {"code": status, "message": "m", "status": google}}, model=MODEL)
    assert type(err) is cls and err.status_code == status and err.code == google and err.server_message == "m"


def test_a_context_overflow_is_a_context_length_error():
    body = {
        "error": {
            "code": 400,
            "message": "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
            "status": "INVALID_ARGUMENT",
        }
    }
    assert isinstance(native_error(400, body), E.ContextLengthExceededError)


def test_an_error_in_a_200_body_is_typed_by_its_code_and_redacted():
    err = native_error(
        200, {"error": {"code": 503, "message": "overloaded key-123", "status": "UNAVAILABLE"}}, secrets=["key-123"]
    )
    assert isinstance(err, E.ServerError) and "key-123" not in str(err)


# -- streams ----------------------------------------------------------------------------------


def _stream(events, model=MODEL):
    state = NativeStreamState(model)
    chunks = [chunk for event in events for chunk in chunks_from_stream_event(event, model, state)]
    return chunks + end_of_stream(state)


def test_a_stream_adds_up_to_the_same_answer():
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8, "cost": 0.001}
    chunks = _stream(
        [
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
                "usageMetadata": {"promptTokenCount": 5},
            },
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}}],
                "usageMetadata": {"promptTokenCount": 5},
            },
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}],
                "usageMetadata": usage,
            },
        ]
    )
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["usage"]["cost"] == 0.001  # the running counts are not reported
    assert chunks[-1] is usage_chunks[0] and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    accumulator = ChunkAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    completion = accumulator.completion()
    assert completion["choices"][0]["message"]["content"] == "Hello!"
    assert completion["choices"][0]["finish_reason"] == "stop" and completion["usage"]["total_tokens"] == 8


def test_streamed_function_calls_have_indexes_and_finish_as_tool_calls():
    chunks = _stream(
        [
            {
                "candidates": [
                    {"content": {"parts": [{"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "s"}]}}
                ]
            },
            {"candidates": [{"content": {"parts": [{"functionCall": {"name": "b"}}]}, "finishReason": "STOP"}]},
        ]
    )
    calls = [call for c in chunks for choice in c["choices"] for call in choice["delta"].get("tool_calls", [])]
    assert [(call["index"], call["function"]["name"]) for call in calls] == [(0, "a"), (1, "b")]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "s"}}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not any(c.get("usage") for c in chunks)  # no usageMetadata, no usage chunk


def test_usage_after_the_finish_comes_at_the_end_of_the_stream():
    state = NativeStreamState(MODEL)
    finished = chunks_from_stream_event(
        {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}, MODEL, state
    )
    trailing = chunks_from_stream_event({"usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 2}}, MODEL, state)
    assert not any(c.get("usage") for c in finished) and trailing[0]["usage"]["total_tokens"] == 2
    assert end_of_stream(state) == []  # reported once


def test_a_blocked_prompt_in_a_stream_raises():
    with pytest.raises(E.ContentPolicyError):
        _stream([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}])


def test_a_whole_answer_as_chunks():
    completion = completion_from_generate_content(
        answer(
            [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {}}}],
            usageMetadata={"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
        ),
        MODEL,
    )
    chunks = completion_as_chunks(completion)
    accumulator = ChunkAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    rebuilt = accumulator.completion()
    assert rebuilt["choices"][0]["message"]["tool_calls"] == completion["choices"][0]["message"]["tool_calls"]
    assert rebuilt["choices"][0]["message"]["content"] == "Hi" and rebuilt["usage"] == completion["usage"]


def test_tool_use_prompt_tokens_count_as_prompt_tokens():
    from aisa_integrations.core.gemini_native import usage_from_metadata

    usage = usage_from_metadata({"promptTokenCount": 10, "toolUsePromptTokenCount": 4, "candidatesTokenCount": 5})
    assert usage["prompt_tokens"] == 14 and usage["total_tokens"] == 19


def test_a_malformed_function_call_is_a_malformed_answer_not_an_empty_reply():
    from aisa_integrations.core.errors import MalformedResponseError
    from aisa_integrations.core.gemini_native import completion_from_generate_content

    body = {"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL"}]}
    with pytest.raises(MalformedResponseError, match="MALFORMED_FUNCTION_CALL"):
        completion_from_generate_content(body, "gemini-2.0-flash")
