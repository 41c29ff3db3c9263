"""Key and base-URL resolution, and the shared clients built from them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from aisa_integrations.core import ClientConfig, MissingAPIKeyError, get_async_client, get_client
from aisa_integrations.core.config import DEFAULT_BASE_URL, resolve_api_key, resolve_base_url
from aisa_integrations.core.errors import ConfigurationError


def test_key_from_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("AISA_API_KEY", "env-key")
    assert resolve_api_key("arg-key").get_secret_value() == "arg-key"


def test_key_from_aisa_environment(monkeypatch):
    monkeypatch.setenv("AISA_API_KEY", "env-key")
    assert resolve_api_key().get_secret_value() == "env-key"


def test_openai_key_is_never_used(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-should-not-travel")
    with pytest.raises(MissingAPIKeyError) as info:
        ClientConfig.resolve()
    assert "AISA_API_KEY" in str(info.value)
    assert "sk-openai" not in str(info.value)


def test_missing_key_is_a_value_error_naming_the_variable():
    with pytest.raises(ValueError, match="AISA_API_KEY"):
        resolve_api_key("   ")


def test_openai_base_url_is_never_used(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    assert resolve_base_url() == DEFAULT_BASE_URL
    monkeypatch.setenv("AISA_BASE_URL", "http://127.0.0.1:9/v1/")
    assert resolve_base_url() == "http://127.0.0.1:9/v1"
    assert resolve_base_url("https://eu.example/v1") == "https://eu.example/v1"


def test_base_url_must_be_http():
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        resolve_base_url("api.aisa.one/v1")


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"timeout": 0}])
def test_bad_transport_settings_are_rejected(kwargs):
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve(api_key="k", **kwargs)


def test_key_is_secret_in_repr():
    config = ClientConfig.resolve(api_key="super-secret-key")
    assert "super-secret-key" not in repr(config)
    assert "super-secret-key" not in str(config)


def test_client_gets_explicit_key_and_url_even_with_openai_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    client = get_client(ClientConfig.resolve(api_key="aisa-key", base_url="http://127.0.0.1:1/v1"))
    assert client.api_key == "aisa-key"
    assert str(client.base_url) == "http://127.0.0.1:1/v1/"
    assert client.default_headers["X-AIsa-Client"].startswith("aisa-integrations/")


def test_one_client_per_configuration_shared_across_threads():
    config = ClientConfig.resolve(api_key="k", base_url="http://127.0.0.1:1/v1")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_client(config))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    other = get_client(ClientConfig.resolve(api_key="k", base_url="http://127.0.0.1:1/v1", timeout=5))
    assert other is not seen[0]


def test_async_clients_are_per_event_loop():
    config = ClientConfig.resolve(api_key="k", base_url="http://127.0.0.1:1/v1")

    async def grab():
        return get_async_client(config), get_async_client(config)

    a1, a2 = asyncio.run(grab())
    b1, _ = asyncio.run(grab())
    assert a1 is a2
    assert a1 is not b1


def test_injected_http_client_is_used():
    import httpx2

    injected = httpx2.Client()
    client = get_client(ClientConfig.resolve(api_key="k", base_url="http://127.0.0.1:1/v1", http_client=injected))
    assert client._client is injected
