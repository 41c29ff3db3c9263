"""Benchmarks: overhead, streaming, concurrency, fail-over, routing and import time, side by side.

    python benchmarks/run.py            # ~1 min on 2 cores; prints a markdown table
    python benchmarks/run.py --quick    # fewer iterations

The AIsa simulator runs in a separate process on loopback with no added latency (unless a case
says otherwise), so the figures are client-side overhead: every row is measured in the same run and
the ratios are against the raw openai SDK doing the same thing. ``langchain-openai`` (below 1.7,
the releases that fit openai 3.x) is measured when installed: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from typing import Any

KEY = "bench-key"
SHORT = "pong " * 4
TWELVE = " ".join(f"w{i}" for i in range(12))
FIVE_HUNDRED = " ".join(f"w{i}" for i in range(500))
TEN_THOUSAND = " ".join(f"w{i}" for i in range(10_000))
HUNDRED = " ".join(f"w{i}" for i in range(100))
TWO_THOUSAND = " ".join(f"w{i}" for i in range(2_000))
MODELS = {
    "invoke": "gpt-4o",
    "s12": "gpt-4o-mini",
    "s500": "gpt-4.1",
    "s10k": "gemini-2.0-flash",
    "slow": "qwen-max",
    "s100": "claude-3-5-sonnet",
    "s2000": "claude-3-opus",
}


class Simulator:
    """The simulator in its own process (so its work does not share our GIL)."""

    def __enter__(self) -> Simulator:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aisa_integrations.testing",
                "--port",
                "0",
                "--api-key",
                KEY,
                "--json",
                "--credits",
                "1e12",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]
        self.root = self.base_url.rsplit("/v1", 1)[0]
        for key, text in (
            ("invoke", SHORT),
            ("s12", TWELVE),
            ("s500", FIVE_HUNDRED),
            ("s10k", TEN_THOUSAND),
            ("slow", SHORT),
            ("s100", HUNDRED),
            ("s2000", TWO_THOUSAND),
        ):
            self.control("/_simulator/script", {"model": MODELS[key], "reply": {"content": text}, "persistent": True})
        return self

    def control(self, path: str, payload: dict[str, Any], method: str = "POST") -> None:
        request = urllib.request.Request(
            self.root + path,
            data=json.dumps(payload).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
        )
        urllib.request.urlopen(request).read()

    def stats(self) -> dict[str, Any]:
        request = urllib.request.Request(self.root + "/_simulator/stats", headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def median_ms(fn: Callable[[], Any], n: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def interleaved(fns: dict[str, Callable[[], Any]], n: int, warmup: int = 20) -> dict[str, float]:
    """Median ms per function, the functions taking turns so machine noise hits them all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def overhead(sim: Simulator, n: int) -> list[list[str]]:
    import openai
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from llama_index.core.base.llms.types import ChatMessage

    from aisa_integrations import AIsaChatModel, AIsaLLM

    raw = openai.OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    messages = [{"role": "user", "content": "ping"}]

    def raw_invoke(model: str) -> Callable[[], Any]:
        return lambda: raw.chat.completions.create(model=model, messages=messages)

    def raw_stream(model: str) -> Callable[[], Any]:
        def run() -> None:
            for _ in raw.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            ):
                pass

        return run

    def lc(model: str) -> AIsaChatModel:
        return AIsaChatModel(model=model, api_key=KEY, base_url=sim.base_url, max_retries=0)

    def li(model: str) -> AIsaLLM:
        return AIsaLLM(model=model, api_key=KEY, api_base=sim.base_url, max_retries=0)

    def drain(iterable: Any) -> None:
        for _ in iterable:
            pass

    li_messages = [ChatMessage(role="user", content="ping")]
    candidates: dict[str, dict[str, Callable[[], Any]]] = {}
    for case, model in (
        ("invoke", MODELS["invoke"]),
        ("12-chunk stream", MODELS["s12"]),
        ("500-chunk stream", MODELS["s500"]),
    ):
        streaming = case != "invoke"
        row: dict[str, Callable[[], Any]] = {
            "raw openai SDK": raw_stream(model) if streaming else raw_invoke(model),
        }
        chat = lc(model)
        row["AIsaChatModel"] = (
            (lambda c=chat: drain(c.stream("ping"))) if streaming else (lambda c=chat: c.invoke("ping"))
        )
        llm = li(model)
        row["AIsaLLM"] = (
            (lambda m=llm: drain(m.stream_chat(li_messages))) if streaming else (lambda m=llm: m.chat(li_messages))
        )
        try:
            from langchain_openai import ChatOpenAI

            openai_chat = ChatOpenAI(model=model, api_key=KEY, base_url=sim.base_url, max_retries=0, stream_usage=True)
            row["ChatOpenAI (langchain-openai)"] = (
                (lambda c=openai_chat: drain(c.stream("ping")))
                if streaming
                else (lambda c=openai_chat: c.invoke("ping"))
            )
        except ImportError:
            pass
        text = {"invoke": SHORT, "12-chunk stream": TWELVE, "500-chunk stream": FIVE_HUNDRED}[case]
        fake = FakeListChatModel(responses=[text])
        row["FakeListChatModel (no network)"] = (
            (lambda f=fake: drain(f.stream("ping"))) if streaming else (lambda f=fake: f.invoke("ping"))
        )
        candidates[case] = row
    rows = []
    for case, fns in candidates.items():
        iterations = n if case != "500-chunk stream" else max(20, n // 5)
        results = interleaved(fns, iterations)
        base = results["raw openai SDK"]
        for name, ms in results.items():
            ratio = "1.00×" if name == "raw openai SDK" else f"{ms / base:.2f}×"
            rows.append([case, name, f"{ms:.3f} ms", ratio if "Fake" not in name else f"({ms / base:.2f}× of raw)"])
    return rows


def concurrency(sim: Simulator) -> list[list[str]]:
    import openai

    from aisa_integrations import AIsaChatModel

    sim.control("/_simulator/latency", {"seconds": 0.05, "model": MODELS["slow"]})
    llm = AIsaChatModel(model=MODELS["slow"], api_key=KEY, base_url=sim.base_url, max_retries=0)

    async def ours() -> float:
        await llm.abatch(["warm"] * 10, config={"max_concurrency": 10})
        start = time.perf_counter()
        await llm.abatch([f"q{i}" for i in range(200)], config={"max_concurrency": 50})
        return time.perf_counter() - start

    async def raw() -> float:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
        gate = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(
                    model=MODELS["slow"], messages=[{"role": "user", "content": f"q{i}"}]
                )

        await asyncio.gather(*(one(i) for i in range(10)))
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(200)))
        wall = time.perf_counter() - start
        await client.close()
        return wall

    async def chat_openai() -> float:
        # Its own httpx client per event loop: langchain-openai shares one process-wide, which fails
        # ("Event loop is closed") as soon as a second asyncio.run uses it.
        import httpx2
        from langchain_openai import ChatOpenAI

        other = ChatOpenAI(
            model=MODELS["slow"],
            api_key=KEY,
            base_url=sim.base_url,
            max_retries=0,
            http_async_client=httpx2.AsyncClient(),
        )
        await other.abatch(["warm"] * 10, config={"max_concurrency": 10})
        start = time.perf_counter()
        await other.abatch([f"q{i}" for i in range(200)], config={"max_concurrency": 50})
        return time.perf_counter() - start

    ideal = math.ceil(200 / 50) * 0.05
    rows = []
    cases: list[tuple[str, Any]] = [("raw AsyncOpenAI + semaphore", raw), ("AIsaChatModel.abatch", ours)]
    try:
        import langchain_openai  # noqa: F401

        cases.append(("ChatOpenAI.abatch (same framework)", chat_openai))
    except ImportError:
        pass
    # Three rounds, the clients taking turns, so a noisy moment on a 2-core machine hits them all alike.
    walls: dict[str, list[float]] = {name: [] for name, _ in cases}
    cpus: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(3):
        for name, fn in cases:
            cpu = time.process_time()
            walls[name].append(asyncio.run(fn()))
            cpus[name].append((time.process_time() - cpu) / 210)  # 10 warm-up + 200 calls; the simulator is elsewhere
    for name, _ in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        rows.append(
            [
                f"200 requests, 50 ms server latency, 50 at a time: {name}",
                f"{wall * 1e3:.0f} ms",
                f"ideal {ideal * 1e3:.0f} ms ({wall / ideal:.2f}×); client CPU {cpu * 1e3:.2f} ms per call",
            ]
        )
    return rows


def fallback(sim: Simulator, n: int) -> list[list[str]]:
    from aisa_integrations import AIsaChatModel, FallbackRunnable
    from aisa_integrations.core.breakers import breakers

    primary, secondary = "grok-2", "grok-beta"
    sim.control("/_simulator/script", {"model": secondary, "reply": {"content": SHORT}, "persistent": True})
    sim.control("/_simulator/faults", {"model": primary, "status": 503})
    # FallbackRunnable streams under the hood (to catch a silent model at first_token_timeout), so the
    # fair baseline is the same model streaming under invoke.
    direct_ok = AIsaChatModel(model=secondary, api_key=KEY, base_url=sim.base_url, max_retries=0, streaming=True)
    direct_fail = AIsaChatModel(model=primary, api_key=KEY, base_url=sim.base_url, max_retries=0)

    def failing() -> None:
        with contextlib.suppress(Exception):
            direct_fail.invoke("x")

    no_breaker = FallbackRunnable(
        [primary, secondary], api_key=KEY, base_url=sim.base_url, circuit_breaker=False, server_retries=0
    )
    timings = interleaved(
        {"fallback": lambda: no_breaker.invoke("x"), "ok": lambda: direct_ok.invoke("x"), "fail": failing}, n
    )
    added = timings["fallback"] - timings["ok"] - timings["fail"]

    breakers.reset()
    open_circuit = FallbackRunnable(
        [primary, secondary], api_key=KEY, base_url=sim.base_url, failure_threshold=1, cooldown=3600, max_cooldown=3600
    )
    open_circuit.invoke("x")  # opens the primary's circuit
    only_secondary = FallbackRunnable([secondary], api_key=KEY, base_url=sim.base_url)
    skip = interleaved(
        {
            "skip": lambda: open_circuit.invoke("x"),
            "ok": lambda: only_secondary.invoke("x"),
            "direct": lambda: direct_ok.invoke("x"),
        },
        n,
    )
    skip_cost = skip["skip"] - skip["ok"]
    wrapper_cost = skip["ok"] - skip["direct"]

    sim.control("/_simulator/faults", {}, method="DELETE")
    sim.control("/_simulator/faults", {"model": primary, "delay": 60})
    breakers.reset()
    silent = FallbackRunnable(
        [primary, secondary], api_key=KEY, base_url=sim.base_url, first_token_timeout=1.0, circuit_breaker=False
    )
    start = time.perf_counter()
    silent.invoke("x")
    to_answer = time.perf_counter() - start
    sim.control("/_simulator/faults", {}, method="DELETE")
    return [
        ["fail-over added beyond the failed attempt (503, no retry)", f"{added:.2f} ms", "≤ 5 ms"],
        ["skipping an open circuit (vs the same runnable without the dead model)", f"{skip_cost:.3f} ms", "< 1 ms"],
        ["the FallbackRunnable layer itself (vs the model streaming directly)", f"{wrapper_cost:.3f} ms", "—"],
        [
            "time to an answer when the primary never responds (first_token_timeout=1 s)",
            f"{to_answer * 1e3:.0f} ms",
            "≈ the timeout",
        ],
    ]


def connections(sim: Simulator) -> list[list[str]]:
    """New TCP connections per sync stream, counted at the server, after a first (warm) stream."""
    import openai
    from llama_index.core.base.llms.types import ChatMessage

    from aisa_integrations import AIsaChatModel, AIsaLLM

    raw = openai.OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    chat = AIsaChatModel(model=MODELS["s12"], api_key=KEY, base_url=sim.base_url, max_retries=0)
    llm = AIsaLLM(model=MODELS["s12"], api_key=KEY, api_base=sim.base_url, max_retries=0)
    cases: dict[str, Callable[[], Any]] = {
        "raw openai SDK": lambda: list(
            raw.chat.completions.create(model=MODELS["s12"], messages=[{"role": "user", "content": "x"}], stream=True)
        ),
        "AIsaChatModel.stream": lambda: list(chat.stream("x")),
        "AIsaLLM.stream_chat": lambda: list(llm.stream_chat([ChatMessage(role="user", content="x")])),
    }
    try:
        from langchain_openai import ChatOpenAI

        other = ChatOpenAI(model=MODELS["s12"], api_key=KEY, base_url=sim.base_url, max_retries=0)
        cases["ChatOpenAI.stream"] = lambda: list(other.stream("x"))
    except ImportError:
        pass
    rows = []
    for name, fn in cases.items():
        fn()  # warm: the first stream opens the pool's connection
        before = sim.stats()["connections"]
        for _ in range(20):
            fn()
        opened = (sim.stats()["connections"] - before - 1) / 20  # minus the stats request's own connection
        rows.append([f"new TCP connections per sync stream: {name}", f"{opened:.2f}", "0"])
    return rows


def long_streams(sim: Simulator, n: int) -> list[list[str]]:
    """The marginal cost of a chunk in a 100-chunk and a 2,000-chunk stream (linear: the same).

    Each stream's fixed cost is taken out with a 12-chunk stream; the raw SDK's row shows what the
    simulator and the socket alone contribute.
    """
    import openai
    from llama_index.core.base.llms.types import ChatMessage

    from aisa_integrations import AIsaChatModel, AIsaLLM

    def drain(iterable: Any) -> None:
        for _ in iterable:
            pass

    raw = openai.OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)

    def raw_stream(model: str) -> Callable[[], Any]:
        return lambda: drain(
            raw.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
        )

    def chat_stream(model: str) -> Callable[[], Any]:
        chat = AIsaChatModel(model=model, api_key=KEY, base_url=sim.base_url)
        return lambda: drain(chat.stream("x"))

    def llm_stream(model: str) -> Callable[[], Any]:
        llm = AIsaLLM(model=model, api_key=KEY, api_base=sim.base_url)
        return lambda: drain(llm.stream_chat([ChatMessage(role="user", content="x")]))

    rows = []
    for name, make in (
        ("raw openai SDK (reference)", raw_stream),
        ("AIsaChatModel.stream", chat_stream),
        ("AIsaLLM.stream_chat", llm_stream),
    ):
        timings = interleaved(
            {"12": make(MODELS["s12"]), "100": make(MODELS["s100"]), "2000": make(MODELS["s2000"])},
            max(15, n // 15),
            warmup=3,
        )
        per_100 = (timings["100"] - timings["12"]) / (100 - 12) * 1e3
        per_2000 = (timings["2000"] - timings["12"]) / (2000 - 12) * 1e3
        rows.append(
            [
                f"marginal cost per chunk, 100 vs 2,000 chunks: {name}",
                f"{per_100:.1f} µs vs {per_2000:.1f} µs ({per_2000 / per_100:.2f}×)",
                "same ±20 %",
            ]
        )
    return rows


def event_loops(sim: Simulator, n: int) -> list[list[str]]:
    """``asyncio.run(llm.ainvoke(...))`` per call: the set-up a new event loop costs after the first.

    ``asyncio.run`` itself does work per call that depends on the result: on Python 3.11, checking its
    SIGINT handler formats an error message holding the finished task, so the result (here an
    ``AIMessage``) is repr'd. That part is measured apart (the same message returned without any
    request) and shown separately; the set-up is what remains: a new pool and its TCP connection.
    """
    from aisa_integrations import AIsaChatModel

    llm = AIsaChatModel(model=MODELS["invoke"], api_key=KEY, base_url=sim.base_url, max_retries=0)
    message = asyncio.run(llm.ainvoke("first"))

    async def same_message() -> Any:
        return message

    async def in_one_loop(count: int) -> list[float]:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await llm.ainvoke("x")
            samples.append(time.perf_counter() - start)
        return samples

    count = max(20, n // 5)
    fresh = median_ms(lambda: asyncio.run(llm.ainvoke("x")), count, warmup=3)
    same = statistics.median(asyncio.run(in_one_loop(count))) * 1e3
    runner = median_ms(lambda: asyncio.run(same_message()), count, warmup=3)
    return [
        ["set-up per `asyncio.run(llm.ainvoke(...))` after the first", f"{fresh - same - runner:.2f} ms", "≤ 3 ms"],
        ["(asyncio.run's own work per call for that result, not counted above)", f"{runner:.2f} ms", "—"],
    ]


def first_answer(sim: Simulator) -> list[list[str]]:
    """Time to the first answer in a fresh interpreter: import, construct, one call."""
    ours = (
        "import time; t = time.perf_counter(); from aisa_integrations import AIsaChatModel; "
        f"AIsaChatModel(model='gpt-4o', api_key='{KEY}', base_url='{sim.base_url}').invoke('hi'); "
        "print(time.perf_counter() - t)"
    )
    theirs = (
        "import time; t = time.perf_counter(); from langchain_openai import ChatOpenAI; "
        f"ChatOpenAI(model='gpt-4o', api_key='{KEY}', base_url='{sim.base_url}').invoke('hi'); "
        "print(time.perf_counter() - t)"
    )
    rows = []
    for name, code in (("AIsaChatModel", ours), ("ChatOpenAI (langchain-openai)", theirs)):
        try:
            samples = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)]
        except subprocess.CalledProcessError:
            continue
        rows.append(
            [
                f"time to the first answer in a fresh interpreter: {name}",
                f"{statistics.median(samples) * 1e3:.0f} ms",
                "—",
            ]
        )
    return rows


def routing(n: int) -> list[list[str]]:
    import json

    from aisa_integrations.core import lexical
    from aisa_integrations.core.classifier import classify_task
    from aisa_integrations.core.routing import Requirements, TaskRouter

    corpus = os.path.join(os.path.dirname(__file__), "..", "training", "routing", "heldout.jsonl")
    with open(corpus, encoding="utf-8") as handle:
        prompts = [json.loads(line)["text"] for line in handle]  # timing only: nothing is tuned here

    start = time.perf_counter()
    lexical.LexicalModel.builtin()
    load = time.perf_counter() - start

    def timed(fn: Any) -> list[float]:
        samples = []
        for prompt in prompts:
            start = time.perf_counter()
            fn(prompt)
            samples.append(time.perf_counter() - start)
        return samples

    lexical.LexicalModel.builtin()._words.clear()
    cold = timed(classify_task)  # each prompt once, the word cache filling as it goes
    warm = [t for _ in range(max(1, n // 100)) for t in timed(classify_task)]
    router = TaskRouter({"code": ["deepseek-coder", "gpt-4.1"]})
    needs = Requirements(tools=True, prompt_tokens=500)
    decide = [t for _ in range(max(1, n // 100)) for t in timed(lambda p: router.decide(p, needs=needs))]
    earlier = ["my flask route returns 500 when I post json", "use request.get_json()"]
    sticky = timed(lambda p: router.decide(p, needs=needs, earlier=earlier))

    def median_us(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1e6:.1f} µs"

    return [
        ["classifier: load the shipped model (once per process, on first use)", f"{load * 1e3:.1f} ms", "—"],
        ["classifier decision, median over the held-out prompts, first pass (cold cache)", median_us(cold), "≤ 50 µs"],
        ["classifier decision, median, later passes", median_us(warm), "≤ 50 µs"],
        ["routing decision (classify + route + capability checks), median", median_us(decide), "≤ 50 µs"],
        ["routing decision in a conversation (two earlier turns, sticky), median", median_us(sticky), "—"],
    ]


def import_time() -> list[list[str]]:
    code = "import time; t = time.perf_counter(); import aisa_integrations; print(time.perf_counter() - t)"
    samples = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(7)]
    first_use = (
        "import time; t = time.perf_counter(); from aisa_integrations import AIsaChatModel; "
        "print(time.perf_counter() - t)"
    )
    langchain = [float(subprocess.check_output([sys.executable, "-c", first_use], text=True)) for _ in range(3)]
    sdk = "import time; t = time.perf_counter(); import openai; print(time.perf_counter() - t)"
    raw = [float(subprocess.check_output([sys.executable, "-c", sdk], text=True)) for _ in range(3)]
    return [
        ["`import aisa_integrations`", f"{statistics.median(samples) * 1e3:.1f} ms", "≤ 100 ms"],
        [
            "`from aisa_integrations import AIsaChatModel` (imports openai + langchain-core)",
            f"{statistics.median(langchain) * 1e3:.0f} ms",
            f"(`import openai` alone: {statistics.median(raw) * 1e3:.0f} ms)",
        ],
    ]


def memory(sim: Simulator) -> list[list[str]]:
    import openai
    from llama_index.core.base.llms.types import ChatMessage

    from aisa_integrations import AIsaChatModel, AIsaLLM

    raw = openai.OpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    chat = AIsaChatModel(model=MODELS["s10k"], api_key=KEY, base_url=sim.base_url, max_retries=0)
    llm = AIsaLLM(model=MODELS["s10k"], api_key=KEY, api_base=sim.base_url, max_retries=0)

    def peak(fn: Callable[[], Any]) -> float:
        gc.collect()
        tracemalloc.start()
        fn()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top / 1e6

    def drain(iterable: Any) -> None:
        for _ in iterable:
            pass

    rows = []
    for name, fn in (
        (
            "raw openai SDK",
            lambda: drain(
                raw.chat.completions.create(
                    model=MODELS["s10k"], messages=[{"role": "user", "content": "x"}], stream=True
                )
            ),
        ),
        ("AIsaChatModel.stream", lambda: drain(chat.stream("x"))),
        ("AIsaLLM.stream_chat", lambda: drain(llm.stream_chat([ChatMessage(role="user", content="x")]))),
    ):
        rows.append([f"peak traced memory, 10,000-chunk stream: {name}", f"{peak(fn):.2f} MB", "flat"])
    try:
        from langchain_openai import ChatOpenAI

        openai_chat = ChatOpenAI(model=MODELS["s10k"], api_key=KEY, base_url=sim.base_url, max_retries=0)
        rows.append(
            [
                "peak traced memory, 10,000-chunk stream: ChatOpenAI.stream (same framework)",
                f"{peak(lambda: drain(openai_chat.stream('x'))):.2f} MB",
                "—",
            ]
        )
    except ImportError:
        pass
    return rows


def shared_state(sim: Simulator, n: int) -> list[list[str]]:
    """Per call: a model with a fallback (breakers), a budget and a rate limiter, its state in memory
    vs in a local Redis server (real redis-server, loopback), side by side; then the store steps alone."""
    from aisa_integrations import AIsaChatModel, SharedBudget
    from aisa_integrations.core.breakers import BreakerSettings, CircuitBreaker
    from aisa_integrations.core.state import MemoryStore, RedisStore, configure_state
    from aisa_integrations.langchain import AIsaRateLimiter
    from aisa_integrations.testing.redis_server import RedisServer

    with RedisServer() as server:
        stores = {"memory": MemoryStore(), "redis": RedisStore(server.url)}

        def model_on(store: Any) -> AIsaChatModel:
            return AIsaChatModel(
                model="gpt-4o",
                fallback_models=["gpt-4o-mini"],
                budget=SharedBudget("bench", max_cost=1e9, store=store),
                rate_limiter=AIsaRateLimiter(requests_per_minute=1e9, tokens_per_minute=1e12, store=store),
                api_key=KEY,
                base_url=sim.base_url,
            )

        models = {name: model_on(store) for name, store in stores.items()}
        plain = AIsaChatModel(model="gpt-4o", api_key=KEY, base_url=sim.base_url)

        def call(name: str) -> Callable[[], Any]:
            def run() -> Any:
                configure_state(stores[name])  # the breakers follow the configured store
                return models[name].invoke("x")

            return run

        timings = interleaved({"plain": lambda: plain.invoke("x"), "memory": call("memory"), "redis": call("redis")}, n)

        def steps(store: Any) -> Callable[[], Any]:
            breaker = CircuitBreaker(store=store, key="breaker:bench")
            budget = SharedBudget("steps", max_cost=1e9, store=store)
            limiter = AIsaRateLimiter(requests_per_minute=1e9, store=store).limiter
            settings = BreakerSettings()

            def run() -> None:
                limiter.acquire()
                budget.check()
                permit = breaker.acquire(settings)
                permit.success()
                budget.record("gpt-4o", None)

            return run

        alone = interleaved({name: steps(store) for name, store in stores.items()}, n)
        configure_state("memory")
    return [
        ["invoke, one model, no shared state (baseline)", f"{timings['plain']:.3f} ms", "—"],
        ["invoke with fallback + budget + rate limiter, memory store", f"{timings['memory']:.3f} ms", "—"],
        ["the same, Redis store (local redis-server)", f"{timings['redis']:.3f} ms", "—"],
        ["Redis store's added cost per call (vs memory)", f"{timings['redis'] - timings['memory']:.3f} ms", "< 1 ms"],
        ["store steps of one call alone: memory", f"{alone['memory']:.4f} ms", "—"],
        ["store steps of one call alone: Redis", f"{alone['redis']:.4f} ms", "—"],
    ]


def table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only",
        choices=["routing", "state"],
        help="run one section (routing needs no simulator; state needs redis-server)",
    )
    args = parser.parse_args()
    n = 60 if args.quick else 300
    out = [f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; medians; simulator in a separate process.\n"]
    if args.only == "routing":
        rows = routing(n) + import_time()
        print("\n".join([*out, table("Routing and import", ["case", "measured", "target"], rows)]))
        return
    if args.only == "state":
        with Simulator() as sim:
            print("\n".join([*out, table("Shared state", ["case", "measured", "target"], shared_state(sim, n))]))
        return
    with Simulator() as sim:
        out.append(table("Per-call latency on loopback", ["case", "client", "median", "vs raw SDK"], overhead(sim, n)))
        out.append(table("Concurrency", ["case", "wall time", "ideal"], concurrency(sim)))
        out.append(
            table(
                "Connections, long streams, event loops, first answer",
                ["case", "measured", "target"],
                connections(sim) + long_streams(sim, n) + event_loops(sim, n) + first_answer(sim),
            )
        )
        out.append(table("Fallback", ["case", "measured", "target"], fallback(sim, max(30, n // 3))))
        out.append(table("Memory", ["case", "measured", "target"], memory(sim)))
        out.append(table("Shared state", ["case", "measured", "target"], shared_state(sim, n)))
    out.append(table("Routing and import", ["case", "measured", "target"], routing(n) + import_time()))
    print("\n".join(out))


if __name__ == "__main__":
    main()
