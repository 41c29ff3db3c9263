"""Spend control: exact accounting (thread pools, cache hits, abandoned streams, classifier calls)
compared with the simulator's own log, and spend caps that refuse before anything is sent."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.caches import InMemoryCache
from llama_index.core.callbacks import CallbackManager

from aisa_integrations import (
    AIsaChatModel,
    AIsaCostHandler,
    AIsaLLM,
    BudgetExceededError,
    InsufficientCreditsError,
    get_aisa_callback,
)
from aisa_integrations.core import ClientConfig
from aisa_integrations.core.costs import ContextThreadPoolExecutor, CostTracker, tracking, worst_case_cost
from aisa_integrations.core.routing import Requirements, TaskRouter, model_classifier
from aisa_integrations.testing import Fault


@pytest.fixture
def chat(sim):
    return AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)


def test_calls_on_a_context_pool_are_counted_and_a_plain_pool_is_documented_as_not(chat, sim):
    with get_aisa_callback() as cb, ContextThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: chat.invoke(f"hi {i}"), range(20)))
    assert cb.requests == 20 == len(sim.chat_requests())
    assert cb.total_cost == pytest.approx(sim.total_billed)
    with get_aisa_callback() as plain, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: chat.invoke(f"hi {i}"), range(3)))
    assert plain.requests == 0  # a plain pool does not copy contexts (the README says so)
    with get_aisa_callback() as batched:
        chat.batch(["a", "b", "c"])  # LangChain's own executor copies the context
    assert batched.requests == 3


def test_cache_hits_are_not_billed_requests(sim):
    model = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url, cache=InMemoryCache())
    with get_aisa_callback() as cb:
        model.invoke("same question")
        model.invoke("same question")
    assert cb.requests == 1 == len(sim.chat_requests())


def test_an_abandoned_stream_is_counted_exactly_or_with_a_marked_estimate(chat, sim):
    # A short answer the gateway had already sent whole: read on briefly after the break, its usage chunk
    # arrives, and the cost is exact.
    sim.script("one two three four five six seven eight nine ten " * 20, model="gpt-4o-mini")
    with get_aisa_callback() as cb:
        for i, _chunk in enumerate(chat.stream("tell me a long story")):
            if i == 3:
                break
    assert cb.requests == 1 == len(sim.chat_requests())
    assert cb.estimated_cost == 0.0 and cb.total_cost == pytest.approx(sim.chat_requests()[-1].billed_cost)
    # A long answer sent far ahead of the reader: estimated from the text read before and after the
    # break (kept apart from the exact sum); the gateway bills what it had sent, which is more.
    sim.script("one two three four five six seven eight nine ten " * 2000, model="gpt-4o-mini")
    with get_aisa_callback() as cb:
        for i, _chunk in enumerate(chat.stream("tell me a longer story")):
            if i == 3:
                break
    entry = sim.chat_requests()[-1]
    deadline = time.time() + 3  # the server notices the hang-up at its next write
    while entry.usage and entry.usage["completion_tokens"] == 24500 and time.time() < deadline:
        time.sleep(0.01)
    assert cb.total_cost == 0.0 and 0 < cb.estimated_cost <= entry.billed_cost  # the exact sum stays exact
    model_cost = cb.by_model["gpt-4o-mini"]
    assert model_cost.estimated_requests == 1 and model_cost.completion_tokens > 0
    assert "Estimated, usage never reported" in str(cb)
    with get_aisa_callback() as whole:
        list(chat.stream("a short one"))
    assert whole.estimated_cost == 0.0 and whole.total_cost > 0  # read to the end: exact


def test_an_abandoned_stream_estimate_matches_what_the_gateway_bills(chat, sim):
    """The simulator bills a stream the client left for the prompt and the part generated before it
    noticed (as the gateway does); paced like a real model, the estimate matches that bill."""
    sim.script("one two three four five six seven eight nine ten " * 20, model="gpt-4o-mini")
    sim.inject("gpt-4o-mini", Fault(chunk_delay=0.02))
    with get_aisa_callback() as cb:
        for i, _chunk in enumerate(chat.stream("tell me a long story")):
            if i == 10:
                break
    entry = sim.chat_requests()[-1]
    deadline = time.time() + 3  # the server notices the hang-up at its next write
    while entry.usage and entry.usage["completion_tokens"] == 245 and time.time() < deadline:
        time.sleep(0.01)
    assert 0 < entry.billed_cost < 245 * 0.6e-6  # billed, for part of the answer
    assert cb.estimated_cost == pytest.approx(entry.billed_cost, rel=0.3)


def test_classifier_calls_are_counted(sim):
    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
    sim.script("code", model="gpt-4o-mini")
    router = TaskRouter(classifier=model_classifier(config))
    with get_aisa_callback() as cb:
        router.decide("anything", needs=Requirements())
    assert cb.requests == 1 and cb.total_cost == pytest.approx(sim.total_billed) and cb.total_cost > 0


def test_a_cap_refuses_the_next_request_before_it_is_sent(chat, sim):
    with get_aisa_callback(max_cost=1e-9) as cb:
        chat.invoke("first")  # the cap is not reached before it, so it goes out
        with pytest.raises(BudgetExceededError, match="Spend cap reached") as caught:
            chat.invoke("second")
        with pytest.raises(BudgetExceededError):
            list(chat.stream("third"))
    assert len(sim.chat_requests()) == 1 and cb.requests == 1
    assert caught.value.max_cost == 1e-9 and caught.value.spent == pytest.approx(cb.total_cost)
    chat.invoke("outside the block")  # the cap belongs to the block
    assert len(sim.chat_requests()) == 2


async def test_a_cap_holds_for_async_calls_and_fallbacks(sim):
    model = AIsaChatModel(model="gpt-4o-mini", fallback_models=["gpt-4.1"], api_key=sim.api_key, base_url=sim.base_url)
    with get_aisa_callback(max_cost=1e-9):
        await model.ainvoke("first")
        with pytest.raises(BudgetExceededError):
            await model.ainvoke("second")
    assert len(sim.chat_requests()) == 1


def test_strict_refuses_a_request_whose_worst_case_passes_the_cap(chat, sim):
    request = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16_000}
    worst = worst_case_cost("gpt-4o-mini", request)
    assert worst is not None and worst > 0
    with get_aisa_callback(max_cost=worst / 2, strict=True):
        with pytest.raises(BudgetExceededError, match="could cost up to"):
            chat.invoke("hi", max_tokens=16_000)
        chat.invoke("hi", max_tokens=5)  # a small worst case fits
    assert [r.body.get("max_tokens") for r in sim.chat_requests()] == [5]


def test_the_llama_index_handler_caps_its_calls(sim):
    costs = AIsaCostHandler(max_cost=1e-9)
    llm = AIsaLLM(
        model="gpt-4o-mini", api_key=sim.api_key, api_base=sim.base_url, callback_manager=CallbackManager([costs])
    )
    llm.complete("first")
    with pytest.raises(BudgetExceededError):
        llm.complete("second")
    assert len(sim.chat_requests()) == 1 and costs.requests == 1


def test_tracker_caps_are_validated_and_summarised():
    with pytest.raises(ValueError, match="max_cost"):
        CostTracker(-1)
    tracker = CostTracker(0.5)
    with tracking(tracker):
        pass
    assert tracker.remaining == 0.5 and tracker.summary()["max_cost"] == 0.5


# -- an account out of credits --------------------------------------------------------------------


def test_a_402_stops_every_model_and_fallback_until_cleared(sim):
    from aisa_integrations.core.account import accounts

    primary = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url)
    fallback = AIsaChatModel(
        model="gpt-4o-mini", fallback_models=["claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url
    )
    llm = AIsaLLM(model="qwen-max", api_key=sim.api_key, api_base=sim.base_url)
    sim.inject("gpt-4.1", Fault(status=402))
    with pytest.raises(InsufficientCreditsError, match="add credits"):
        primary.invoke("hi")
    sent = len(sim.chat_requests())
    for attempt in (lambda: fallback.invoke("hi"), lambda: list(fallback.stream("hi")), lambda: llm.complete("hi")):
        with pytest.raises(InsufficientCreditsError, match=r"Not sent: the AIsa account is out of credits"):
            attempt()
    assert len(sim.chat_requests()) == sent  # nothing else went out
    accounts.clear()
    assert fallback.invoke("hi").content  # cleared (credits added): calls go out again


def test_an_out_of_credits_account_looks_again_after_a_while(sim):
    from aisa_integrations.core.account import accounts

    now = [0.0]
    accounts.clock = lambda: now[0]
    try:
        model = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url)
        sim.inject("gpt-4.1", Fault(status=402, times=1))
        with pytest.raises(InsufficientCreditsError):
            model.invoke("hi")
        with pytest.raises(InsufficientCreditsError, match="Not sent"):
            model.invoke("too soon")
        now[0] = accounts.recheck_after + 1  # one request looks; the answer shows credits, so the mark goes
        assert model.invoke("hi").content and not accounts.is_out_of_credits(model._config)
        assert model.invoke("again").content
    finally:
        import time

        accounts.clock = time.monotonic


def test_a_models_own_budget_is_shared_by_copies_bound_variants_and_fallbacks(sim):
    budget = CostTracker(max_cost=1e-9)
    model = AIsaChatModel(
        model="gpt-4o-mini", fallback_models=["gpt-4.1"], budget=budget, api_key=sim.api_key, base_url=sim.base_url
    )
    model.invoke("first")
    assert budget.requests == 1 and budget.total_cost > 0
    for other in (model.model_copy(update={"temperature": 0.1}), model.bind(max_tokens=20)):
        with pytest.raises(BudgetExceededError):
            other.invoke("again")
    with pytest.raises(BudgetExceededError):
        list(model.stream("again"))
    assert len(sim.chat_requests()) == 1
    llm = AIsaLLM(model="gpt-4o-mini", budget=budget, api_key=sim.api_key, api_base=sim.base_url)
    with pytest.raises(BudgetExceededError):
        llm.complete("shared budget")  # one tracker: one budget across models and frameworks
    free = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)
    assert free.invoke("no budget").content and len(sim.chat_requests()) == 2


def test_low_credits_warn_once_or_refuse(sim):
    sim.credits = 1.0
    model = AIsaChatModel(model="gpt-4.1", api_key=sim.api_key, base_url=sim.base_url)
    seen = []
    with get_aisa_callback(low_credits=5.0, on_low_credits=seen.append) as cb:
        model.invoke("one")
        model.invoke("two")
    assert len(seen) == 1 and cb.credits_remaining < seen[0] < 5.0  # warned once, the calls went on
    with get_aisa_callback(low_credits=5.0):
        model.invoke("the balance is learnt from this answer")
        with pytest.raises(BudgetExceededError, match=r"under the .* threshold"):
            model.invoke("refused")
    assert len(sim.chat_requests()) == 3
    with pytest.raises(ValueError, match="on_low_credits needs low_credits"):
        CostTracker(on_low_credits=print)


async def test_leaving_a_stream_early_is_counted_on_every_path(sim):
    """Plain and managed (fallback) streams, sync and async, LangChain and LlamaIndex: leaving after a
    few chunks of an answer already sent whole counts its exact cost where the stream is closed by the
    code that read it (sync), and an estimate where the event loop's finaliser closes it (async)."""
    from aisa_integrations import AIsaLLM

    text = "one two three four five six seven eight nine ten " * 20
    plain = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)
    managed = plain.model_copy(update={"fallback_models": ["gpt-4o"]})
    llm = AIsaLLM(model="gpt-4o-mini", api_key=sim.api_key, api_base=sim.base_url)

    def sync_langchain(model):
        for i, _ in enumerate(model.stream("story")):
            if i == 3:
                break

    async def async_langchain(model):
        stream = model.astream("story")
        async for i, _ in _aenumerate(stream):
            if i == 3:
                break
        await stream.aclose()
        # langchain-core does not close the model's own stream when its is closed: the event loop's
        # finaliser does, a moment later; it is still counted in the block the stream started in.
        await asyncio.sleep(0.2)

    def sync_llama():
        stream = llm.stream_complete("story")
        for i, _ in enumerate(stream):
            if i == 3:
                break
        stream.close()  # LlamaIndex keeps a reference: closed here, not whenever it is collected

    for run in (lambda: sync_langchain(plain), lambda: sync_langchain(managed), sync_llama):
        sim.script(text, model="gpt-4o-mini")
        with get_aisa_callback() as cb:
            run()
        assert cb.estimated_cost == 0 and cb.total_cost == pytest.approx(sim.chat_requests()[-1].billed_cost)
    for model in (plain, managed):
        # Async: langchain-core leaves the model's stream to the event loop's finaliser, a task that
        # may be cancelled at any await, so it is not read on: counted, with an estimated cost.
        sim.script(text, model="gpt-4o-mini")
        with get_aisa_callback() as cb:
            await async_langchain(model)
        assert cb.requests == 1 and cb.total_cost == 0 and cb.estimated_cost > 0


async def _aenumerate(stream):
    i = 0
    async for item in stream:
        yield i, item
        i += 1


def test_leaving_at_the_finish_chunk_still_gets_the_usage(chat, sim):
    with get_aisa_callback() as cb:
        for chunk in chat.stream("short"):
            if chunk.response_metadata.get("finish_reason"):
                break  # the usage chunk has not been read yet
    assert cb.estimated_cost == 0 and cb.total_cost == pytest.approx(sim.chat_requests()[-1].billed_cost)


def test_asyncio_run_ending_right_after_a_break_counts_an_estimate_quietly(sim, caplog):
    model = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url, max_tokens=200)
    sim.inject("gpt-4o-mini", Fault(chunk_delay=0.05))  # still generating when the consumer leaves
    tracker = CostTracker()

    async def leave_early():
        with tracking(tracker):
            stream = model.astream("story")
            async for chunk in stream:
                if chunk.content:
                    break
            await stream.aclose()

    with caplog.at_level(logging.ERROR):
        asyncio.run(leave_early())  # ends at once: asyncio closes every async generator itself
    assert tracker.requests == 1 and tracker.total_cost + tracker.estimated_cost > 0
    # None of our generators is read while asyncio closes them. (httpcore's own byte stream may still be
    # reported: asyncio closes it and its parent concurrently, as for any httpx stream left open.)
    generators = re.findall(r"asyncgen: <async_generator object (\S+)", caplog.text)
    ours = ("AsyncChatStream.", "AsyncEngineStream.", "AIsaChatModel.", "_aforeign")
    assert not [name for name in generators if name.startswith(ours)], generators
