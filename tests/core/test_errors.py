"""Every error the gateway or the wire can produce, through the real openai SDK and real sockets
(the core's transport: answers are plain dicts)."""

from __future__ import annotations

import socket

import openai
import pytest

from aisa_integrations.core import ClientConfig
from aisa_integrations.core import errors as E
from aisa_integrations.core.chat import chat
from aisa_integrations.core.transport import aopen_chat_stream, apost, open_chat_stream, post
from aisa_integrations.testing import Fault

HELLO = [{"role": "user", "content": "Say hello to the whole wide world"}]


def config_for(sim, **kw):
    kw.setdefault("max_retries", 0)
    return ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url, **kw)


def call(sim, model="gpt-4o", **kw):
    return post(config_for(sim, **kw), {"model": model, "messages": HELLO})


STATUS_CASES = [
    (Fault(status=400), E.BadRequestError, openai.BadRequestError, "invalid_request"),
    (
        Fault(status=400, code="context_length_exceeded"),
        E.ContextLengthExceededError,
        openai.BadRequestError,
        "context_length_exceeded",
    ),
    (
        Fault(status=400, code="content_policy_violation"),
        E.ContentPolicyError,
        openai.BadRequestError,
        "content_policy_violation",
    ),
    (Fault(status=401), E.AuthenticationError, openai.AuthenticationError, "invalid_api_key"),
    (Fault(status=402), E.InsufficientCreditsError, openai.APIStatusError, "insufficient_credits"),
    (Fault(status=403), E.PermissionDeniedError, openai.PermissionDeniedError, "permission_denied"),
    (Fault(status=404), E.ModelNotFoundError, openai.NotFoundError, "model_not_found"),
    (Fault(status=429), E.RateLimitError, openai.RateLimitError, "rate_limit_exceeded"),
    (Fault(status=500), E.ServerError, openai.InternalServerError, "server_error"),
    (Fault(status=502), E.ServerError, openai.InternalServerError, "bad_gateway"),
    (Fault(status=503), E.ServerError, openai.InternalServerError, "service_unavailable"),
]


@pytest.mark.parametrize(("fault", "ours", "sdk", "code"), STATUS_CASES, ids=lambda x: getattr(x, "__name__", None))
def test_every_status_maps_to_a_typed_error(sim, fault, ours, sdk, code):
    sim.inject("gpt-4o", fault)
    with pytest.raises(ours) as info:
        call(sim)
    err = info.value
    assert isinstance(err, sdk) and isinstance(err, E.AIsaStatusError)
    assert err.status_code == fault.status
    assert err.code == code
    assert err.model == "gpt-4o"
    assert err.request_id and err.request_id.startswith("req_sim_")
    assert err.server_message
    assert "gpt-4o" in str(err) and str(fault.status) in str(err)
    assert err.response.status_code == fault.status  # the SDK-shaped attributes are there too


async def test_async_path_maps_the_same(sim):
    sim.inject("gpt-4o", Fault(status=402))
    with pytest.raises(E.InsufficientCreditsError, match="add credits"):
        await apost(config_for(sim), {"model": "gpt-4o", "messages": HELLO})


def test_insufficient_credits_says_how_to_add_credits(sim):
    sim.inject("gpt-4o", Fault(status=402))
    with pytest.raises(E.InsufficientCreditsError, match=r"add credits at https://console\.aisa\.one"):
        call(sim)


def test_real_out_of_credits_from_the_balance(sim):
    sim.credits = 0
    with pytest.raises(E.InsufficientCreditsError):
        call(sim)


def test_unknown_model_suggests_close_ids(sim):
    with pytest.raises(E.ModelNotFoundError) as info:
        call(sim, model="claude-3.5-sonet")
    assert "claude-3-5-sonnet" in info.value.suggestions
    assert "Did you mean" in str(info.value)


def test_rate_limit_carries_retry_after(sim):
    sim.inject("gpt-4o", Fault(status=429, retry_after=7))
    with pytest.raises(E.RateLimitError) as info:
        call(sim)
    assert info.value.retry_after == 7


def test_real_context_overflow_from_the_catalog_window(sim):
    huge = [{"role": "user", "content": "word " * 20_000}]  # ~25K tokens > qwen-max's 32K? no: > gpt-3.5's 16K
    with pytest.raises(E.ContextLengthExceededError, match="maximum context length"):
        post(config_for(sim), {"model": "gpt-3.5-turbo", "messages": huge})


def test_wrong_key_is_an_authentication_error(sim):
    config = ClientConfig.resolve(api_key="wrong-key-123456", base_url=sim.base_url, max_retries=0)
    with pytest.raises(E.AuthenticationError, match="AISA_API_KEY"):
        post(config, {"model": "gpt-4o", "messages": HELLO})


def test_key_echoed_by_the_server_is_redacted(sim):
    sim.inject("gpt-4o", Fault(status=401, message=f"Key {sim.api_key} is revoked"))
    with pytest.raises(E.AuthenticationError) as info:
        call(sim)
    assert sim.api_key not in str(info.value) and sim.api_key not in info.value.server_message


def test_timeout(sim):
    sim.inject("gpt-4o", Fault(delay=2))
    with pytest.raises(E.APITimeoutError) as info:
        call(sim, timeout=0.3)
    assert isinstance(info.value, openai.APITimeoutError)


def test_reset_before_headers_is_a_connection_error(sim):
    sim.inject("gpt-4o", Fault(reset=True))
    with pytest.raises(E.APIConnectionError) as info:
        call(sim)
    assert isinstance(info.value, openai.APIConnectionError)
    assert not isinstance(info.value, E.APITimeoutError)


def test_nothing_listening_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ClientConfig.resolve(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(E.APIConnectionError, match="Could not reach"):
        post(config, {"model": "gpt-4o", "messages": HELLO})


def test_malformed_body(sim):
    sim.inject("gpt-4o", Fault(malformed_body=True))
    with pytest.raises(E.MalformedResponseError, match="HTTP 200 with a body that is not JSON"):
        call(sim)


def test_sdk_retries_honour_retry_after_and_succeed(sim):
    sim.inject("gpt-4o", Fault(status=429, retry_after=0.05, times=1))
    completion = call(sim, max_retries=2)
    assert completion["choices"][0]["message"]["content"]
    assert [r.status for r in sim.chat_requests("gpt-4o")] == [429, 200]


# -- streams ---------------------------------------------------------------------------------


def stream(sim, **kw):
    return list(open_chat_stream(config_for(sim, **kw), {"model": "gpt-4o", "messages": HELLO}))


def test_clean_stream_ends_with_usage(sim):
    chunks = stream(sim)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)


def test_stream_cut_mid_answer_keeps_the_partial_text(sim):
    sim.inject("gpt-4o", Fault(drop_after=4))
    with pytest.raises(E.StreamInterruptedError) as info:
        stream(sim)
    assert info.value.partial_text.startswith("Simulated reply from")
    assert isinstance(info.value, openai.APIError)


def test_stream_stall_is_a_stalled_error(sim):
    sim.inject("gpt-4o", Fault(stall_after=3, stall_for=3))
    with pytest.raises(E.StreamStalledError) as info:
        stream(sim, timeout=0.3)
    assert info.value.partial_text
    assert isinstance(info.value, openai.APITimeoutError)


def test_malformed_chunk(sim):
    sim.inject("gpt-4o", Fault(malformed_at=3))
    with pytest.raises(E.MalformedResponseError) as info:
        stream(sim)
    assert info.value.partial_text  # two words had arrived


def test_missing_done_after_a_finish_is_accepted(sim):
    sim.inject("gpt-4o", Fault(missing_done=True))
    chunks = stream(sim)
    assert chunks[-1]["usage"] is not None


def test_stream_without_finish_reason_is_incomplete(sim):
    # Dropping right before the finish chunk, with an orderly end: the SDK sees a clean end of body.
    from aisa_integrations.testing import ScriptedReply

    sim.script(ScriptedReply(content="one two three"), model="gpt-4o")
    sim.inject("gpt-4o", Fault(drop_after=4))
    with pytest.raises(E.StreamInterruptedError) as info:
        stream(sim)
    assert info.value.partial_text == "one two three"


def test_stream_status_error_before_first_chunk(sim):
    sim.inject("gpt-4o", Fault(status=503))
    with pytest.raises(E.ServerError):
        stream(sim)


async def test_async_stream_cut(sim):
    sim.inject("gpt-4o", Fault(drop_after=4))
    got = []
    with pytest.raises(E.StreamInterruptedError) as info:
        async for chunk in await aopen_chat_stream(config_for(sim), {"model": "gpt-4o", "messages": HELLO}):
            got.append(chunk)
    assert len(got) == 4 and info.value.partial_text


def test_extras_travel_in_the_body_and_unset_values_are_not_sent(sim):
    config = config_for(sim)
    chat(config, {"model": "gpt-4o", "messages": HELLO, "extra_body": {"top_k": 5}, "temperature": None})
    body = sim.chat_requests()[-1].body
    assert body["top_k"] == 5 and "temperature" not in body and "extra_body" not in body


def test_errors_pickle_free_repr_and_mro_are_sane():
    assert issubclass(E.StreamStalledError, openai.APITimeoutError)
    assert issubclass(E.MissingAPIKeyError, ValueError) and issubclass(E.InvalidRequestError, ValueError)
    assert E.redact("Authorization: Bearer abcdefghijkl and sk-1234567890abcdef") == (
        "Authorization: Bearer *** and ***"
    )
