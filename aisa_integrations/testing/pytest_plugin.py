"""A pytest plugin for your own test suite: the AIsa simulator as fixtures.

Installed with the package and registered through the ``pytest11`` entry point, so nothing needs
to be imported or listed in ``conftest.py``::

    from aisa_integrations import AIsaChatModel

    def test_my_agent_survives_an_outage(aisa_env, aisa_fault):
        aisa_fault("gpt-4.1", status=503)  # every request to gpt-4.1 fails
        model = AIsaChatModel(model="gpt-4.1", fallback_models=["claude-3-5-sonnet"])
        assert model.invoke("hi").response_metadata["model_name"] == "claude-3-5-sonnet"
        assert aisa_env.chat_requests("gpt-4.1")  # the simulator logs every request

Fixtures (each test gets its own simulator, on a free loopback port):

- ``aisa_simulator``: an :class:`~aisa_integrations.testing.AIsaSimulator` (``.base_url``,
  ``.api_key``, ``.script(...)``, ``.inject(...)``, ``.chat_requests()``, ``.total_billed``).
- ``aisa_env``: the same simulator, with ``AISA_BASE_URL`` / ``AISA_API_KEY`` pointing at it (so
  code that reads the environment, as users' code does, talks to it); restored afterwards.
- ``aisa_fault``: ``aisa_fault(model, **fault)`` injects a :class:`~aisa_integrations.testing.Fault`
  (``status=503``, ``times=2``, ``delay=...``, ``drop_after=...``, ...) into the test's simulator.
- ``aisa_simulator_options``: override it to configure the simulator (``credits``, ``latency``,
  ``models``, ...); a mapping of :class:`AIsaSimulator` keyword arguments, empty by default.

Turn the plugin off with ``-p no:aisa``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the simulator is imported by the fixtures: pytest starts as fast as without us
    from .simulator import AIsaSimulator, Fault


@pytest.fixture
def aisa_simulator_options() -> Mapping[str, Any]:
    """Keyword arguments for the test's :class:`AIsaSimulator` (override in your conftest.py)."""
    return {}


@pytest.fixture
def aisa_simulator(aisa_simulator_options: Mapping[str, Any]) -> Iterator[AIsaSimulator]:
    """A fresh AIsa simulator for this test: its own port, faults, scripts, log and balance."""
    from ..core.account import accounts
    from ..core.breakers import breakers
    from ..core.transport import forget_native_streaming
    from .simulator import AIsaSimulator

    with AIsaSimulator(**dict(aisa_simulator_options)) as simulator:
        yield simulator
    # What the process learnt about this gateway (open breakers, an out-of-credits mark, no native
    # streaming) must not reach a later test whose simulator gets the same port.
    breakers.reset(simulator.base_url)
    accounts.clear_gateway(simulator.base_url)
    forget_native_streaming(simulator.base_url)


@pytest.fixture
def aisa_env(aisa_simulator: AIsaSimulator, monkeypatch: pytest.MonkeyPatch) -> AIsaSimulator:
    """The simulator, with AISA_BASE_URL / AISA_API_KEY set to it for the test."""
    monkeypatch.setenv("AISA_BASE_URL", aisa_simulator.base_url)
    monkeypatch.setenv("AISA_API_KEY", aisa_simulator.api_key or "any")
    return aisa_simulator


@pytest.fixture
def aisa_fault(aisa_simulator: AIsaSimulator) -> Callable[..., Fault]:
    """``aisa_fault(model, **fields)``: inject a fault (``"*"``: every model) into the test's simulator."""

    def inject(model: str = "*", fault: Fault | None = None, **fields: Any) -> Fault:
        return aisa_simulator.inject(model, fault, **fields)

    return inject
