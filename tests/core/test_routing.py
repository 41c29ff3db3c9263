"""The routing policy: routes, constraints, explanations, conversations (the classifier: test_classifier.py)."""

from __future__ import annotations

import itertools

import pytest

from aisa_integrations.core import ClientConfig
from aisa_integrations.core.catalog import default_catalog
from aisa_integrations.core.routing import (
    DEFAULT_ROUTES,
    SWITCH_CONFIDENCE,
    Cheapest,
    NoEligibleModelError,
    Requirements,
    TaskRouter,
    model_classifier,
)

# -- routes and constraints ------------------------------------------------------------------


def test_default_table_is_the_references():
    assert DEFAULT_ROUTES == {
        "code": "deepseek-coder",
        "creative": "claude-3-opus",
        "fast": "gpt-3.5-turbo",
        "vision": "gpt-4o",
        "chinese": "qwen-max",
        "reasoning": "gpt-4.1",
        "default": "gpt-4.1",
    }


def test_explicit_task_beats_the_classifier():
    decision = TaskRouter().decide("Write a poem", needs=Requirements(), task="code")
    assert (decision.task, decision.model, decision.reason) == ("code", "deepseek-coder", "explicit task")
    with pytest.raises(Exception, match="Unknown task 'poetry'"):
        TaskRouter().decide("x", needs=Requirements(), task="poetry")


def test_users_replace_routes_and_lists_are_fallback_chains():
    router = TaskRouter({"fast": "gemini-2.0-flash", "code": ["deepseek-coder", "gpt-4.1"]})
    assert router.decide("hi?", needs=Requirements()).model == "gemini-2.0-flash"
    decision = router.decide("Write a Python script that renames files", needs=Requirements())
    assert decision.targets == ["deepseek-coder", "gpt-4.1"] and decision.model == "deepseek-coder"


def test_cheapest_policy_route():
    router = TaskRouter({"fast": Cheapest(tier="fast")})
    decision = router.decide("hi?", needs=Requirements(vision=False))
    cheapest = min((m for m in default_catalog() if m.tier == "fast"), key=lambda m: m.input_per_1k + m.output_per_1k)
    assert decision.model == cheapest.id


def test_tools_skip_a_model_without_tools_and_say_why():
    router = TaskRouter({"reasoning": ["deepseek-r1", "gpt-4.1"]})
    decision = router.decide("Prove the theorem step by step", needs=Requirements(tools=True), task="reasoning")
    assert decision.model == "gpt-4.1"
    assert decision.skipped == [{"model": "deepseek-r1", "why": "no tool calling"}]
    assert decision.to_dict()["candidates"] == ["deepseek-r1", "gpt-4.1"]


def test_context_window_is_enforced():
    decision = TaskRouter().decide("summarise", task="fast", needs=Requirements(prompt_tokens=50_000))
    assert decision.model == "gpt-4.1"  # gpt-3.5-turbo's 16K window is too small; the default route takes it
    assert "exceeds the 16385-token window" in decision.skipped[0]["why"]


def test_nothing_eligible_is_a_clear_error():
    router = TaskRouter({"vision": "qwen-max", "default": "deepseek-r1"})
    needs = Requirements(vision=True, tools=True, prompt_tokens=3_000_000)
    with pytest.raises(NoEligibleModelError, match="No model can serve this vision request"):
        router.decide("what is this", needs=needs, images=1)


ROUTE_TABLES = [
    {},
    {"code": ["deepseek-coder", "gpt-4.1"], "fast": Cheapest(tier="fast")},
    {"vision": "qwen-max", "creative": "deepseek-r1", "reasoning": ["o1-mini", "gpt-4.1"]},
    {"default": Cheapest(tier="premium"), "chinese": ["qwen-max", "qwen-plus"]},
]
PROMPTS = ["Write a Python function", "Write a poem", "hi?", "Prove it step by step", "你好世界，你好", "Hmm " * 40]


@pytest.mark.parametrize("routes", ROUTE_TABLES, ids=range(len(ROUTE_TABLES)))
def test_zero_constraint_violations_over_a_matrix(routes):
    router = TaskRouter(routes)
    catalog = default_catalog()
    checked = 0
    for prompt, images, tools, json_schema, tokens in itertools.product(
        PROMPTS, (0, 1), (False, True), (False, True), (100, 20_000, 150_000, 3_000_000)
    ):
        needs = Requirements(vision=images > 0, tools=tools, json_schema=json_schema, prompt_tokens=tokens)
        try:
            decision = router.decide(prompt, needs=needs, images=images)
        except NoEligibleModelError:
            assert not any(not needs.violations(m) for m in catalog)  # only when truly nothing qualifies
            continue
        chosen = decision.targets
        for model in chosen:
            assert needs.violations(catalog.info(model)) == [], (prompt, needs, decision)
        checked += 1
    assert checked > 100


def test_custom_classifier_callables_and_their_failures():
    router = TaskRouter(classifier=lambda text: "creative")
    assert router.decide("anything", needs=Requirements()).task == "creative"
    router = TaskRouter(classifier=lambda text: ("code", 0.3, "my rule"))
    assert router.decide("x", needs=Requirements()).reason == "my rule"

    def broken(text):
        raise RuntimeError("classifier service down")

    decision = TaskRouter(classifier=broken).decide("Write a haiku", needs=Requirements())
    assert decision.task == "creative" and "custom classifier failed: RuntimeError" in decision.reason


def test_model_classifier_asks_a_cheap_model(sim):
    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
    sim.script("reasoning", model="gpt-4o-mini")
    router = TaskRouter(classifier=model_classifier(config))
    assert router.decide("anything at all", needs=Requirements()).task == "reasoning"
    assert sim.chat_requests("gpt-4o-mini")[0].body["max_tokens"] == 5
    sim.script("banana", model="gpt-4o-mini")  # an unusable answer falls back to the built-in classifier
    assert router.decide("Write a haiku", needs=Requirements()).task == "creative"


# -- conversations: sticky routing -------------------------------------------------------------

CODE_TURN = "my flask app returns 500 when I post json, the route reads request.form"
POEM_TURN = "write me a poem about the first snow of the year"
FOLLOW_UPS = ["make it shorter", "thanks!", "can you explain that again?", "ok and the second part?", "hmm"]


@pytest.mark.parametrize("follow_up", FOLLOW_UPS)
@pytest.mark.parametrize(("first", "task"), [(CODE_TURN, "code"), (POEM_TURN, "creative")])
def test_a_follow_up_keeps_the_conversations_task_and_model(first, task, follow_up):
    router = TaskRouter()
    alone = router.decide(follow_up, needs=Requirements())
    assert alone.task != task or alone.confidence < SWITCH_CONFIDENCE  # its own words do not say the task
    decision = router.decide(follow_up, earlier=[first], needs=Requirements())
    assert decision.task == task and decision.model == DEFAULT_ROUTES[task]
    assert decision.inherited and decision.to_dict()["inherited"] is True
    assert decision.reason.startswith("inherited from the conversation: the previous user turn was " + task)


def test_sticky_looks_back_past_follow_ups_and_a_new_task_switches():
    router = TaskRouter()
    decision = router.decide("shorter please", earlier=[CODE_TURN, "thanks", "one more thing"], needs=Requirements())
    assert decision.task == "code" and "3 back" in decision.reason
    switched = router.decide(POEM_TURN, earlier=[CODE_TURN], needs=Requirements())
    assert switched.task == "creative" and not switched.inherited and "inherited" not in switched.to_dict()


def test_an_explicit_task_beats_the_conversation_and_sticky_can_be_turned_off():
    router = TaskRouter()
    explicit = router.decide("make it shorter", earlier=[CODE_TURN], task="creative", needs=Requirements())
    assert (explicit.task, explicit.reason, explicit.inherited) == ("creative", "explicit task", False)
    loose = TaskRouter(sticky=False).decide("make it shorter", earlier=[CODE_TURN], needs=Requirements())
    assert loose.task == "default" and not loose.inherited


def test_a_conversation_with_nothing_to_inherit_routes_the_last_turn():
    decision = TaskRouter().decide("and what about tomorrow?", earlier=["hi", "what day is it"], needs=Requirements())
    assert not decision.inherited and decision.task in ("fast", "default")
