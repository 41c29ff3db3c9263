"""``aisa demo``: the tour, live when ``AISA_API_KEY`` is set, else against the local simulator."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from .core.config import API_KEY_ENV, BASE_URL_ENV

OFFLINE_BANNER = "offline simulator — replies are scripted"


@contextlib.contextmanager
def demo_backend() -> Iterator[tuple[str, str, Any]]:
    """(kind, description, simulator or None), labelled by where the tour connects; sets AISA_* for
    the tour when it starts its own simulator."""
    if os.environ.get(API_KEY_ENV):
        from urllib.parse import urlparse

        from .core.config import resolve_base_url

        url = resolve_base_url()
        if urlparse(url).hostname in ("127.0.0.1", "localhost", "::1"):
            yield "local", f"a local gateway at {url} ({BASE_URL_ENV}; not the live AIsa API)", None
        else:
            yield "live", f"live AIsa API at {url}", None
        return
    from .testing import AIsaSimulator

    with AIsaSimulator() as sim, sim.environ():
        yield "simulator", f"{OFFLINE_BANNER} ({sim.base_url}; set {API_KEY_ENV} to go live)", sim


class _Out:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.summary: dict[str, Any] = {}

    def say(self, text: str = "") -> None:
        if not self.as_json:
            print(text, flush=True)

    def write(self, text: str) -> None:
        if not self.as_json:
            sys.stdout.write(text)
            sys.stdout.flush()


def run_demo(*, model: str = "gpt-4.1", stream_model: str = "claude-3-sonnet", as_json: bool = False) -> int:
    out = _Out(as_json)
    with demo_backend() as (kind, where, sim):
        out.say(f"AIsa demo — {where}")
        out.say(f"(base URL from {BASE_URL_ENV}, key from {API_KEY_ENV})")
        out.summary["backend"] = kind
        try:
            import langchain_core  # noqa: F401
        except ImportError:
            out.say('\n(LangChain is not installed: pip install "aisa-integrations[all]" for the full tour.)')
            _core_tour(out, model, stream_model)
        else:
            _langchain_tour(out, model, stream_model, sim)
    if as_json:
        print(json.dumps(out.summary, indent=2, default=str))
    else:
        out.say("\nDone.")
    return 0


def _core_tour(out: _Out, model: str, stream_model: str) -> None:
    from .core.chat import chat, stream_chat
    from .core.config import ClientConfig
    from .core.usage import parse_usage

    config = ClientConfig.resolve()
    out.say(f"\n1. Chat with {model}")
    completion = chat(
        config, {"model": model, "messages": [{"role": "user", "content": "Explain quantum computing in one line."}]}
    )
    usage = parse_usage(completion.get("usage"))
    out.say(f"   {completion['choices'][0]['message'].get('content')}")
    out.summary["chat"] = {"model": completion["model"], "cost": usage.cost if usage else None}
    out.say(f"\n2. Streaming from {stream_model}")
    out.write("   ")
    for chunk in stream_chat(
        config, {"model": stream_model, "messages": [{"role": "user", "content": "Write a haiku about AI."}]}
    ):
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                out.write(text)
    out.say()


def _langchain_tour(out: _Out, model: str, stream_model: str, sim: Any) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool

    from .langchain import AIsaChatModel, FallbackRunnable, TaskRouterRunnable, get_aisa_callback
    from .testing import Fault

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return f"22°C and sunny in {city}"

    with get_aisa_callback() as costs:
        out.say(f"\n1. Chat with {model}")
        llm = AIsaChatModel(model=model, temperature=0.2)
        reply = llm.invoke("Explain quantum computing in one sentence.")
        out.say(f"   {reply.content}")
        out.say(
            f"   served by {reply.response_metadata['model_name']}, {reply.usage_metadata['total_tokens']} tokens, "
            f"${reply.response_metadata.get('cost', 0):.6f}"
        )
        out.summary["chat"] = {"model": reply.response_metadata["model_name"], "content": reply.content}

        out.say(f"\n2. Streaming from {stream_model}")
        out.write("   ")
        streamed = ""
        for chunk in AIsaChatModel(model=stream_model).stream("Write a haiku about AI."):
            out.write(chunk.text)
            streamed += chunk.text
        out.say()
        out.summary["stream"] = {"model": stream_model, "content": streamed}

        out.say("\n3. A tool call")
        call = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("What's the weather in Tokyo?")
        tool_call = call.tool_calls[0]
        result = get_weather.invoke(tool_call["args"])
        out.say(f"   {tool_call['name']}({json.dumps(tool_call['args'])}) -> {result}")
        out.summary["tool_call"] = {"name": tool_call["name"], "args": tool_call["args"], "result": result}

        out.say("\n4. Vision")
        image = "https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_transparency_demonstration_1.png"
        seen = AIsaChatModel(model="gpt-4o").invoke(
            [
                HumanMessage(
                    content=[
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": image}},
                    ]
                )
            ]
        )
        out.say(f"   {seen.content}")
        out.summary["vision"] = {"model": "gpt-4o", "content": seen.content}

        out.say("\n5. A fallback")
        if sim is not None:
            sim.inject(model, Fault(status=503, times=2))
            out.say(f"   (simulating an outage of {model}: two 503s)")
        fallback = FallbackRunnable([model, stream_model, "gemini-2.0-flash"], first_token_timeout=10)
        answer = fallback.invoke("Give me one tip for reliable systems.")
        report = answer.response_metadata["aisa"]
        for attempt in report["attempts"]:
            detail = f" {attempt['error_type']} {attempt['status']}" if attempt["outcome"] == "error" else ""
            out.say(f"   attempt {attempt['model']}: {attempt['outcome']}{detail} ({attempt['latency_ms']:.0f} ms)")
        out.say(f"   served by {report['served_model']}: {answer.content[:80]}")
        out.summary["fallback"] = report

        out.say("\n6. A routed call")
        router = TaskRouterRunnable()
        routed = router.invoke("Write a Python function that checks whether a number is prime.")
        route = routed.response_metadata["aisa_route"]
        out.say(f"   task {route['task']} -> {route['model']} ({route['reason']})")
        out.summary["route"] = route

    out.say("\n7. Cost summary")
    for line in str(costs).splitlines():
        out.say(f"   {line}")
    out.summary["costs"] = costs.summary()
