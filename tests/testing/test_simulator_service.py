"""The simulator as a well-behaved local service: limits, the key first, a protected control API."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import openai
import pytest

from aisa_integrations.testing import AIsaSimulator, Fault

from .test_simulator import control


def raw_request(sim, head: str, body: bytes = b"", *, wait: float = 5.0) -> bytes:
    """Send bytes as they are and return what the server answers first (never waiting forever)."""
    with socket.create_connection(("127.0.0.1", sim.port), timeout=wait) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := conn.recv(65536):  # the server closes: it will not read what was announced
            answer += chunk
        return answer


def chat_head(sim, length: int, key: str | None = None) -> str:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key or sim.api_key}\r\nContent-Length: {length}"
    )


def test_an_oversized_body_is_refused_from_its_headers_without_being_read(sim):
    started = time.monotonic()
    answer = raw_request(sim, chat_head(sim, 100_000_000), b'{"model": ')  # 100 MB announced, 10 bytes sent
    assert answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer
    assert time.monotonic() - started < 4  # answered at once: it did not wait for 100 MB that never come
    assert sim.requests == []  # nothing logged


def test_the_key_is_checked_before_the_body_is_read_or_logged(sim):
    answer = raw_request(sim, chat_head(sim, 100_000_000, key="wrong-key"), b"{")
    assert answer.startswith(b"HTTP/1.1 401")
    assert [(r.status, r.body) for r in sim.requests] == [(401, None)]


def test_a_thousand_idle_connections_do_not_lock_a_client_out():
    with AIsaSimulator(max_connections=64) as sim:
        idle = [socket.create_connection(("127.0.0.1", sim.port)) for _ in range(1000)]
        try:
            client = openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url, max_retries=0, timeout=5)
            reply = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
            assert sim._server.open_connections <= 64 + 1
        finally:
            for conn in idle:
                conn.close()


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("tools", 5, "invalid_type"),
        ("stop", 5, "invalid_type"),
        ("n", "abc", "invalid_type"),
        ("n", 2_000_000, "invalid_value"),
        ("temperature", -1, "invalid_value"),
        ("temperature", 5, "invalid_value"),
        ("max_tokens", 0, "invalid_value"),
        ("max_tokens", -5, "invalid_value"),
        ("max_tokens", 50_000, "invalid_value"),  # above gpt-4o's output limit
        ("stream", "yes", "invalid_type"),
    ],
)
def test_wrong_types_and_ranges_get_the_documented_error(sim, field, value, code):
    client = openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_body={field: value}
        )
    assert info.value.status_code == 400 and info.value.body["code"] == code
    assert sim.total_billed == 0


def test_the_control_api_needs_the_key_refuses_cross_origin_and_bad_faults(sim):
    with pytest.raises(urllib.error.HTTPError) as info:
        control(sim, "/_simulator/faults", {"status": 500}, key=False)
    assert info.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as info:
        control(sim, "/_simulator/requests", key=False)
    assert info.value.code == 401  # the request log holds prompts
    with pytest.raises(urllib.error.HTTPError) as info:
        control(sim, "/_simulator/faults", {"status": 500}, headers={"Origin": "https://evil.example"})
    assert info.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as info:
        control(sim, "/_simulator/faults", raw=b'{"status": 500}', headers={"Content-Type": "text/plain"})
    assert info.value.code == 415  # what a cross-site form could send
    for bad in ({"status": "abc"}, {"delay": -1}, {"times": "x"}, {"status": 999}, {"probability": 2}):
        with pytest.raises(urllib.error.HTTPError) as info:
            control(sim, "/_simulator/faults", bad)
        assert info.value.code == 400, bad
    client = openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url, max_retries=0)
    assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "still fine"}])


def test_faults_are_checked_in_python_too():
    with pytest.raises(ValueError, match=r"Fault\.delay must not be negative"):
        Fault(delay=-1)
    with pytest.raises(ValueError, match=r"Fault\.status must be int"):
        Fault(status="500")  # type: ignore[arg-type]


def test_binding_beyond_loopback_needs_allow_remote():
    with pytest.raises(ValueError, match="allow_remote=True"):
        AIsaSimulator(host="0.0.0.0")
    with pytest.warns(UserWarning, match="listens on 0.0.0.0"):
        AIsaSimulator(host="0.0.0.0", allow_remote=True)  # not started: nothing is bound


def test_an_assistant_prefill_is_continued(sim):
    client = openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url, max_retries=0)
    whole = client.chat.completions.create(model="claude-3-5-sonnet", messages=[{"role": "user", "content": "Hi"}])
    text = whole.choices[0].message.content
    prefill = text[:20]
    rest = (
        client.chat.completions.create(
            model="claude-3-5-sonnet",
            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": prefill}],
        )
        .choices[0]
        .message.content
    )
    assert prefill + rest == text


def test_json_object_answers_fit_the_schema_in_the_prompt(sim):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    client = openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": f"Ada is 36. Answer as JSON matching {json.dumps(schema)}"}],
    )
    value = json.loads(reply.choices[0].message.content)
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)
