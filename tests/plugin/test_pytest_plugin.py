"""The pytest plugin, used the way a user would: a separate test file in its own directory, nothing
imported from our tests (a conftest there only overrides the simulator's options); pytest finds the
fixtures through the entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

USER_TESTS = textwrap.dedent(
    """
    from aisa_integrations import AIsaChatModel, FallbackPolicy
    from aisa_integrations.llama_index import AIsaLLM


    def test_a_chat_against_the_simulator(aisa_env):
        answer = AIsaChatModel(model="gpt-4o-mini").invoke("hello")
        assert answer.content and aisa_env.chat_requests()[-1].model == "gpt-4o-mini"


    def test_an_outage_is_survived(aisa_env, aisa_fault):
        aisa_fault("gpt-4.1", status=503)
        model = AIsaChatModel(
            model="gpt-4.1", fallback_models=["claude-3-5-sonnet"], fallback_policy=FallbackPolicy(server_retries=0)
        )
        assert model.invoke("hi").response_metadata["model_name"] == "claude-3-5-sonnet"
        assert [r.status for r in aisa_env.chat_requests("gpt-4.1")] == [503]


    def test_explicit_settings_and_scripts(aisa_simulator):
        aisa_simulator.script("scripted answer", model="gpt-4o")
        llm = AIsaLLM(model="gpt-4o", api_key=aisa_simulator.api_key, api_base=aisa_simulator.base_url)
        assert llm.complete("anything").text == "scripted answer"


    def test_options_are_the_users(aisa_simulator):
        assert aisa_simulator.credits == 5.0
    """
)

USER_CONFTEST_FREE_OPTIONS = textwrap.dedent(
    """
    import pytest


    @pytest.fixture
    def aisa_simulator_options():
        return {"credits": 5.0}
    """
)


def test_the_plugin_is_registered_through_an_entry_point():
    assert any(e.value == "aisa_integrations.testing.pytest_plugin" for e in entry_points(group="pytest11"))


def test_a_users_suite_gets_the_fixtures(tmp_path):
    (tmp_path / "test_my_app.py").write_text(USER_TESTS)
    (tmp_path / "conftest.py").write_text(USER_CONFTEST_FREE_OPTIONS)  # only to override the options
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith(("AISA_", "OPENAI_"))},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout


def test_the_fixture_forgets_what_was_learnt_about_its_gateway(tmp_path):
    """A later test whose simulator reuses the port starts clean: no open breaker, no out-of-credits mark."""
    (tmp_path / "test_state.py").write_text(
        textwrap.dedent(
            """
            from aisa_integrations.core.breakers import BreakerSettings, breakers

            URL = []


            def test_one_opens_a_breaker(aisa_simulator):
                URL.append(aisa_simulator.base_url)
                for _ in range(3):
                    breakers.get(aisa_simulator.base_url, "gpt-4.1").acquire(BreakerSettings()).failure()
                assert breakers.get(aisa_simulator.base_url, "gpt-4.1").state == "open"


            def test_two_sees_it_forgotten():
                assert breakers.get(URL[0], "gpt-4.1").state == "closed"
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
