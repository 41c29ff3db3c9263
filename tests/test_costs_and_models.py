"""Cost tracking (LangChain and LlamaIndex), model listing and comparison, exact under concurrency."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from llama_index.core.callbacks import CallbackManager

from aisa_integrations import (
    AIsaChatModel,
    AIsaCostHandler,
    AIsaLLM,
    FallbackRunnable,
    TaskRouterRunnable,
    compare_chat_models,
    compare_models,
    get_aisa_callback,
    list_models,
)
from aisa_integrations.core import ClientConfig
from aisa_integrations.core.costs import CostTracker
from aisa_integrations.core.usage import Usage
from aisa_integrations.testing import Fault


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def billed(sim):
    return [r for r in sim.chat_requests() if r.billed_cost is not None]


def test_tracker_unit():
    tracker = CostTracker()
    tracker.record("a", Usage(prompt_tokens=1, completion_tokens=2, cost=0.5, credits_remaining=9))
    tracker.record("a", Usage(prompt_tokens=0, completion_tokens=0, cost=0.0, credits_remaining=9.5))  # arrived late
    tracker.record("a", None)
    tracker.record("b", Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7, cost=0.25))
    assert (tracker.requests, tracker.total_tokens, tracker.total_cost, tracker.credits_remaining) == (4, 10, 0.75, 9)
    assert tracker.by_model["a"].unpriced_requests == 1 and tracker.by_model["b"].cost == 0.25
    assert "Total cost (USD): $0.750000" in str(tracker)


def test_langchain_callback_totals_equal_the_bill(sim):
    llm = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url)
    with get_aisa_callback() as cb:
        llm.invoke("one")
        list(llm.stream("two"))
        llm.batch(["three", "four"])
    assert cb.requests == 4 == len(billed(sim))
    assert cb.total_cost == pytest.approx(sim.total_billed)
    assert cb.total_tokens == sum(r.usage["total_tokens"] for r in billed(sim))
    assert cb.credits_remaining == pytest.approx(sim.credits)
    llm.invoke("outside the block")
    assert cb.requests == 4


def test_fallback_router_and_agent_are_counted_once_per_billed_attempt(sim):
    sim.inject("gpt-4.1", Fault(status=503, times=2))
    fallback = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url)
    router = TaskRouterRunnable(api_key=sim.api_key, base_url=sim.base_url)
    agent = create_agent(AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url), tools=[multiply])
    with get_aisa_callback() as cb:
        fallback.invoke("hi")
        router.invoke("Write a haiku")
        agent.invoke({"messages": [("user", "Multiply 6 by 7")]})
    assert cb.requests == len(billed(sim)) == 4  # fallback's served attempt, the routed call, two agent turns
    assert cb.total_cost == pytest.approx(sim.total_billed)
    assert set(cb.by_model) == {"claude-3-sonnet", "claude-3-opus", "gpt-4o"}


async def test_exact_under_100_concurrent_async_calls(sim):
    llm = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)
    with get_aisa_callback() as cb:
        await asyncio.gather(*(llm.ainvoke(f"call {i}") for i in range(100)))
    assert cb.requests == 100
    assert cb.total_cost == pytest.approx(sim.total_billed, abs=1e-12)
    assert cb.prompt_tokens == sum(r.usage["prompt_tokens"] for r in billed(sim))


def test_exact_across_threads(sim):
    llm = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)
    with get_aisa_callback() as cb:
        llm.batch([f"t{i}" for i in range(40)], config={"max_concurrency": 16})
    assert cb.requests == 40 and cb.total_cost == pytest.approx(sim.total_billed)


async def test_llama_index_handler_exact_under_concurrency_and_fallback(sim):
    costs = AIsaCostHandler()
    llm = AIsaLLM(
        model="gpt-4o-mini", api_key=sim.api_key, api_base=sim.base_url, callback_manager=CallbackManager([costs])
    )
    await asyncio.gather(*(llm.acomplete(f"call {i}") for i in range(100)))
    list(llm.stream_complete("streamed"))
    sim.inject("gpt-4.1", Fault(status=503))
    fallback = AIsaLLM(
        model="gpt-4.1",
        fallback_models=["claude-3-sonnet"],
        api_key=sim.api_key,
        api_base=sim.base_url,
        callback_manager=CallbackManager([costs]),
    )
    fallback.complete("hi")
    assert costs.requests == 102 == len(billed(sim))
    assert costs.total_cost == pytest.approx(sim.total_billed)
    assert costs.by_model["claude-3-sonnet"].requests == 1
    assert costs.credits_remaining is not None


def test_list_models_merges_the_gateway_and_the_catalog(sim):
    sim.add_model("qwen3-coder")
    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
    models = {m.id: m for m in list_models(config)}
    assert models["gpt-4o"].vision and models["qwen3-coder"].known is False
    assert {m.family for m in list_models(config, family="claude")} == {"claude"}


def test_compare_three_models_concurrently_under_400_ms(sim):
    sim.set_latency(0.2)
    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
    compare_models(["gpt-4.1"], "warm up", config=config)  # connection set-up is not what is measured
    start = time.perf_counter()
    results = compare_models(["gpt-4.1", "claude-3-sonnet", "gemini-2.0-flash"], "What is 2+2?", config=config)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.4, elapsed
    for model, result in results.items():
        assert result.ok and result.response and result.latency_s >= 0.2
        assert result.ttft_s is not None and result.ttft_s <= result.latency_s
        assert result.total_tokens > 0 and result.cost > 0 and result.model == model


def test_compare_reports_errors_per_model(sim):
    sim.inject("claude-3-sonnet", Fault(status=503))
    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url, max_retries=0)
    results = compare_models(["gpt-4.1", "claude-3-sonnet"], "hi", config=config)
    assert results["gpt-4.1"].ok and results["claude-3-sonnet"].error_type == "ServerError"


def test_compare_chat_models_from_langchain(sim):
    models = [AIsaChatModel(model=m, api_key=sim.api_key, base_url=sim.base_url) for m in ("gpt-4.1", "qwen-max")]
    results = compare_chat_models(models, "Hello")
    assert list(results) == ["gpt-4.1", "qwen-max"]
    assert all(r.ok and r.cost > 0 and r.ttft_s is not None for r in results.values())


def test_tracker_is_thread_safe():
    tracker = CostTracker()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: tracker.record("m", Usage(prompt_tokens=1, completion_tokens=1, cost=0.001)), range(1000)
            )
        )
    assert tracker.requests == 1000 and tracker.total_tokens == 2000 and tracker.total_cost == pytest.approx(1.0)
