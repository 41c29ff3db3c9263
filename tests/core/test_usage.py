from __future__ import annotations

from aisa_integrations.core import parse_usage
from aisa_integrations.core.chat import chat
from aisa_integrations.core.usage import Usage


def test_full_usage():
    usage = parse_usage(
        {
            "prompt_tokens": 50,
            "completion_tokens": 200,
            "total_tokens": 250,
            "cost": 0.0025,
            "credits_remaining": 1.75,
            "prompt_tokens_details": {"cached_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 40},
        }
    )
    assert usage == Usage(50, 200, 250, 0.0025, 1.75, 10, 40)


def test_absent_figures_stay_absent():
    usage = parse_usage({"prompt_tokens": 5, "completion_tokens": 7})
    assert usage.total_tokens == 12
    assert usage.cost is None and usage.credits_remaining is None and usage.cached_tokens is None
    assert usage.to_dict() == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def test_no_usage():
    assert parse_usage(None) is None


def test_garbage_figures_are_dropped_not_invented():
    usage = parse_usage({"prompt_tokens": "n/a", "cost": "free", "completion_tokens": True})
    assert usage.prompt_tokens is None and usage.cost is None and usage.completion_tokens is None


def test_usage_from_the_sdk_object_keeps_gateway_extras(sim):
    from aisa_integrations.core import ClientConfig

    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
    completion = chat(config, {"model": "deepseek-r1", "messages": [{"role": "user", "content": "Think."}]})
    usage = parse_usage(completion["usage"])
    assert usage.cost is not None and usage.cost > 0
    assert usage.credits_remaining is not None and usage.credits_remaining < sim.initial_credits
    assert usage.reasoning_tokens and usage.reasoning_tokens > 0
    assert usage.cached_tokens == 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
