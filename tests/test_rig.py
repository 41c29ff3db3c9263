"""The rig itself: no network beyond loopback, lazy framework imports, clear ImportErrors."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
from pytest_socket import SocketConnectBlockedError


def test_non_loopback_sockets_are_refused():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.216.34", 443), timeout=1)


def test_import_pulls_in_no_framework():
    code = (
        "import sys, aisa_integrations; "
        "assert not {'langchain_core','llama_index'} & {m.split('.')[0] for m in sys.modules}, 'framework imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("name", "blocked", "extra"),
    [("AIsaChatModel", "langchain_core", "langchain"), ("AIsaLLM", "llama_index", "llama-index")],
)
def test_missing_extra_names_the_install_command(name, blocked, extra):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # as if the extra were not installed
        import aisa_integrations
        try:
            aisa_integrations.{name}
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert f'pip install "aisa-integrations[{extra}]"' in out


def test_cassettes_hold_no_credentials():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "cassettes"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, "no cassettes found"
    key_shaped = re.compile(r"Bearer [A-Za-z0-9_.-]{8,}|sk-[A-Za-z0-9_-]{16,}|sim-key-not-secret")
    for path in files:
        text = path.read_text()
        assert not re.search(r"(?im)^\s*-?\s*authorization\s*:", text), f"{path} holds an Authorization header"
        assert not key_shaped.search(text), f"{path} holds a key-shaped string"


def test_lazy_root_exports_match_the_modules():
    # The root lists names instead of importing them (the openai SDK costs ~0.5 s); keep the lists honest.
    import aisa_integrations
    from aisa_integrations.core import errors

    assert set(aisa_integrations._ERRORS) == set(errors.__all__) - {
        "map_openai_error",
        "redact",
        "error_from_body",
        "parse_retry_after",
    }
    for name in aisa_integrations.__all__:
        assert getattr(aisa_integrations, name) is not None
