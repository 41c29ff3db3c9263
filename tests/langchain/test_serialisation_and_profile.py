"""dumpd/load keep the gateway and every setting for all three chat models; profiles say what every
member can do; common OpenAI parameters are declared fields; streams carry id and request_id."""

from __future__ import annotations

import json
import pickle
import warnings

import pytest
from langchain_core.load import dumpd, dumps, load, loads

from aisa_integrations import AIsaChatModel, FallbackPolicy, FallbackRunnable, TaskRouterRunnable

pytestmark = pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")


def _models():
    return [
        AIsaChatModel(model="gpt-4.1", fallback_models=["gpt-4o"], fallback_policy=FallbackPolicy(server_retries=3)),
        FallbackRunnable(["gpt-4.1", AIsaChatModel(model="claude-3-5-sonnet", temperature=0.2)], server_retries=2),
        TaskRouterRunnable(routes={"code": "deepseek-coder"}, cooldown=9.0),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["AIsaChatModel", "FallbackRunnable", "TaskRouterRunnable"])
def test_dump_and_load_keep_the_base_url_and_settings_wherever_loaded(index, monkeypatch):
    monkeypatch.setenv("AISA_API_KEY", "sk-test-key")
    original = _models()[index]  # made with the default base URL
    dumped = dumpd(original)
    assert dumped["kwargs"]["base_url"] == "https://api.aisa.one/v1"
    assert "sk-test-key" not in json.dumps(dumped)
    monkeypatch.setenv("AISA_BASE_URL", "http://127.0.0.1:9/v1")  # loaded where another gateway is configured
    for revived in (
        load(dumped, allowed_objects="all", secrets_from_env=True),  # no valid_namespaces needed
        loads(dumps(original), allowed_objects="all", secrets_from_env=True),
    ):
        assert type(revived) is type(original)
        assert revived.base_url == "https://api.aisa.one/v1"
        assert revived._get_llm_string() == original._get_llm_string()  # every answer-changing setting
        assert revived.fallback_policy == original.fallback_policy
        assert [getattr(m, "model", m) for m in revived.fallback_models] == [
            getattr(m, "model", m) for m in original.fallback_models
        ]


def test_a_model_is_pinned_to_the_gateway_it_was_made_for(monkeypatch):
    monkeypatch.setenv("AISA_API_KEY", "k")
    monkeypatch.setenv("AISA_BASE_URL", "http://127.0.0.1:8/v1")
    model = AIsaChatModel(model="gpt-4.1")
    assert model.base_url == "http://127.0.0.1:8/v1"
    monkeypatch.setenv("AISA_BASE_URL", "http://127.0.0.1:9/v1")
    assert pickle.loads(pickle.dumps(model)).base_url == "http://127.0.0.1:8/v1"


def test_the_default_load_still_refuses_partner_classes():
    with pytest.raises(ValueError, match="allowed_objects"):
        load(
            dumpd(AIsaChatModel(model="gpt-4.1", api_key="k")),
            secrets_map={"AISA_API_KEY": "k"},
            allowed_objects="core",
        )


def test_profiles_say_what_every_member_can_do():
    single = AIsaChatModel(model="gpt-4o", api_key="k").profile
    assert single["image_inputs"] is True and single["max_input_tokens"] == 128000
    chain = FallbackRunnable(["gpt-4o", "deepseek-chat"], api_key="k").profile
    assert chain["image_inputs"] is False  # deepseek-chat may answer, and it cannot see images
    assert chain["tool_calling"] is True and chain["max_input_tokens"] == 65536  # the smaller window
    router = TaskRouterRunnable(routes={"code": "deepseek-coder"}, api_key="k").profile
    assert router is not None and router["tool_calling"] is True and router["image_inputs"] is False
    assert FallbackRunnable(["gpt-4o", "my-own-model"], api_key="k").profile is None  # unknown member


def test_common_openai_parameters_are_fields_sent_without_warnings(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = AIsaChatModel(
            model="gpt-4o",
            api_key=sim.api_key,
            base_url=sim.base_url,
            n=2,
            logprobs=True,
            top_logprobs=2,
            seed=1,
            user="u",
            reasoning_effort="low",
            service_tier="auto",
        )
        model.invoke("hi")
    body = sim.chat_requests()[-1].body
    for key, value in {"n": 2, "logprobs": True, "top_logprobs": 2, "seed": 1, "user": "u"}.items():
        assert body[key] == value
    assert body["reasoning_effort"] == "low" and body["service_tier"] == "auto"


def test_streamed_replies_carry_id_and_request_id_like_invoke(sim):
    model = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url)
    invoked = model.invoke("hi")
    chunks = list(model.stream("hi"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert invoked.id and invoked.response_metadata["request_id"]
    assert merged.id and merged.id.startswith("chatcmpl-")
    assert merged.response_metadata["request_id"].startswith("req_")
