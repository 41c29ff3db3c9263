"""TaskRouterRunnable and the routing AIsaLLM against the simulator."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from pydantic import BaseModel

from aisa_integrations import AIsaChatModel, AIsaLLM, TaskRouterRunnable
from aisa_integrations.core.routing import Cheapest
from aisa_integrations.testing import Fault

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def router(sim):
    return TaskRouterRunnable(api_key=sim.api_key, base_url=sim.base_url)


@pytest.mark.parametrize(
    ("prompt", "task", "model"),
    [
        ("Write a Python function that reverses a string", "code", "deepseek-coder"),
        ("Write a haiku about the sea", "creative", "claude-3-opus"),
        ("What is the capital of France?", "fast", "gpt-3.5-turbo"),
        ("你好，请介绍一下你自己", "chinese", "qwen-max"),
        ("Prove that the square root of 2 is irrational", "reasoning", "gpt-4.1"),
    ],
)
def test_routes_each_task_to_its_model(router, sim, prompt, task, model):
    reply = router.invoke(prompt)
    route = reply.response_metadata["aisa_route"]
    assert (route["task"], route["model"], reply.response_metadata["model_name"]) == (task, model, model)
    assert sim.chat_requests()[-1].model == model
    assert set(route) == {"task", "model", "reason", "confidence", "candidates", "skipped"}


def test_images_go_to_vision(router, sim):
    reply = router.invoke([HumanMessage(content=[{"type": "text", "text": "Write Python for this"}, IMAGE])])
    assert reply.response_metadata["aisa_route"]["task"] == "vision" and sim.chat_requests()[-1].model == "gpt-4o"


def test_explicit_task_by_config_or_input_dict(router):
    by_config = router.invoke("Write a haiku", config={"configurable": {"task": "code"}})
    assert by_config.response_metadata["aisa_route"] == {
        **by_config.response_metadata["aisa_route"],
        "task": "code",
        "reason": "explicit task",
    }
    by_input = router.invoke({"task": "chinese", "input": "hello"})
    assert by_input.response_metadata["model_name"] == "qwen-max"


def test_calls_stream_batch_async(router):
    chunks = list(router.stream("Write a poem about rain"))
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.response_metadata["aisa_route"]["model"] == "claude-3-opus" and total.usage_metadata
    assert [r.response_metadata["aisa_route"]["task"] for r in router.batch(["hi?", "Write a poem"])] == [
        "fast",
        "creative",
    ]


async def test_async(router):
    reply = await router.ainvoke("Write a limerick")
    assert reply.response_metadata["aisa_route"]["task"] == "creative"
    chunks = [c async for c in router.astream({"task": "code", "input": "hello"})]
    assert any(c.response_metadata.get("aisa_route") for c in chunks)
    assert len(await router.abatch(["a?", "b?"])) == 2


def test_bound_tools_skip_a_model_without_tools(sim):
    router = TaskRouterRunnable({"reasoning": ["deepseek-r1", "gpt-4.1"]}, api_key=sim.api_key, base_url=sim.base_url)
    reply = router.bind_tools([multiply]).invoke("Calculate 6 times 7 step by step and prove it")
    route = reply.response_metadata["aisa_route"]
    assert route["model"] == "gpt-4.1" and route["skipped"] == [{"model": "deepseek-r1", "why": "no tool calling"}]
    assert reply.tool_calls and sim.chat_requests("deepseek-r1") == []


def test_no_eligible_model_fails_before_sending(sim):
    from aisa_integrations.core.catalog import ModelCatalog, default_catalog
    from aisa_integrations.core.routing import NoEligibleModelError

    text_only = ModelCatalog([m for m in default_catalog() if not m.vision])
    router = TaskRouterRunnable(
        {"vision": "qwen-max", "default": "deepseek-chat"},
        catalog=text_only,
        api_key=sim.api_key,
        base_url=sim.base_url,
    )
    with pytest.raises(NoEligibleModelError, match="No model can serve this vision request"):
        router.invoke([HumanMessage(content=[IMAGE])])
    assert sim.requests == []


def test_a_plain_runnable_route_is_skipped_for_tool_requests(sim):
    router = TaskRouterRunnable({"fast": RunnableLambda(lambda m: "hi")}, api_key=sim.api_key, base_url=sim.base_url)
    assert router.invoke("hi?").content == "hi"
    reply = router.bind_tools([multiply]).invoke("hi?")
    route = reply.response_metadata["aisa_route"]
    assert route["model"] == "gpt-4.1" and "plain runnable cannot take tools" in route["skipped"][0]["why"]


def test_per_route_fallback(sim):
    router = TaskRouterRunnable({"code": ["deepseek-coder", "gpt-4.1"]}, api_key=sim.api_key, base_url=sim.base_url)
    sim.inject("deepseek-coder", Fault(status=503))
    reply = router.invoke("Write a Go program that prints hello")
    assert reply.response_metadata["model_name"] == "gpt-4.1"
    assert reply.response_metadata["aisa"]["fallback_index"] == 1
    assert reply.response_metadata["aisa_route"]["candidates"] == ["deepseek-coder", "gpt-4.1"]


def test_routes_to_chat_models_runnables_and_policies(sim):
    custom = RunnableLambda(lambda messages: "from a custom runnable")
    router = TaskRouterRunnable(
        {
            "creative": AIsaChatModel(model="claude-3-5-sonnet", api_key=sim.api_key, base_url=sim.base_url),
            "fast": Cheapest(tier="fast"),
            "chinese": custom,
        },
        api_key=sim.api_key,
        base_url=sim.base_url,
    )
    assert router.invoke("Write a poem").response_metadata["model_name"] == "claude-3-5-sonnet"
    assert router.invoke("hi?").response_metadata["aisa_route"]["model"] == "gemini-1.5-flash"
    assert router.invoke("你好，你好").content == "from a custom runnable"


def test_structured_output_through_the_router(router, sim):
    person = router.with_structured_output(Person).invoke("Ada is 36")
    assert person == Person(name="Ada", age=36)
    strict = router.with_structured_output(Person, method="json_schema")
    assert strict.invoke({"task": "creative", "input": "Ada is 36"}) == Person(name="Ada", age=36)
    # claude-3-opus has no json_schema support in the catalog: the default route served instead
    assert sim.chat_requests()[-1].model == "gpt-4.1"


def test_in_lcel_and_agents(router, sim):
    chain = ChatPromptTemplate.from_template("Write a haiku about {x}") | router | StrOutputParser()
    assert "haiku about moss" in chain.invoke({"x": "moss"})
    agent = create_agent(router, tools=[multiply])
    result = agent.invoke({"messages": [("user", "Multiply 6 by 7")]})
    assert "42" in result["messages"][-1].content


def test_the_decision_is_a_run_in_callbacks(router):
    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.routes = []

        def on_chain_end(self, outputs, *, run_id, parent_run_id=None, **kwargs):
            if isinstance(outputs, dict) and "task" in outputs and "skipped" in outputs:
                self.routes.append((outputs["model"], parent_run_id))

    recorder = Recorder()
    router.invoke("Write a sonnet", config={"callbacks": [recorder]})
    assert len(recorder.routes) == 1 and recorder.routes[0][0] == "claude-3-opus"
    assert recorder.routes[0][1] is not None  # a child of the router's run


def test_decide_without_sending(router, sim):
    decision = router.decide([HumanMessage("Write a Rust function")])
    assert decision.model == "deepseek-coder" and sim.requests == []


# -- LlamaIndex ------------------------------------------------------------------------------


def test_llama_index_routing_llm(sim):
    llm = AIsaLLM(routes={"code": ["deepseek-coder", "gpt-4.1"]}, api_key=sim.api_key, api_base=sim.base_url)
    response = llm.complete("Write a Python function that reverses a string")
    assert response.additional_kwargs["aisa_route"]["model"] == "deepseek-coder"
    assert llm.complete("Write a haiku").additional_kwargs["aisa"]["served_model"] == "claude-3-opus"
    image = llm.chat(
        [
            ChatMessage(
                role="user", blocks=[TextBlock(text="what is it?"), ImageBlock(url="https://example.com/cat.png")]
            )
        ]
    )
    assert image.additional_kwargs["aisa_route"]["task"] == "vision"
    sim.inject("deepseek-coder", Fault(status=503))
    fallback = llm.chat([ChatMessage(role="user", content="Write a Python function that reverses a string")])
    assert fallback.additional_kwargs["aisa"]["served_model"] == "gpt-4.1"
    assert llm.decide([ChatMessage(role="user", content="hi")], task="chinese").model == "qwen-max"
    streamed = list(llm.stream_complete("Write a poem"))
    assert streamed[-1].additional_kwargs["aisa_route"]["model"] == "claude-3-opus"


async def test_llama_index_routing_async(sim):
    llm = AIsaLLM(routes={}, api_key=sim.api_key, api_base=sim.base_url)
    response = await llm.acomplete("你好，请介绍一下你自己")
    assert response.additional_kwargs["aisa_route"]["model"] == "qwen-max"


# -- conversations and users' own classifiers ----------------------------------------------------

CODE_ASK = "my flask app returns 500 when I post json and the route reads request.form"


def test_a_follow_up_stays_on_the_conversations_model_in_both_adapters(router, sim):
    conversation = [HumanMessage(CODE_ASK), ("ai", "Use request.get_json() instead."), HumanMessage("make it shorter")]
    reply = router.invoke(conversation)
    route = reply.response_metadata["aisa_route"]
    assert (route["task"], route["model"], route["inherited"]) == ("code", "deepseek-coder", True)
    assert "inherited from the conversation" in route["reason"] and sim.chat_requests()[-1].model == "deepseek-coder"
    loose = TaskRouterRunnable(api_key=sim.api_key, base_url=sim.base_url, sticky_routing=False)
    assert loose.invoke(conversation).response_metadata["aisa_route"]["model"] != "deepseek-coder"
    explicit = router.invoke(conversation, config={"configurable": {"task": "creative"}})
    assert explicit.response_metadata["aisa_route"]["model"] == "claude-3-opus"

    llm = AIsaLLM(routes={}, api_key=sim.api_key, api_base=sim.base_url)
    messages = [
        ChatMessage(role="user", content=CODE_ASK),
        ChatMessage(role="assistant", content="Use request.get_json() instead."),
        ChatMessage(role="user", content="thanks, and why?"),
    ]
    routed = llm.chat(messages).additional_kwargs["aisa_route"]
    assert routed["model"] == "deepseek-coder" and routed["inherited"] is True


def test_a_user_trained_classifier_drives_the_adapters(sim, tmp_path):
    from aisa_integrations.core.training import train_classifier
    from tests.core.test_classifier import USER_EXAMPLES

    path = train_classifier(USER_EXAMPLES).save(tmp_path / "mine.bin")
    routes = {"legal": "claude-3-opus", "medical": "gpt-4.1"}
    chat = AIsaChatModel(routes=routes, classifier=str(path), api_key=sim.api_key, base_url=sim.base_url)
    reply = chat.invoke("can my landlord keep my deposit after I moved out")
    assert reply.response_metadata["aisa_route"]["task"] == "legal" and sim.chat_requests()[-1].model == "claude-3-opus"
    llm = AIsaLLM(routes=routes, classifier=path, api_key=sim.api_key, api_base=sim.base_url)
    assert llm.complete("is ibuprofen safe with a fever").additional_kwargs["aisa_route"]["task"] == "medical"
