"""The routing policy: the classifier's rules and accuracy, routes, constraints, explanations."""

from __future__ import annotations

import itertools

import pytest

from aisa_integrations.core import ClientConfig
from aisa_integrations.core.catalog import default_catalog
from aisa_integrations.core.routing import (
    DEFAULT_ROUTES,
    Cheapest,
    Classification,
    NoEligibleModelError,
    Requirements,
    TaskRouter,
    classify_task,
    model_classifier,
)
from tests.data.routing_prompts import LABELLED, VISION


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("```python\nprint('x')\n```", "code"),  # a fence
        ("Traceback (most recent call last):\n  File 'a.py'\nValueError: bad", "code"),  # a stack trace
        ("x = foo(bar); y = [1, 2]; console.log(y)", "code"),  # code-like syntax
        ("Write a program that sorts names", "code"),  # asks for code, no language named
        ("How do I read a file in Rust?", "code"),  # asks in a named language, no snippet
        ("Solve 3x + 7 = 22 step by step", "reasoning"),  # maths
        ("If all cats are mammals and Tom is a cat, is Tom a mammal? Deduce it.", "reasoning"),  # logic
        ("Analyze the trade-offs of microservices for a small team", "reasoning"),  # analysis
        ("Write a poem about the sea", "creative"),  # poem
        ("Write a short story about a robot", "creative"),  # story
        ("Give me a slogan for a bakery", "creative"),  # slogan
        ("Pretend you are a wizard and introduce yourself", "creative"),  # role-play
        ("What is the capital of Peru?", "fast"),  # a short simple question
        ("请介绍一下长城的历史", "chinese"),  # mostly Chinese
    ],
)
def test_each_rule(text, task):
    result = classify_task(text)
    assert result.task == task, result
    assert 0 < result.confidence <= 1 and result.reason


def test_images_mean_vision_whatever_the_text():
    assert classify_task("Write a Python function", images=2) == Classification(
        "vision", 1.0, "the request carries 2 image(s)"
    )


def test_chinese_with_english_terms_and_english_with_one_hanzi():
    assert classify_task("请解释一下 Kubernetes 的 Pod 是什么").task == "chinese"
    assert classify_task("What does the character 水 mean?").task == "fast"


def test_long_unremarkable_text_goes_to_the_default_route():
    text = "I have been thinking about my garden and the plants I grew last year in the sunny corner " * 3
    assert classify_task(text).task == "default"


def test_deterministic():
    assert all(classify_task(p) == classify_task(p) for p, _ in LABELLED)


def test_accuracy_on_the_labelled_set():
    """The README quotes this figure; the set has 110 prompts over six task types, some deliberately hard."""
    assert len(LABELLED) + len(VISION) >= 100
    assert {t for _, t in LABELLED} | {t for _, t in VISION} == {
        "code",
        "creative",
        "fast",
        "reasoning",
        "chinese",
        "vision",
    }
    correct = sum(classify_task(p).task == t for p, t in LABELLED)
    correct += sum(classify_task(p, images=1).task == t for p, t in VISION)
    accuracy = correct / (len(LABELLED) + len(VISION))
    print(f"routing classifier accuracy: {accuracy:.1%} ({correct}/{len(LABELLED) + len(VISION)})")
    assert accuracy >= 0.95


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
    decision = router.decide("Prove the theorem step by step", needs=Requirements(tools=True))
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
