from __future__ import annotations

import openai
import pytest

from aisa_integrations.core.catalog import ModelCatalog, ModelInfo, default_catalog, family_of

# Every model id the AIsa reference names, by family.
REFERENCE_MODELS = {
    "gpt": ["gpt-4.1", "gpt-4o", "gpt-4o-mini", "o1", "o1-mini", "o3-mini", "gpt-3.5-turbo"],
    "claude": ["claude-3-5-sonnet", "claude-3-opus", "claude-3-sonnet"],
    "gemini": ["gemini-2.0-flash", "gemini-1.5-pro", "gemini-1.5-flash"],
    "qwen": ["qwen-max", "qwen-plus", "qwen2.5-72b-instruct"],
    "deepseek": ["deepseek-chat", "deepseek-coder", "deepseek-v3", "deepseek-r1"],
    "grok": ["grok-2", "grok-beta"],
}


@pytest.mark.parametrize(("model", "family"), [(m, f) for f, models in REFERENCE_MODELS.items() for m in models])
def test_every_reference_model_is_described(model, family):
    info = default_catalog().get(model)
    assert info is not None and info.known
    assert info.family == family
    assert info.context_window and info.max_output_tokens and info.max_output_tokens <= info.context_window
    assert info.tier in ("fast", "balanced", "premium")
    assert info.input_per_1k is not None and info.output_per_1k is not None and info.price_source
    for flag in ("vision", "tools", "json_schema", "reasoning", "assistant_prefill"):
        assert isinstance(getattr(info, flag), bool)


def test_reference_prices_are_used_where_given():
    catalog = default_catalog()
    assert catalog.get("gpt-4.1").input_per_1k == 0.01
    assert catalog.get("gemini-2.0-flash").input_per_1k == 0.001
    assert catalog.get("qwen-max").input_per_1k == 0.005
    assert catalog.get("deepseek-v3").input_per_1k == 0.002
    assert "reference" in catalog.get("claude-3-sonnet").price_source


def test_capabilities_that_routing_depends_on():
    catalog = default_catalog()
    assert catalog.get("gpt-4o").vision and not catalog.get("qwen-max").vision
    assert catalog.get("deepseek-r1").reasoning and not catalog.get("deepseek-r1").tools
    assert catalog.get("claude-3-opus").assistant_prefill and not catalog.get("gpt-4.1").assistant_prefill


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("gpt4o", "gpt-4o"),
        ("claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("gemini-flash", "gemini-2.0-flash"),
        ("deepseek-coda", "deepseek-coder"),
        ("Qwen-Max", "qwen-max"),
    ],
)
def test_suggestions_for_misspelt_ids(typo, expected):
    assert expected in default_catalog().suggest(typo)


def test_no_suggestions_for_nonsense():
    assert default_catalog().suggest("zzzzzzzz") == []


def test_unknown_ids_get_a_family_and_unknown_capabilities():
    info = ModelCatalog().info("claude-4-opus-20990101")
    assert (info.family, info.developer, info.known) == ("claude", "Anthropic", False)
    assert info.vision is None and info.tools is None and info.context_window is None
    assert family_of("mystery-model") == ("unknown", "unknown")


def test_users_can_override_and_extend():
    catalog = ModelCatalog()
    catalog.register(ModelInfo(id="my-finetune", family="gpt", developer="me", tools=True, context_window=8000))
    assert catalog.get("my-finetune").tools
    updated = catalog.update("gpt-4o", input_per_1k=0.001)
    assert updated.input_per_1k == 0.001 and catalog.get("gpt-4o").input_per_1k == 0.001
    assert default_catalog().get("gpt-4o").input_per_1k == 0.01  # another catalog is untouched
    catalog.remove("my-finetune")
    assert "my-finetune" not in catalog


def test_estimate_cost():
    info = default_catalog().get("gpt-4o-mini")
    assert info.estimate_cost(1000, 1000) == pytest.approx(0.00075)
    assert ModelCatalog().info("nope").estimate_cost(10) is None


def test_select_cheapest_first():
    fast_vision = default_catalog().select(tier="fast", vision=True)
    assert fast_vision and all(m.vision and m.tier == "fast" for m in fast_vision)
    prices = [m.input_per_1k + m.output_per_1k for m in fast_vision]
    assert prices == sorted(prices)
    assert all(m.context_window >= 1_000_000 for m in default_catalog().select(min_context=1_000_000))


def test_refresh_from_get_models(sim):
    sim.add_model("qwen3-coder-plus")
    catalog = ModelCatalog()
    added = catalog.refresh(openai.OpenAI(api_key=sim.api_key, base_url=sim.base_url))
    assert added == ["qwen3-coder-plus"]
    info = catalog.get("qwen3-coder-plus")
    assert info.family == "qwen" and info.known is False and info.tools is None
    assert catalog.get("gpt-4.1").known  # described models are kept as they were
