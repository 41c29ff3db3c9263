"""The AIsa simulator: a local, scripted stand-in for the gateway, for offline tests and demos.

>>> from aisa_integrations.testing import AIsaSimulator, Fault
>>> with AIsaSimulator() as sim:
...     _ = sim.inject("gpt-4.1", Fault(status=503, times=1))
...     sim.base_url.startswith("http://127.0.0.1:")
True
"""

from ._replies import ScriptedReply, ScriptedToolCall
from .simulator import SIMULATOR_KEY, AIsaSimulator, Fault, LoggedRequest

__all__ = ["SIMULATOR_KEY", "AIsaSimulator", "Fault", "LoggedRequest", "ScriptedReply", "ScriptedToolCall"]
