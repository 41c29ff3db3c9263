"""The `aisa` command, run as a user would: a subprocess against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aisa_integrations.testing import Fault
from tests._media import png_bytes

AISA = [sys.executable, "-m", "aisa_integrations.cli"]


def run(*args, sim=None, env=None, timeout=60):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AISA_", "OPENAI_"))}
    if sim is not None:
        base.update(AISA_BASE_URL=sim.base_url, AISA_API_KEY=sim.api_key)
    return subprocess.run([*AISA, *args], capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})


def test_chat_plain_and_json(sim):
    result = run("chat", "--model", "qwen-max", "--system", "Be brief", "--message", "Hello there", sim=sim)
    assert result.returncode == 0, result.stderr
    assert "Hello there" in result.stdout and "[qwen-max:" in result.stderr
    body = sim.chat_requests()[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief"}
    data = json.loads(
        run("chat", "--message", "hi", "--temperature", "0.3", "--max-tokens", "50", "--json", sim=sim).stdout
    )
    assert data["model"] == "gpt-4.1" and data["usage"]["cost"] > 0 and data["finish_reason"] == "stop"
    assert sim.chat_requests()[-1].body["temperature"] == 0.3


def test_chat_stream_and_multi_turn(sim):
    streamed = run("chat", "--model", "gpt-4o", "--message", "Tell me a story", "--stream", sim=sim)
    assert streamed.returncode == 0 and "Tell me a story" in streamed.stdout
    assert sim.chat_requests()[-1].stream
    turns = '[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"How?"}]'
    data = json.loads(run("chat", "--messages", turns, "--stream", "--json", sim=sim).stdout)
    assert data["streamed"] and "How?" in data["content"] and data["usage"]["total_tokens"] > 0
    assert len(sim.chat_requests()[-1].body["messages"]) == 3


def test_chat_in_gemini_native_format(sim):
    model = "gemini-2.0-flash"
    plain = run("chat", "--model", model, "--api", "gemini-native", "--system", "Brief", "--message", "Hi", sim=sim)
    assert plain.returncode == 0, plain.stderr
    assert "Hi" in plain.stdout and f"[{model}:" in plain.stderr
    request = sim.chat_requests()[-1]
    assert request.path == f"/v1/models/{model}:generateContent"
    assert request.body["systemInstruction"]["parts"] == [{"text": "Brief"}]
    data = json.loads(
        run("chat", "--model", model, "--api", "gemini-native", "--message", "Hi", "--stream", "--json", sim=sim).stdout
    )
    assert data["streamed"] and data["usage"]["cost"] > 0
    assert sim.chat_requests()[-1].path.startswith(f"/v1/models/{model}:streamGenerateContent")
    wrong = run("chat", "--model", "gpt-4o", "--api", "gemini-native", "--message", "Hi", sim=sim)
    assert wrong.returncode == 3 and "api='chat'" in wrong.stderr  # a configuration error, nothing sent
    assert len(sim.chat_requests()) == 2


def test_vision_url_and_local_file(sim, tmp_path):
    assert "I see 1 image" in run("vision", "--image", "https://example.com/a.jpg", "--prompt", "What?", sim=sim).stdout
    path = tmp_path / "pic.png"
    path.write_bytes(png_bytes())
    data = json.loads(run("vision", "--image", str(path), "--json", sim=sim).stdout)
    assert data["model"] == "gpt-4o" and data["content"].startswith("I see 1 image")
    url = sim.chat_requests()[-1].body["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")


def test_models_table_json_and_family(sim):
    sim.add_model("grok-3")
    table = run("models", sim=sim).stdout
    assert "claude-3-opus" in table and "200,000" in table and "vision" in table.splitlines()[0]
    assert "$15.00 / $75.00" in table and "e-0" not in table  # USD per 1M tokens, never $7.5e-05
    data = json.loads(run("models", "--family", "grok", "--json", sim=sim).stdout)
    assert {m["id"] for m in data} == {"grok-2", "grok-beta", "grok-3"}
    assert next(m for m in data if m["id"] == "grok-3")["known"] is False


def test_compare_table_and_json(sim):
    result = run(
        "compare", "--models", "gpt-4.1,claude-3-sonnet,gemini-2.0-flash", "--message", "What is 2+2?", sim=sim
    )
    assert result.returncode == 0
    assert "latency" in result.stdout and result.stdout.count("$") == 3
    assert "Asking 3 models" in result.stderr and result.stderr.count("done:") == 3
    data = json.loads(run("compare", "--models", "gpt-4.1,nope", "--message", "hi", "--json", sim=sim).stdout)
    assert data["gpt-4.1"]["response"] and data["nope"]["error_type"] == "ModelNotFoundError"


def test_route_without_sending_or_key():
    data = json.loads(run("route", "--message", "Write a Python function to sort a list", "--json").stdout)
    assert data["task"] == "code" and data["model"] == "deepseek-coder"
    text = run("route", "--message", "what is this?", "--image", "cat.png").stdout
    assert "task:       vision" in text and "model:      gpt-4o" in text


def test_route_explain_and_conversation():
    text = run("route", "--message", "my docker build fails with exit code 137", "--explain").stdout
    assert "task:       code" in text and "probabilities: code" in text and "word 'docker'" in text
    assert "threshold:" in text and "signal:        none" in text
    traced = json.loads(
        run("route", "--message", "Traceback (most recent call last):\n x", "--explain", "--json").stdout
    )
    assert traced["explanation"]["signal"].startswith("a code fence or stack trace") and traced["task"] == "code"
    follow = run("route", "--message", "make it shorter", "--earlier", "write me a poem about the sea", "--explain")
    assert "task:       creative (inherited from the conversation)" in follow.stdout
    assert "this turn alone:" in follow.stdout and "probabilities: default" in follow.stdout
    loose = json.loads(
        run(
            "route", "--message", "make it shorter", "--earlier", "a poem about the sea", "--no-sticky", "--json"
        ).stdout
    )
    assert loose["task"] == "default" and "inherited" not in loose


def test_route_eval_and_train(tmp_path):
    from tests.core.test_classifier import USER_EXAMPLES

    labelled = tmp_path / "mine.jsonl"
    labelled.write_text("\n".join(json.dumps({"text": t, "task": k}) for t, k in USER_EXAMPLES) + "\n")
    builtin = run("route", "--eval", str(labelled), "--misses", "2")
    assert builtin.returncode == 0 and "accuracy " in builtin.stdout and "legal (8)" in builtin.stdout
    assert builtin.stdout.count("legal -> ") + builtin.stdout.count("medical -> ") >= 1  # the built-in has no legal
    model = tmp_path / "mine.bin"
    trained = run("route", "--train", str(labelled), "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert "tasks default, legal, medical" in trained.stdout and "in-sample accuracy" in trained.stdout
    report = json.loads(run("route", "--eval", str(labelled), "--classifier", str(model), "--json").stdout)
    assert (
        report["total"] == 24
        and report["accuracy"] >= 0.9
        and set(report["per_class"]) == {"legal", "medical", "default"}
    )
    args = ["--message", "can my landlord keep my deposit", "--classifier", str(model), "--json"]
    routed = json.loads(run("route", *args, "--route", "legal=claude-3-opus").stdout)
    assert (routed["task"], routed["model"]) == ("legal", "claude-3-opus")
    assert run("route", "--message", "x", "--route", "legal").returncode == 2
    missing = run("route", "--train", str(labelled))
    assert missing.returncode == 2 and "--out" in missing.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    bad = run("route", "--eval", str(broken))
    assert bad.returncode == 2 and "broken.jsonl:1: not JSON" in bad.stderr


def test_simulate_json_and_demo(sim):
    proc = subprocess.Popen([*AISA, "simulate", "--port", "0", "--json"], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["base_url"].startswith("http://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_offline_tour():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "offline simulator — replies are scripted" in out
    for part in (
        "1. Chat",
        "2. Streaming",
        "3. A tool call",
        "4. Vision",
        "5. A fallback",
        "6. A routed call",
        "7. Cost summary",
    ):
        assert part in out
    assert "served by claude-3-sonnet" in out and "task code -> deepseek-coder" in out


def test_demo_json():
    data = json.loads(run("demo", "--json").stdout)
    assert data["backend"] == "simulator" and data["fallback"]["fallback_index"] == 1
    assert data["costs"]["requests"] == 6 and data["costs"]["total_cost"] > 0


@pytest.mark.parametrize(
    ("fault", "code", "says"),
    [
        (Fault(status=401), 4, "AISA_API_KEY"),
        (Fault(status=402), 5, "add credits"),
        (Fault(status=429, retry_after=100_000), 7, "Rate limit"),  # longer than the CLI waits
        (Fault(status=503), 9, "retry, or configure a fallback"),
        (Fault(status=400, code="content_policy_violation"), 8, "content filter"),
    ],
)
def test_error_classes_exit_codes_and_one_line(sim, fault, code, says):
    sim.inject("*", fault)
    result = run("chat", "--message", "hi", sim=sim, env={"AISA_API_KEY": sim.api_key})
    assert result.returncode == code
    *waits, last = result.stderr.splitlines()
    assert last.startswith("error: ") and says in last  # the error, in one line
    assert all(w.startswith("aisa: ") and "before retrying" in w for w in waits)  # a 5xx is retried once, said
    assert sim.api_key not in result.stderr + result.stdout


def test_missing_key_and_unknown_model(sim):
    missing = run("chat", "--message", "hi", env={"AISA_BASE_URL": sim.base_url})
    assert missing.returncode == 3 and "AISA_API_KEY" in missing.stderr
    unknown = run("chat", "--model", "claude-3-opuss", "--message", "hi", sim=sim)
    assert unknown.returncode == 6 and "Did you mean 'claude-3-opus'" in unknown.stderr


def test_bad_input_exits_8(sim, tmp_path):
    assert run("chat", "--messages", "{not json", sim=sim).returncode == 8
    assert run("vision", "--image", str(tmp_path / "missing.png"), sim=sim).returncode == 8
    assert sim.requests == []


def test_version_and_help():
    assert run("--version").stdout.startswith("aisa-integrations ")
    helptext = run("--help").stdout
    for command in ("chat", "vision", "models", "compare", "route", "simulate", "demo"):
        assert command in helptext


def test_models_without_a_key_show_the_built_in_catalog():
    result = run("models")
    assert result.returncode == 0, result.stderr
    assert "gpt-4.1" in result.stdout and "built-in catalog" in result.stderr and "AISA_API_KEY" in result.stderr
    assert "grok" not in run("models", "--family", "claude").stdout


def test_json_errors_are_a_json_object_with_the_same_exit_codes(sim):
    sim.inject("*", Fault(status=402))
    result = run("chat", "--message", "hi", "--json", sim=sim)
    assert result.returncode == 5
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "InsufficientCreditsError" and error["exit_code"] == 5 and error["status"] == 402
    missing = run("chat", "--message", "hi", "--json")
    assert missing.returncode == 3 and json.loads(missing.stdout)["error"]["type"] == "MissingAPIKeyError"


def test_a_stream_cut_ends_the_partial_line_then_says_why(sim):
    sim.inject("*", Fault(drop_after=5))
    result = run("chat", "--message", "Tell me a story please", "--stream", sim=sim)
    assert result.returncode == 9
    assert result.stdout.startswith("Simulated") and result.stdout.endswith("\n")
    assert result.stderr.startswith("error: The stream was cut") and result.stderr.count("\n") == 1


def test_waiting_out_a_retry_after_is_said_on_stderr(sim):
    sim.inject("*", Fault(status=429, retry_after=0.2, times=1))
    result = run("chat", "--message", "hi", sim=sim)
    assert result.returncode == 0
    # Retry-After honoured, and never two attempts within 1.5 s: it says so before waiting
    assert "gpt-4.1 answered HTTP 429 (Retry-After: 0.2 s); waiting 1.5 s before retrying" in result.stderr


def test_timeout_is_an_option_of_every_command_that_calls_the_gateway(sim):
    sim.inject("*", Fault(delay=3))
    result = run("chat", "--message", "hi", "--timeout", "0.3", sim=sim, env={"AISA_API_KEY": sim.api_key})
    assert result.returncode == 9 and "timed out" in result.stderr
    for command in ("chat", "vision", "models", "compare"):
        assert "--timeout" in run(command, "--help").stdout


def test_a_base_url_that_is_an_endpoint_is_a_configuration_error(sim):
    result = run(
        "chat", "--message", "hi", env={"AISA_API_KEY": "k", "AISA_BASE_URL": sim.base_url + "/chat/completions"}
    )
    assert result.returncode == 3 and f"use '{sim.base_url}'" in result.stderr


def test_simulate_refuses_a_bad_or_busy_port_in_one_line(sim):
    for port, says in (("70000", "is not a port"), (str(sim.port), "cannot listen")):
        result = run("simulate", "--port", port, timeout=20)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr


def test_demo_says_what_it_talks_to(sim):
    data = json.loads(run("demo", "--json", sim=sim).stdout)
    assert data["backend"] == "local"  # a key is set, but the base URL is on this machine
    assert "a local gateway at" in run("demo", sim=sim).stdout
