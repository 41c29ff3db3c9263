"""The `aisa` command, run as a user would: a subprocess against the local simulator."""

from __future__ import annotations

import os
import subprocess
import sys

AISA = [sys.executable, "-m", "aisa_integrations.cli"]


def run(*args, env=None, timeout=60):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AISA_", "OPENAI_"))}
    return subprocess.run([*AISA, *args], capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})


def test_demo_runs_offline_and_says_so():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert "offline simulator" in result.stdout and "replies are scripted" in result.stdout
    assert "1. Chat with gpt-4.1" in result.stdout and "2. Streaming from claude-3-sonnet" in result.stdout
    assert "cost $" in result.stdout


def test_demo_error_is_one_clear_line_and_non_zero():
    result = run("demo", "--model", "gpt4o")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Did you mean 'gpt-4o'" in result.stderr


def test_simulate_serves_until_stopped():
    proc = subprocess.Popen([*AISA, "simulate", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("AIsa simulator listening on http://127.0.0.1:")
        assert "export AISA_BASE_URL=" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)


def test_version_and_help():
    assert run("--version").stdout.startswith("aisa-integrations ")
    assert "demo" in run("--help").stdout
