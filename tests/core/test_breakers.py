"""Circuit breakers: one opening per outage, a probe slot never lost, a cooldown that grows."""

from __future__ import annotations

import threading

from aisa_integrations.core.breakers import BreakerSettings, CircuitBreaker

SETTINGS = BreakerSettings(failure_threshold=3, cooldown=5.0, max_cooldown=60.0)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fail(breaker, settings=SETTINGS, retry_after=None):
    permit = breaker.acquire(settings)
    assert permit is not None
    permit.failure(retry_after)


def test_opens_after_the_threshold_probes_once_and_closes():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for _ in range(2):
        fail(breaker)
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open" and breaker.acquire(SETTINGS) is None
    clock.now = 5.0
    assert breaker.state == "half_open"
    probe = breaker.acquire(SETTINGS)
    assert probe is not None and probe.probe
    assert breaker.acquire(SETTINGS) is None  # exactly one probe
    probe.success()
    assert breaker.state == "closed" and breaker.snapshot()["times_opened"] == 1


def test_cooldown_starts_short_and_doubles_while_probes_fail_up_to_the_ceiling():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for _ in range(3):
        fail(breaker)
    cooldowns = []
    for _ in range(6):
        cooldowns.append(breaker.snapshot()["reopens_in"])
        clock.now += breaker.snapshot()["reopens_in"]
        fail(breaker)  # the probe fails
    assert cooldowns == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert breaker.snapshot()["times_opened"] == 1  # one outage, however many failed probes
    clock.now += 60
    probe = breaker.acquire(SETTINGS)
    probe.success()
    for _ in range(3):
        fail(breaker)
    assert breaker.snapshot()["reopens_in"] == 5.0  # a new outage starts short again


def test_retry_after_extends_the_opening():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for _ in range(3):
        fail(breaker, retry_after=30)
    clock.now = 10
    assert breaker.state == "open"
    clock.now = 30
    assert breaker.state == "half_open"


def test_in_flight_attempts_do_not_reopen_recount_or_close():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    in_flight = [breaker.acquire(SETTINGS) for _ in range(100)]  # all started while closed
    for permit in in_flight[:3]:
        permit.failure()
    assert breaker.state == "open"
    for permit in in_flight[3:50]:
        permit.failure()  # failures of attempts from before the opening
    in_flight[50].success()  # a success that started before the opening
    snapshot = breaker.snapshot()
    assert snapshot["state"] == "open" and snapshot["times_opened"] == 1 and snapshot["reopens_in"] == 5.0


def test_a_probe_that_ends_without_a_verdict_frees_the_slot():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for _ in range(3):
        fail(breaker)
    clock.now = 5
    with breaker.acquire(SETTINGS) as probe:  # cancelled, timed out by the caller, consumer left...
        assert probe.probe
    again = breaker.acquire(SETTINGS)
    assert again is not None and again.probe  # the next call probes


def test_one_probe_among_many_threads():
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for _ in range(3):
        fail(breaker)
    clock.now = 6
    granted = []
    threads = [threading.Thread(target=lambda: granted.append(breaker.acquire(SETTINGS))) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for p in granted if p is not None) == 1
