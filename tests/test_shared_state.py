"""Shared state: breakers, budgets and rate limits in one store, across threads and OS processes.

The Redis tests run against a real redis-server the session starts (``redis_server`` in
conftest.py); the cross-process ones start worker interpreters (tests/_state_worker.py) that share
nothing with this one but Redis and the simulator.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from aisa_integrations import AIsaChatModel, BudgetExceededError, FallbackPolicy, SharedBudget
from aisa_integrations.core.breakers import BreakerRegistry, BreakerSettings, CircuitBreaker
from aisa_integrations.core.costs import set_process_budget
from aisa_integrations.core.ratelimit import RateLimiter
from aisa_integrations.core.state import MemoryStore, RedisStore, configure_state, store_from, take_from_buckets
from aisa_integrations.core.usage import Usage
from aisa_integrations.langchain import AIsaRateLimiter
from aisa_integrations.llama_index import AIsaLLM
from aisa_integrations.llama_index import AIsaRateLimiter as LlamaIndexRateLimiter
from aisa_integrations.testing import Fault
from aisa_integrations.testing.redis_server import RedisServer

WORKER = Path(__file__).with_name("_state_worker.py")
SETTINGS = BreakerSettings(failure_threshold=3, cooldown=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the rules, and both stores applying them the same way ------------------------------------


def test_a_big_take_is_not_starved_by_small_ones():
    clock = Clock()
    limiter = RateLimiter(tokens_per_minute=600, store=MemoryStore(clock=clock))  # 10 a second, bucket of 10
    for step in range(100):  # small takes at the refill rate keep the bucket near empty
        clock.now = step * 0.1
        limiter.acquire(0, 1, blocking=False)
        if step == 50:
            assert limiter.acquire(0, 100, blocking=False)  # ten buckets' worth: admitted, in debt
    assert not limiter.acquire(0, 1, blocking=False)  # the debt is paid back before anything else


def test_the_token_bucket_rule():
    buckets = [(10.0, 1.0, 1.0)]
    levels, wait = take_from_buckets([(0.0, None)], buckets, now=0.0)
    assert wait == 0 and levels == [(9.0, 0.0)]  # a new bucket starts full
    levels, wait = take_from_buckets([(0.5, 0.0)], buckets, now=0.25)
    assert wait == pytest.approx(0.25) and levels == [(0.75, 0.25)]  # refilled, nothing taken
    levels, wait = take_from_buckets([(3.0, 0.0)], [(10.0, 1.0, 25.0)], now=0.0)
    assert wait == 0 and levels == [(-22.0, 0.0)]  # more than it could ever hold: goes, left in debt
    levels, wait = take_from_buckets([(-2.0, 0.0)], [(10.0, 1.0, 25.0)], now=0.0)
    assert wait == pytest.approx(2.0)  # ...once the bucket is out of debt
    levels, wait = take_from_buckets([(5.0, 0.0)], [(10.0, 1.0, -20.0)], now=0.0, force=True)
    assert levels == [(10.0, 0.0)]  # a refund never fills past capacity


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_both_stores_keep_records_counters_and_buckets(kind, redis_url):
    store = MemoryStore() if kind == "memory" else RedisStore(redis_url)
    assert store.update("breaker:x", lambda r: ({"failures": 1}, "written")) == "written"
    assert store.read("breaker:x") == {"failures": 1}
    assert store.update("breaker:x", lambda r: (r, "unchanged")) == "unchanged"
    store.incr("budget:b", {"cost": 0.25, "requests": 1})
    assert store.incr("budget:b", {"cost": 0.5})["cost"] == pytest.approx(0.75)
    store.set_fields("budget:b", {"max_cost": 2.0})
    assert store.counters("budget:b") == {"cost": 0.75, "requests": 1.0, "max_cost": 2.0}
    assert store.take("limit:l", [(2.0, 0.001, 1.0)]) == 0
    assert store.take("limit:l", [(2.0, 0.001, 1.0)]) == 0
    assert store.take("limit:l", [(2.0, 0.001, 1.0)]) > 100  # empty, and it refills slowly
    assert store.take("limit:big", [(2.0, 0.001, 5.0)]) == 0  # more than it holds: goes, in debt
    assert store.take("limit:big", [(2.0, 0.001, 5.0)]) > 100  # not again until the debt is paid
    assert store.keys("breaker") == ["breaker:x"] and store.keys("budget") == ["budget:b"]
    assert store.keys("limit") == ["limit:big", "limit:l"]


def test_store_configuration_is_checked():
    from aisa_integrations import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"redis://"):
        store_from("http://localhost:6379")
    with pytest.raises(ConfigurationError, match="not both"):
        RedisStore()
    assert RedisStore("redis://user:secret@127.0.0.1:1/0").description.count("secret") == 0


# -- breakers shared through Redis ------------------------------------------------------------


def test_two_clients_share_one_breaker_and_one_probe(redis_url):
    """Two RedisStore clients behave as two processes: one sees the other's opening, and among 40
    threads on both only one probe goes out."""
    clock = Clock()
    first = CircuitBreaker(clock, store=RedisStore(redis_url), key="breaker:gw m")
    second = CircuitBreaker(clock, store=RedisStore(redis_url), key="breaker:gw m")
    for _ in range(3):
        first.acquire(SETTINGS).failure()
    assert second.state == "open" and second.acquire(SETTINGS) is None
    clock.now = 5.0
    granted = []
    threads = [threading.Thread(target=lambda b=b: granted.append(b.acquire(SETTINGS))) for b in [first, second] * 20]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    probes = [p for p in granted if p is not None]
    assert len(probes) == 1 and probes[0].probe
    probes[0].success()
    assert first.state == "closed" and second.snapshot()["times_opened"] == 1


def test_a_probe_lease_frees_the_slot_of_a_process_that_died(redis_url):
    clock = Clock()
    breaker = CircuitBreaker(clock, store=RedisStore(redis_url), key="breaker:gw dead")
    for _ in range(3):
        breaker.acquire(SETTINGS).failure()
    clock.now = 5.0
    assert breaker.acquire(SETTINGS).probe  # ...and its process dies without resolving it
    assert breaker.acquire(SETTINGS) is None
    clock.now = 5.0 + SETTINGS.probe_lease + 1
    assert breaker.acquire(SETTINGS).probe


def test_the_registry_follows_the_configured_store(redis_url):
    configure_state(redis_url)
    registry = BreakerRegistry()
    for _ in range(3):
        registry.get("http://gw/v1", "m").acquire(SETTINGS).failure()
    other = BreakerRegistry(store=RedisStore(redis_url))  # another process's view
    assert other.state()["http://gw/v1 m"]["state"] == "open"
    registry.reset()
    assert other.state() == {}


# -- across OS processes ----------------------------------------------------------------------


def _worker_env(sim, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISA_", "OPENAI_"))}
    env.update(AISA_BASE_URL=sim.base_url, AISA_API_KEY=sim.api_key or "any", AISA_STATE_URL=redis_url)
    return env


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(process: subprocess.Popen[str]) -> dict:
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_a_second_process_makes_no_attempt_at_a_model_the_first_found_dead(sim, redis_url):
    sim.inject("gpt-4.1", Fault(status=503))
    env = _worker_env(sim, redis_url)
    first = _result(_start(["breaker", "4"], env))
    assert first["served"] == ["gpt-4o-mini"] * 4
    assert len(sim.chat_requests("gpt-4.1")) == 3  # three failures opened the breaker; the 4th call skipped it
    second = _result(_start(["breaker", "5"], env))
    assert second["served"] == ["gpt-4o-mini"] * 5
    assert len(sim.chat_requests("gpt-4.1")) == 3  # the second process: 0 attempts at the dead model


def test_two_processes_share_one_budget(sim, redis_url):
    name = f"shared-{uuid.uuid4().hex[:8]}"
    cap = 0.002
    env = _worker_env(sim, redis_url)
    workers = [_start(["budget", name, str(cap)], env) for _ in range(2)]
    results = [_result(w) for w in workers]
    assert all(r["refused"] and "Spend cap reached" in r["refused"] for r in results)
    costs = [r.billed_cost or 0.0 for r in sim.chat_requests()]
    assert sum(r["answered"] for r in results) == len(costs) > 4
    # Each process checks before sending and has one call in flight: together they pass the cap by
    # at most one call each.
    assert cap <= sim.total_billed <= cap + 2 * max(costs)
    assert all(r["answered"] > 0 for r in results)  # both spent from the one budget


def test_two_processes_share_one_rate_limit(sim, redis_url):
    per_minute, seconds = 600.0, 3.0  # 10 a second, a burst of 10
    env = _worker_env(sim, redis_url)
    workers = [_start(["rate", str(per_minute), str(seconds)], env) for _ in range(2)]
    results = [_result(w) for w in workers]
    times = sorted(r.at for r in sim.chat_requests())
    window = times[-1] - times[0]
    # The rate over the window plus one burst; the window is widened by 0.2 s because a request is
    # logged when it arrives, a little after its take from the bucket (the first of a process opens
    # its connection in between).
    allowed = per_minute / 60 * (window + 0.2) + per_minute / 60
    assert len(times) == sum(r["answered"] for r in results)
    assert len(times) <= allowed + 1
    assert len(times) >= 0.5 * allowed  # limited, not stalled
    assert all(r["answered"] > 0 for r in results)


def test_calls_go_on_when_redis_stops_mid_run_and_the_budget_keeps_its_total(sim, caplog):
    server = RedisServer().start()
    try:
        store = RedisStore(server.url, retry_after=0.2)
        configure_state(store)
        budget = set_process_budget(SharedBudget("down", max_cost=10.0))
        policy = FallbackPolicy(server_retries=0)
        model = AIsaChatModel(
            model="gpt-4.1",
            fallback_models=["gpt-4o-mini"],
            fallback_policy=policy,
            rate_limiter=AIsaRateLimiter(requests_per_minute=6000),
            api_key=sim.api_key,
            base_url=sim.base_url,
        )
        assert model.invoke("before").content
        spent_before = budget.spent
        server.stop()
        with caplog.at_level(logging.WARNING, logger="aisa_integrations.state"):
            answers = [model.invoke(f"during {i}").content for i in range(3)]
        assert all(answers) and len(sim.chat_requests()) == 4
        assert caplog.text.count("unavailable") == 1  # one warning per outage
        # The cap is not reset by the outage: the last shared total, plus this process's spend since.
        assert budget.requests == 4 and budget.spent == pytest.approx(sim.total_billed)
        assert budget.spent > spent_before
        server = RedisServer(port=server.port).start()  # back, empty (no persistence): the outage's spend is sent
        for _ in range(10):  # the first try after the restart may meet the client's dead connection
            time.sleep(0.25)
            model.invoke("after")
            if "reachable again" in caplog.text:
                break
        assert "reachable again" in caplog.text
        shared = SharedBudget("down", store=RedisStore(server.url))  # another process's view
        assert shared.requests >= 4 and shared.spent > 0
    finally:
        server.stop()


def test_any_redis_error_means_local_state_not_a_failed_request(sim, redis_url, caplog):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.config_set("maxmemory", "1")  # every write refused: OutOfMemoryError, not a connection error
    try:
        store = RedisStore(redis_url)
        configure_state(store)
        set_process_budget(SharedBudget("oom", max_cost=10.0))
        model = AIsaChatModel(
            model="gpt-4.1",
            fallback_models=["gpt-4o-mini"],
            rate_limiter=AIsaRateLimiter(requests_per_minute=6000),
            api_key=sim.api_key,
            base_url=sim.base_url,
        )
        with caplog.at_level(logging.WARNING, logger="aisa_integrations.state"):
            assert model.invoke("hi").content
        assert "OutOfMemoryError" in caplog.text
    finally:
        client.config_set("maxmemory", "0")


def test_a_budget_refuses_before_sending_across_stores(sim, redis_url):
    configure_state(redis_url)
    set_process_budget(SharedBudget(f"pre-{uuid.uuid4().hex[:6]}", max_cost=0.0))
    model = AIsaChatModel(model="gpt-4o-mini", api_key=sim.api_key, base_url=sim.base_url)
    with pytest.raises(BudgetExceededError):
        model.invoke("hi")
    assert sim.chat_requests() == []


# -- the rate limiter in the engine -------------------------------------------------------------


def _levels(limiter: RateLimiter) -> list[float]:
    return [bucket["level"] for bucket in limiter.store.buckets(limiter.key)]


def test_langchain_takes_the_first_request_and_the_engine_the_rest_and_the_tokens(sim):
    store = MemoryStore(clock=lambda: 0.0)  # time stands still: nothing refills
    limiter = AIsaRateLimiter(requests_per_minute=6000, tokens_per_minute=600_000, store=store)
    model = AIsaChatModel(model="gpt-4o-mini", rate_limiter=limiter, api_key=sim.api_key, base_url=sim.base_url)
    message = model.invoke("hi", max_tokens=50)
    limiter.limiter.flush()
    requests, tokens = _levels(limiter.limiter)
    assert requests == 100 - 1  # one request: LangChain's acquire, not counted again by the engine
    assert tokens == 10_000 - message.usage_metadata["total_tokens"]  # the estimate, settled to the usage
    sim.inject("gpt-4.1", Fault(status=503, times=1))
    fallback = model.model_copy(
        update={
            "model": "gpt-4.1",
            "fallback_models": ["gpt-4o-mini"],
            "fallback_policy": FallbackPolicy(server_retries=0),
        }
    )
    fallback.invoke("hi")
    assert _levels(limiter.limiter)[0] == 100 - 3  # two attempts, both taken


def test_llama_index_takes_the_first_request_the_engine_the_rest_and_waits_when_empty(sim):
    waits: list[float] = []
    clock = Clock()
    limiter = LlamaIndexRateLimiter(requests_per_minute=60, store=MemoryStore(clock=clock), sleep=waits.append)
    llm = AIsaLLM(model="gpt-4o-mini", rate_limiter=limiter, api_key=sim.api_key, api_base=sim.base_url)
    llm.complete("one")
    assert waits == [] and _levels(limiter.limiter)[0] == 0  # one request taken, by LlamaIndex
    clock.now = 0.25  # a quarter of the next request's second has passed

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    limiter.limiter.sleep = sleep
    llm.complete("two")
    assert waits == [pytest.approx(0.75)]  # waited for the bucket, then sent
    assert len(sim.chat_requests()) == 2


async def test_async_calls_take_from_the_same_buckets(sim):
    store = MemoryStore(clock=lambda: 0.0)
    limiter = LlamaIndexRateLimiter(requests_per_minute=60_000, tokens_per_minute=10_000_000, store=store)
    llm = AIsaLLM(model="gpt-4o-mini", rate_limiter=limiter, api_key=sim.api_key, api_base=sim.base_url)
    response = await llm.acomplete("hi", max_tokens=20)
    assert response.text
    chunks = [c async for c in await llm.astream_complete("hi")]
    limiter.limiter.flush()
    requests, tokens = _levels(limiter.limiter)
    assert chunks and requests == 1000 - 2  # both calls took a request
    assert tokens < 10_000_000 / 60  # and their tokens


def test_rate_limiter_settings_are_checked():
    from aisa_integrations import ConfigurationError

    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        RateLimiter()
    with pytest.raises(ConfigurationError, match="positive"):
        RateLimiter(requests_per_minute=0)


def test_shared_budget_counts_one_total_for_every_holder(redis_url):
    name = f"b-{uuid.uuid4().hex[:6]}"
    ours = SharedBudget(name, max_cost=1.0, store=RedisStore(redis_url))
    theirs = SharedBudget(name, store=RedisStore(redis_url))
    ours.record("gpt-4.1", Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15, cost=0.25))
    theirs.record("gpt-4.1", Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2, cost=0.5))
    assert ours.spent == theirs.spent == pytest.approx(0.75)
    assert ours.requests == 2 and ours.total_tokens == 17 and ours.remaining == pytest.approx(0.25)
    assert ours.by_model["gpt-4.1"].requests == 1  # this holder's own share
    theirs.record("gpt-4.1", Usage(cost=0.3))
    with pytest.raises(BudgetExceededError):
        ours.check()


def test_settling_tokens_leaves_the_request_bucket_as_it_was():
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=6000, store=MemoryStore(clock=clock))
    assert limiter.acquire(1, 50, blocking=False)  # 1 request of 1; 50 tokens of 100
    limiter.settle(30)  # the answer used 80
    limiter.flush()
    clock.now = 0.5
    assert not limiter.acquire(1, 0, blocking=False)  # half a request refilled, not a full bucket
    assert _levels(limiter) == [pytest.approx(0.5), pytest.approx(20 + 50)]
    limiter.settle(-1000)
    assert limiter.levels()["tokens"]["available"] == pytest.approx(100)  # a refund stops at capacity


def test_a_settlement_rides_on_the_next_take():
    clock = Clock()
    limiter = RateLimiter(tokens_per_minute=6000, store=MemoryStore(clock=clock))  # 100 a second, bucket of 100
    assert limiter.acquire(0, 10, blocking=False)
    limiter.settle(85)  # it used 95
    assert not limiter.acquire(0, 10, blocking=False)  # 90 left; 85 owed + 10 asked: refused, still owed
    clock.now = 1.0
    assert limiter.acquire(0, 10, blocking=False)
    assert _levels(limiter)[1] == pytest.approx(100 - 95)


def test_aisa_status_shows_breakers_budgets_and_limits_from_the_store(redis_url, capsys):
    from aisa_integrations.cli import main

    store = RedisStore(redis_url)
    registry = BreakerRegistry(store=store)
    for _ in range(3):
        registry.get("http://gw/v1", "gpt-4.1").acquire(SETTINGS).failure()
    budget = SharedBudget("team", max_cost=1.0, store=store)
    budget.record("gpt-4.1", Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15, cost=0.25))
    RateLimiter(requests_per_minute=600, name="gateway", store=store).acquire(3)

    assert main(["status", "--store", redis_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["breakers"]["http://gw/v1 gpt-4.1"]["state"] == "open"
    assert report["budgets"]["team"] == {
        "spent": 0.25,
        "max_cost": 1.0,
        "remaining": 0.75,
        "estimated_part": 0.0,
        "requests": 1,
        "total_tokens": 15,
    }
    requests = report["rate_limits"]["gateway"]["requests"]
    assert requests["per_minute"] == pytest.approx(600) and 7 <= requests["available"] <= 10
    assert main(["status", "--store", redis_url]) == 0
    text = capsys.readouterr().out
    assert "http://gw/v1 gpt-4.1: open" in text and "team: $0.250000 spent of $1.000000" in text
    assert "gateway: requests" in text and "redis redis://127.0.0.1" in text


def test_aisa_status_says_when_the_store_is_only_this_process(capsys):
    from aisa_integrations.cli import main

    assert main(["status"]) == 0
    assert "AISA_STATE_URL" in capsys.readouterr().out


def test_a_fallback_members_own_rate_limiter_is_honoured(sim):
    from langchain_core.rate_limiters import InMemoryRateLimiter

    sim.inject("gpt-4.1", Fault(status=503))
    policy = FallbackPolicy(server_retries=0, circuit_breaker=False)
    ours = AIsaRateLimiter(requests_per_minute=60, store=MemoryStore(clock=lambda: 0.0))  # one, then empty
    member = AIsaChatModel(model="gpt-4o-mini", rate_limiter=ours, api_key=sim.api_key, base_url=sim.base_url)
    model = AIsaChatModel(
        model="gpt-4.1", fallback_models=[member], fallback_policy=policy, api_key=sim.api_key, base_url=sim.base_url
    )
    assert model.invoke("hi").response_metadata["model_name"] == "gpt-4o-mini"
    assert _levels(ours.limiter)[0] == 0  # the member's attempt took from the member's limiter
    assert ours.limiter.try_take() > 0  # ...which is now empty

    class Counting(InMemoryRateLimiter):
        taken = 0

        def acquire(self, *, blocking: bool = True) -> bool:
            Counting.taken += 1
            return True

    theirs = member.model_copy(update={"rate_limiter": Counting(requests_per_second=100)})
    model.model_copy(update={"fallback_models": [theirs]}).invoke("hi")
    assert Counting.taken == 1  # LangChain's kind: the member is called through LangChain, which applies it


def test_aisa_status_with_an_unreachable_store_is_an_error(capsys):
    from aisa_integrations.cli import main

    assert main(["status", "--store", "redis://127.0.0.1:1/0"]) == 9
    captured = capsys.readouterr()
    assert "cannot be reached" in captured.err and captured.out == ""
