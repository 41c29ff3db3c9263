"""langchain-tests' standard suites: unit tests always, integration tests live with AISA_API_KEY."""

from __future__ import annotations

import os

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from aisa_integrations import AIsaChatModel


class TestAIsaChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[AIsaChatModel]:
        return AIsaChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": "gpt-4o", "api_key": "test-key"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        # AISA_BASE_URL from the environment is covered in test_chat_model.py: test_serdes compares a
        # model built outside this environment with one revived inside it.
        return ({"AISA_API_KEY": "env-key"}, {"model": "gpt-4o"}, {"api_key": "env-key"})

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "claude-3-sonnet"


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("AISA_API_KEY"), reason="live test: set AISA_API_KEY")
class TestAIsaChatModelIntegration(ChatModelIntegrationTests):
    """Runs against the live AIsa API (skipped without AISA_API_KEY)."""

    @property
    def chat_model_class(self) -> type[AIsaChatModel]:
        return AIsaChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": "gpt-4o", "temperature": 0}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict:
        return {"invoke": ["cache_read_input"], "stream": ["cache_read_input"]}

    @property
    def model_override_value(self) -> str:
        return "gpt-4o-mini"


class TestAIsaChatModelIntegrationAgainstSimulator(ChatModelIntegrationTests):
    """The same integration suite, offline, against the simulator: the protocol half of each test.

    The simulator scripts its replies, so these check request/response handling (tool calls,
    streaming merges, usage, structured output, multimodal requests), not model quality.
    """

    @pytest.fixture(scope="class", autouse=True)
    def _simulator(self, request: pytest.FixtureRequest):
        from aisa_integrations.testing import AIsaSimulator

        with AIsaSimulator(api_key=None) as sim:
            request.cls.base_url = sim.base_url
            yield sim

    @property
    def chat_model_class(self) -> type[AIsaChatModel]:
        return AIsaChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": "gpt-4o", "api_key": "sim", "base_url": self.base_url}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "gpt-4o-mini"

    @pytest.fixture(autouse=True)
    def _offline_media(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The suite downloads its test media with httpx; serve small local files instead."""
        import httpx

        from tests._media import fake_media_bytes

        def fake_get(url, *args, **kwargs):
            return httpx.Response(200, content=fake_media_bytes(str(url)), request=httpx.Request("GET", url))

        monkeypatch.setattr(httpx, "get", fake_get)
