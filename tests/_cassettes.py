"""vcrpy cassettes for replayed AIsa traffic.

Record modes, chosen by ``AISA_RECORD_MODE``:

- unset / ``none`` (CI, default): replay only. The client points at the public base URL with a
  dummy key; a request the cassette lacks fails the test. No socket is opened.
- ``rewrite`` with ``AISA_API_KEY`` set: re-record every cassette from the live API.
- ``simulator``: record from a local AIsa simulator. The file then says, in its first line, that it
  was not recorded from the live API.

Requests match on method, path and body (not host or headers), so a cassette replays against any
base URL. ``Authorization``, cookies and anything key-shaped are scrubbed before a cassette is
written, and tests assert structure and behaviour, never a model's wording, so that every cassette
can be re-recorded live.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vcr

from aisa_integrations.core.config import DEFAULT_BASE_URL
from aisa_integrations.core.errors import redact

CASSETTE_DIR = Path(__file__).resolve().parent.parent / "cassettes"
SYNTHETIC_NOTE = (
    "# Not recorded from the live AIsa API: recorded from aisa_integrations.testing.AIsaSimulator "
    "(scripted replies). Re-record live with AISA_API_KEY=... AISA_RECORD_MODE=rewrite pytest.\n"
)
DUMMY_KEY = "test-key-scrubbed"
_HEADERS_TO_DROP = ("authorization", "cookie", "set-cookie", "openai-organization", "x-api-key")


@dataclass(frozen=True)
class CassetteEnv:
    """Where the code under test should send its requests, and with which key."""

    base_url: str
    api_key: str
    mode: str


def _scrub_request(request: Any) -> Any:
    for name in list(request.headers):
        if name.lower() in _HEADERS_TO_DROP:
            del request.headers[name]
    if request.body:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        request.body = redact(body, os.environ.get("AISA_API_KEY")).encode()
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers") or {}
    for name in list(headers):
        if name.lower() in _HEADERS_TO_DROP:
            del headers[name]
    return response


def _vcr(record_mode: str) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTE_DIR),
        serializer="yaml",
        path_transformer=vcr.VCR.ensure_suffix(".yaml"),
        record_mode=record_mode,
        match_on=["method", "path", "body"],
        filter_headers=list(_HEADERS_TO_DROP),
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )


def _finish_synthetic(path: Path, sim_base: str) -> None:
    text = path.read_text()
    text = text.replace(sim_base, DEFAULT_BASE_URL)
    text = re.sub(r"http://127\.0\.0\.1:\d+/v1", DEFAULT_BASE_URL, text)
    text = re.sub(r"- 127\.0\.0\.1:\d+", "- api.aisa.one", text)
    if not text.startswith(SYNTHETIC_NOTE):
        text = SYNTHETIC_NOTE + text
    path.write_text(text)


@contextlib.contextmanager
def aisa_cassette(name: str) -> Iterator[CassetteEnv]:
    """Use ``cassettes/<name>.yaml`` in the mode ``AISA_RECORD_MODE`` selects."""
    mode = os.environ.get("AISA_RECORD_MODE", "none")
    path = CASSETTE_DIR / f"{name}.yaml"
    if mode == "rewrite":
        key = os.environ.get("AISA_API_KEY")
        if not key:
            raise RuntimeError("AISA_RECORD_MODE=rewrite records from the live API: set AISA_API_KEY.")
        base = os.environ.get("AISA_BASE_URL", DEFAULT_BASE_URL)
        with _vcr("all").use_cassette(name):
            yield CassetteEnv(base_url=base, api_key=key, mode="live")
        return
    if mode == "simulator":
        from aisa_integrations.testing import AIsaSimulator

        if path.exists():
            path.unlink()
        with AIsaSimulator() as sim:
            with _vcr("all").use_cassette(name):
                yield CassetteEnv(base_url=sim.base_url, api_key=sim.api_key or "any", mode="simulator")
            sim_base = sim.base_url
        _finish_synthetic(path, sim_base)
        return
    if not path.exists():
        raise FileNotFoundError(
            f"No cassette {path}. Record it: AISA_RECORD_MODE=simulator pytest ... (or =rewrite with AISA_API_KEY)."
        )
    with _vcr("none").use_cassette(name):
        yield CassetteEnv(base_url=DEFAULT_BASE_URL, api_key=DUMMY_KEY, mode="replay")
