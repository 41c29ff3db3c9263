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
