"""Shared test rig.

- Sockets: pytest-socket (see pyproject ``addopts``) refuses every host but 127.0.0.1/localhost,
  so no test can reach the network; the simulator and notebook kernels use loopback only.
- Environment: every test starts without AISA_* / OPENAI_* variables, so nothing on the developer's
  machine leaks into a result (live tests opt back in through ``live_env``).
- Cassettes: see ``tests/_cassettes.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from aisa_integrations.core import state
from aisa_integrations.core.account import accounts
from aisa_integrations.core.breakers import breakers
from aisa_integrations.core.client import clear_client_cache
from aisa_integrations.core.costs import set_process_budget
from aisa_integrations.testing import AIsaSimulator
from aisa_integrations.testing.redis_server import RedisServer, find_redis_server

from ._cassettes import CassetteEnv, aisa_cassette

LIVE_KEY = os.environ.get("AISA_API_KEY")
_SCRUBBED_VARS = (
    "AISA_API_KEY",
    "AISA_BASE_URL",
    "AISA_STATE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _SCRUBBED_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    clear_client_cache()
    breakers.reset()
    accounts.clear()
    set_process_budget(None)
    state._store = None  # back to the default (memory) store


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis server for the whole session (the system's redis-server; CI installs it)."""
    if find_redis_server() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide redis-server (.ci/run installs it with apt).")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture
def sim() -> Iterator[AIsaSimulator]:
    """A fresh simulator per test: its own port, faults, scripts, log and balance."""
    with AIsaSimulator() as simulator:
        yield simulator


@pytest.fixture
def sim_env(sim: AIsaSimulator, monkeypatch: pytest.MonkeyPatch) -> AIsaSimulator:
    """The simulator, with AISA_BASE_URL / AISA_API_KEY pointing at it (as a user would configure)."""
    monkeypatch.setenv("AISA_BASE_URL", sim.base_url)
    monkeypatch.setenv("AISA_API_KEY", sim.api_key or "any")
    return sim


@pytest.fixture
def cassette(request: pytest.FixtureRequest) -> Iterator[CassetteEnv]:
    """Replay ``cassettes/<test module>/<test name>.yaml`` (record modes: tests/_cassettes.py)."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    with aisa_cassette(f"{module}/{request.node.name}") as env:
        yield env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_live = pytest.mark.skip(reason="live test: set AISA_API_KEY to run against the AIsa API")
    for item in items:
        if "live" in item.keywords and not LIVE_KEY:
            item.add_marker(skip_live)
