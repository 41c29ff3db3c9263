"""``aisa demo``: the tour, live when ``AISA_API_KEY`` is set, else against the local simulator."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from .core.config import API_KEY_ENV, BASE_URL_ENV


@contextlib.contextmanager
def demo_backend() -> Iterator[tuple[str, Any]]:
    """(description, simulator or None); sets AISA_* for the tour when running offline."""
    if os.environ.get(API_KEY_ENV):
        from .core.config import resolve_base_url

        yield f"live AIsa API at {resolve_base_url()}", None
        return
    from .testing import AIsaSimulator

    with AIsaSimulator() as sim, sim.environ():
        yield f"offline simulator at {sim.base_url} — replies are scripted (set {API_KEY_ENV} to go live)", sim


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(*, model: str = "gpt-4.1", stream_model: str = "claude-3-sonnet") -> int:
    from .core import ClientConfig, create_chat_completion, parse_usage, stream_chat_completion

    with demo_backend() as (where, _sim):
        _say(f"AIsa demo — {where}")
        _say(f"(base URL from {BASE_URL_ENV}, key from {API_KEY_ENV})")
        config = ClientConfig.resolve()

        _say(f"\n1. Chat with {model}")
        completion = create_chat_completion(
            config,
            {
                "model": model,
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "Explain quantum computing in one sentence."},
                ],
                "max_tokens": 200,
            },
        )
        usage = parse_usage(completion.usage)
        _say(f"   {completion.choices[0].message.content}")
        if usage:
            _say(f"   served by {completion.model}: {usage.total_tokens} tokens, cost ${usage.cost or 0:.6f}")

        _say(f"\n2. Streaming from {stream_model}")
        sys.stdout.write("   ")
        last = None
        for chunk in stream_chat_completion(
            config, {"model": stream_model, "messages": [{"role": "user", "content": "Write a haiku about AI."}]}
        ):
            for choice in chunk.choices:
                if choice.delta.content:
                    sys.stdout.write(choice.delta.content)
                    sys.stdout.flush()
            if chunk.usage is not None:
                last = parse_usage(chunk.usage)
        _say()
        if last:
            _say(f"   {last.total_tokens} tokens, cost ${last.cost or 0:.6f}, credits left {last.credits_remaining}")
        _say("\nDone.")
    return 0
