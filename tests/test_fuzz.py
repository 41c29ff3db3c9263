"""Fuzzing both adapters: every input ends in a request the strict simulator accepts, or in one of the
package's own errors raised before anything is sent — never a stray KeyError, TypeError or
UnicodeEncodeError from somewhere inside.

The slow lane (marker ``fuzz``): 2,000 generated calls per adapter through the adapter and the core,
each finished request checked against the simulator's own validation, plus a smaller end-to-end run
over real sockets. ``pytest -m "not fuzz"`` skips it.
"""

from __future__ import annotations

import datetime
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock, ToolCallBlock

from aisa_integrations import AIsaChatModel, AIsaLLM
from aisa_integrations.core.catalog import default_catalog
from aisa_integrations.core.errors import AIsaError
from aisa_integrations.core.transport import _body
from aisa_integrations.testing import AIsaSimulator
from aisa_integrations.testing._replies import count_prompt_tokens
from aisa_integrations.testing._validation import validate_chat
from tests.test_reliability import _tools, lc_blocks, li_blocks

pytestmark = pytest.mark.fuzz

FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))

_strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "", " ", "ok", "x" * 70, "名字", "\x00"]),
)
_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**7), 10**7),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
)
_odd_json = st.one_of(
    st.just(datetime.date(2025, 1, 1)),
    st.just({1, 2}),
    st.just(b"bytes"),
    st.just(math.nan),
    st.just(float("inf")),
    _strings,
    st.integers(),
)
_call_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "temperature": _numbers,
        "top_p": _numbers,
        "max_tokens": _numbers,
        "n": _numbers,
        "seed": _numbers,
        "presence_penalty": _numbers,
        "stop": st.one_of(_numbers, st.lists(st.one_of(_strings, st.integers()), max_size=3)),
        "model": st.one_of(st.none(), st.just(""), st.integers(), st.sampled_from(["gpt-4o", "deepseek-r1", "nope"])),
        "tool_choice": st.one_of(_strings, st.booleans(), st.none(), st.just({"type": "function"})),
        "response_format": st.one_of(st.none(), _strings, st.just({"type": "json_schema"}), st.just({"type": "x"})),
        "logprobs": _numbers,
        "user": st.one_of(_strings, st.integers()),
        "extra_body": st.one_of(st.dictionaries(_strings, _odd_json, max_size=2), st.integers()),
        "temprature": _numbers,
    },
)


def _tool_call(name, args):
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c1"}])


_lc_messages = st.lists(
    st.one_of(
        st.builds(lambda b: HumanMessage(content=b), st.lists(lc_blocks, min_size=1, max_size=3)),
        st.builds(lambda t: HumanMessage(content=t), _strings),
        st.builds(lambda t: SystemMessage(content=t), _strings),
        st.builds(lambda t: AIMessage(content=t), _strings),
        st.builds(
            _tool_call,
            st.sampled_from(["get_weather", "bad name", ""]),
            st.dictionaries(_strings, _odd_json, max_size=2),
        ),
        st.builds(lambda t, i: ToolMessage(content=t, tool_call_id=i), _strings, st.sampled_from(["c1", ""])),
    ),
    max_size=4,
)


def _finished_request(call, engine):
    """What would go on the wire: the first candidate's request, as JSON bytes."""
    target = call.candidates[0]
    return json.loads(_body(engine.attempt_request(call, target, None), stream=False, include_usage=False))


def _accepted(body) -> None:
    catalog = default_catalog()
    problem = validate_chat(body, catalog, lambda m: catalog.get(m) is not None, count_prompt_tokens)
    # An id the catalog does not know is sent, never blocked: only the gateway can say it is unknown.
    assert problem is None or problem[1] == "model_not_found", (problem, body)


LC = AIsaChatModel(model="gpt-4o", api_key="fuzz-key", base_url="http://127.0.0.1:9/v1")
LLM = AIsaLLM(model="gpt-4o", api_key="fuzz-key", api_base="http://127.0.0.1:9/v1")


@FUZZ
@given(messages=_lc_messages, kwargs=_call_kwargs, tools=st.one_of(st.none(), st.lists(_tools, max_size=2)))
def test_langchain_inputs_become_accepted_requests_or_our_errors(messages, kwargs, tools):
    kwargs = dict(kwargs)
    if tools is not None:
        kwargs["tools"] = tools
    try:
        call = LC._prepare(list(messages), None, kwargs)
        body = _finished_request(call, LC._engine)
    except AIsaError:
        return
    _accepted(body)


_li_messages = st.lists(
    st.one_of(
        st.builds(
            lambda blocks, role: ChatMessage(role=role, blocks=blocks),
            st.lists(li_blocks, min_size=1, max_size=3),
            st.sampled_from(["user", "assistant", "system"]),
        ),
        st.builds(lambda t: ChatMessage(role="user", blocks=[TextBlock(text=t)]), _strings),
        st.builds(
            lambda name, args: ChatMessage(
                role="assistant", blocks=[ToolCallBlock(tool_call_id="c1", tool_name=name, tool_kwargs=args)]
            ),
            st.sampled_from(["get_weather", "bad name"]),
            st.dictionaries(_strings, _odd_json, max_size=2),
        ),
        st.builds(
            lambda t, i: ChatMessage(role="tool", content=t, additional_kwargs={"tool_call_id": i}),
            _strings,
            st.sampled_from(["c1", "", None]),
        ),
        st.builds(
            lambda u: ChatMessage(role="user", blocks=[ImageBlock(url=u)]),
            st.sampled_from(["https://example.com/a.png", "data:image/png,notbase64!!", "ftp://x/y.png"]),
        ),
    ),
    max_size=4,
)


@FUZZ
@given(messages=_li_messages, kwargs=_call_kwargs)
def test_llama_index_inputs_become_accepted_requests_or_our_errors(messages, kwargs):
    try:
        call = LLM._prepare(list(messages), dict(kwargs))
        body = _finished_request(call, LLM._engine)
    except AIsaError:
        return
    _accepted(body)


@pytest.fixture(scope="module")
def shared_sim():
    with AIsaSimulator() as sim:
        yield sim


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages=_lc_messages, kwargs=_call_kwargs)
def test_end_to_end_nothing_malformed_reaches_the_gateway(shared_sim, messages, kwargs):
    llm = AIsaChatModel(model="gpt-4o", api_key=shared_sim.api_key, base_url=shared_sim.base_url, max_retries=0)
    before = len(shared_sim.requests)
    try:
        llm.invoke(list(messages) or [HumanMessage("hi")], **kwargs)
    except AIsaError as exc:
        if len(shared_sim.requests) > before:  # sent: only a gateway answer may refuse it, never bad JSON
            assert shared_sim.requests[-1].status != 0, exc
        return
    assert shared_sim.requests[-1].status == 200
