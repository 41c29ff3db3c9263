"""Every notebook runs top to bottom (nbclient); a failing cell fails the test.

Each runs against three endpoints, configured only through AISA_BASE_URL / AISA_API_KEY as a user would:

- ``simulator``: the package's AIsa simulator (cost, credits, scripted answers);
- ``plain``: someone else's OpenAI-compatible server (``tests/_plain_openai_server.py``): no simulator
  control API, no cost in ``usage``;
- ``unconfigured``: neither variable set, so the notebook starts its own simulator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ._plain_openai_server import PlainOpenAIServer

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
ENDPOINTS = ["simulator", "plain", "unconfigured"]

OUTAGE_NOTE = "outage demo: on a local simulator started by this notebook, so it works the same live or offline"
OWN_SIMULATOR_NOTE = "No AISA_API_KEY or AISA_BASE_URL set: using a local simulator started by this notebook."
OUTAGE_AND_ROUTING = [
    OUTAGE_NOTE,
    "served by: claude-3-sonnet",
    "gpt-4.1 error ServerError 503",
    "claude-3-sonnet after",  # the silent gpt-4.1 was abandoned at the first-token timeout
    "call 1: served by claude-3-sonnet (gemini-2.0-flash error",  # the dead primary is tried ...
    "gemini-2.0-flash skipped",  # ... until its circuit opens
    "gemini-2.0-flash circuit open",
    "code -> deepseek-coder",
    "chinese -> qwen-max",
    "gpt-4.1 [{'model': 'deepseek-r1'",
]

#: Expected in the outputs, per notebook: on every endpoint, then per endpoint ("aisa": either simulator).
EXPECTED: dict[str, dict[str, list[str]]] = {
    "01_langchain_quickstart.ipynb": {
        "all": ["model_name: gpt-4.1", "credits_remaining:", "get_weather {'location'"],
        "aisa": ["Person(name='Ada', age=36)", "I see 1 image", "'input_tokens'"],
        "plain": ["cost: not reported | credits_remaining: not reported", "Person(name='x', age=1)"],
    },
    "02_llama_index.ipynb": {
        "all": ["context_window=32768"],
        "aisa": ["42", "Person(name='Ada', age=36)"],
        "plain": ["Person(name='x', age=1)", "plain OpenAI-compatible server"],
    },
    "03_fallback_and_routing.ipynb": {"all": OUTAGE_AND_ROUTING, "aisa": [], "plain": []},
    "04_costs_and_comparison.ipynb": {
        "all": ["Total cost (USD)", "<th>first token</th>", "<td>gpt-4.1</td>", "<td>gemini-2.0-flash</td>"],
        "aisa": ["claude-3-opus", "Credits remaining: 9", "<td>$0.0"],
        "plain": [
            "cost not reported by this gateway for 5 of 5 requests",
            "<td>not reported</td>",
            "No Claude models on this gateway",
        ],
    },
}
#: Charts (image/png) each notebook draws: spend and comparison; no spend chart where no cost is reported.
CHARTS = {"04_costs_and_comparison.ipynb": {"aisa": 2, "plain": 1}}
#: The guard under which a notebook may start its own simulator for the whole notebook.
NO_ENDPOINT_GUARD = 'if not os.environ.get("AISA_API_KEY") and not os.environ.get("AISA_BASE_URL"):'


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in (output.get("data") or {}).items() if k.startswith("text/"))
    return "".join(parts)


def _images(book) -> int:
    return sum("image/png" in (o.get("data") or {}) for c in book.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture
def endpoint_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point AISA_BASE_URL / AISA_API_KEY at the endpoint under test (the notebook kernel inherits them)."""
    endpoint = request.param
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend captures the charts
    if endpoint == "simulator":
        sim = request.getfixturevalue("sim")
        monkeypatch.setenv("AISA_BASE_URL", sim.base_url)
        monkeypatch.setenv("AISA_API_KEY", sim.api_key or "any")
        yield endpoint
    elif endpoint == "plain":
        with PlainOpenAIServer() as server:
            monkeypatch.setenv("AISA_BASE_URL", server.base_url)
            monkeypatch.setenv("AISA_API_KEY", "plain-server-key")
            yield endpoint
    else:
        yield endpoint  # the conftest's _isolated_env already removed every AISA_* variable


def test_notebooks_are_committed_without_outputs():
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and not c.get("execution_count") for c in book.cells if c.cell_type == "code")


def test_notebooks_use_the_simulator_only_for_outages_and_when_nothing_is_configured():
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        source = "\n".join(c.source for c in book.cells)
        # No control API on the user's endpoint, and no guessing "is this the simulator?" from the host.
        assert "_simulator" not in source, path.name
        assert not re.search(r"127\.0\.0\.1|localhost|startswith\(\s*[\"']http", source), path.name
        code = [c.source for c in book.cells if c.cell_type == "code"]
        assert NO_ENDPOINT_GUARD in code[0], f"{path.name}: the first code cell handles 'nothing configured'"
        for cell in code:
            if "aisa_integrations.testing" not in cell and "AIsaSimulator" not in cell:
                continue
            guarded = cell.startswith("import os\n\n" + NO_ENDPOINT_GUARD)
            outage_demo = path.name.startswith("03_") and OUTAGE_NOTE in cell and "outage = AIsaSimulator()" in cell
            assert guarded or outage_demo, f"{path.name}: the simulator used outside the two allowed places:\n{cell}"
            if outage_demo:  # the outage simulator never replaces the user's endpoint
                assert "os.environ" not in cell and "environ()" not in cell
        uses = [c for c in code if "outage." in c or "outage =" in c]
        assert all("AISA_" not in c for c in uses), path.name


@pytest.mark.parametrize("endpoint_env", ENDPOINTS, indirect=True)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, endpoint_env: str, tmp_path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    output = "\n".join(_text(c) for c in book.cells if c.cell_type == "code")
    expected = EXPECTED[path.name]
    wanted = expected["all"] + expected["plain" if endpoint_env == "plain" else "aisa"]
    if endpoint_env == "unconfigured":
        wanted = [*wanted, OWN_SIMULATOR_NOTE]
    else:
        assert OWN_SIMULATOR_NOTE not in output, "an endpoint was configured: the notebook must use it"
    for text in wanted:
        assert text in output, f"{path.name} on {endpoint_env}: {text!r} not in the output"
    charts = CHARTS.get(path.name, {}).get("plain" if endpoint_env == "plain" else "aisa", 0)
    assert _images(book) == charts, f"{path.name} on {endpoint_env}: {_images(book)} charts, expected {charts}"
