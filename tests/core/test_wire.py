"""The wire module's assumptions about the openai SDK, and the request normalisation itself."""

from __future__ import annotations

import inspect

import openai
import pytest
from openai._utils import maybe_transform
from openai.types.chat import completion_create_params

from aisa_integrations.core import errors as E
from aisa_integrations.core.wire import CHAT_PARAMS, merge_params, normalize_request, normalize_tool_choice

# A request using every kind of value the adapters send: text, parts, tools, formats, extras.
FULL = normalize_request(
    {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                ],
                "name": "ada",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                "reasoning_content": "thinking",
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "any",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "stop": ["END"],
        "seed": 7,
        "n": 1,
        "logprobs": True,
        "top_logprobs": 2,
        "user": "u1",
        "stream_options": {"include_usage": True},
    }
)


def test_our_parameter_list_is_the_sdks():
    sdk = set(inspect.signature(openai.resources.chat.completions.Completions.create).parameters)
    sdk -= {"self", "extra_headers", "extra_query", "extra_body", "timeout"}
    assert sdk == CHAT_PARAMS, sdk ^ CHAT_PARAMS


def test_the_sdks_request_transform_is_the_identity_for_what_we_send():
    # The transport skips maybe_transform (it costs ~0.2 ms a call and returns its input unchanged for
    # chat parameters); if a future SDK rewrote a field on the way out, this fails.
    assert maybe_transform(FULL, completion_create_params.CompletionCreateParamsNonStreaming) == FULL


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("any", "required"),
        (True, {"type": "function", "function": {"name": "f"}}),
        (False, "none"),
        ("f", {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice_vocabulary(choice, wire):
    assert normalize_tool_choice(choice, [{"type": "function", "function": {"name": "f"}}]) == wire


def test_text_parts_are_joined_by_one_rule():
    request = normalize_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
        }
    )
    assert [m["content"] for m in request["messages"]] == ["a\nb", "ab"]


def test_unknown_keywords_name_the_fix():
    with pytest.raises(E.InvalidRequestError, match=r"Did you mean 'temperature'.*extra_body"):
        merge_params({"model": "m"}, call={"temprature": 0.2})
    extras = merge_params({"model": "m"}, extras={"top_k": 5, "temperature": 0.1})
    assert extras == {"model": "m", "temperature": 0.1, "extra_body": {"top_k": 5}}


def test_integers_given_as_whole_floats_are_accepted_and_others_refused():
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert normalize_request({**base, "max_tokens": 5.0})["max_tokens"] == 5
    with pytest.raises(E.InvalidRequestError, match="integer"):
        normalize_request({**base, "max_tokens": 5.5})
    with pytest.raises(E.InvalidRequestError, match="true or false"):
        normalize_request({**base, "logprobs": "yes"})
