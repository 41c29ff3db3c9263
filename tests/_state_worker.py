"""One worker process of tests/test_shared_state.py: its own interpreter, sharing state with the
others only through Redis (AISA_STATE_URL) and talking to the simulator (AISA_BASE_URL).

    python tests/_state_worker.py breaker N      # N calls to gpt-4.1 (falls back to gpt-4o-mini)
    python tests/_state_worker.py budget NAME CAP  # calls until the shared budget refuses
    python tests/_state_worker.py rate RPM SECONDS # calls as fast as the shared limiter allows

Prints one JSON line: what it did.
"""

from __future__ import annotations

import json
import os
import sys
import time

from aisa_integrations import AIsaChatModel, BudgetExceededError, FallbackPolicy, SharedBudget, set_process_budget
from aisa_integrations.langchain import AIsaRateLimiter


def breaker(calls: int) -> dict:
    policy = FallbackPolicy(server_retries=0, failure_threshold=3, cooldown=60.0)
    model = AIsaChatModel(model="gpt-4.1", fallback_models=["gpt-4o-mini"], fallback_policy=policy)
    served = [model.invoke("hi").response_metadata.get("model_name") for _ in range(calls)]
    return {"served": served}


def _barrier(name: str, parties: int = 2) -> None:
    """Start together: interpreters start at different speeds, and a late one would find the budget spent."""
    import redis

    client = redis.Redis.from_url(os.environ["AISA_STATE_URL"])
    client.incr(f"barrier:{name}")
    deadline = time.monotonic() + 60
    while int(client.get(f"barrier:{name}") or 0) < parties and time.monotonic() < deadline:
        time.sleep(0.01)


def budget(name: str, cap: float) -> dict:
    set_process_budget(SharedBudget(name, max_cost=cap))
    model = AIsaChatModel(model="gpt-4o-mini", max_tokens=64)
    model.invoke("warm up")  # imports and the connection, before the race (counted like any call)
    _barrier(name)
    answered = 1
    for _ in range(10_000):
        try:
            model.invoke("Write two sentences about budgets.")
        except BudgetExceededError as exc:
            return {"answered": answered, "refused": str(exc)[:120]}
        answered += 1
    return {"answered": answered, "refused": None}


def rate(per_minute: float, seconds: float) -> dict:
    limiter = AIsaRateLimiter(requests_per_minute=per_minute, name="rate-test")
    model = AIsaChatModel(model="gpt-4o-mini", rate_limiter=limiter)
    _barrier("rate-test")
    deadline = time.monotonic() + seconds
    answered = 0
    while time.monotonic() < deadline:
        model.invoke("hi")
        answered += 1
    return {"answered": answered}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "breaker":
        result = breaker(int(args[0]))
    elif mode == "budget":
        result = budget(args[0], float(args[1]))
    else:
        result = rate(float(args[0]), float(args[1]))
    print(json.dumps(result))
