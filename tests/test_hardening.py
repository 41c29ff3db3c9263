"""A hostile or careless gateway: responses that are not chat completions, errors in 200 bodies and in
streams, and a gateway that echoes the key back in every surface it can. Real SDK, real sockets."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import pickle
import traceback

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_debug
from langchain_core.tracers.base import BaseTracer
from llama_index.core.base.llms.types import ChatMessage

from aisa_integrations import AIsaChatModel, AIsaLLM, FallbackRunnable, TaskRouterRunnable
from aisa_integrations.core import errors as E
from aisa_integrations.core.client import MAX_CLIENTS, cached_clients, clear_client_cache, get_client
from aisa_integrations.core.config import ClientConfig
from aisa_integrations.core.errors import parse_retry_after
from aisa_integrations.testing import AIsaSimulator, Fault

CANARY = "sk-canary-" + "Q7" * 16


def models(sim, **kw):
    return AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url, max_retries=0, **kw)


# -- responses that are not chat completions -------------------------------------------------

COMPLETION = {"id": "x", "object": "chat.completion", "model": "gpt-4o"}
SHAPES = {
    "html-page": (Fault(raw_body="<html><body>502 Bad Gateway</body></html>", content_type="text/html"), "not JSON"),
    "sse-to-a-plain-call": (
        Fault(raw_body='data: {"choices": []}\n\n', content_type="text/event-stream"),
        "event stream",
    ),
    "non-chat-json": (Fault(raw_body=json.dumps({"object": "list", "data": []})), "not a chat completion"),
    "no-choices": (Fault(raw_body=json.dumps({**COMPLETION, "choices": []})), "not a chat completion"),
    "null-message": (Fault(raw_body=json.dumps({**COMPLETION, "choices": [{"message": None}]})), "not a chat"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_body_that_is_not_a_chat_completion_is_a_malformed_response(sim, shape):
    fault, words = SHAPES[shape]
    sim.inject("gpt-4o", fault)
    with pytest.raises(E.MalformedResponseError, match=words) as info:
        models(sim).invoke("hi")
    assert "HTTP 200" in str(info.value) and info.value.model == "gpt-4o"
    sim.inject("gpt-4o", fault)
    with pytest.raises(E.MalformedResponseError):
        AIsaLLM(model="gpt-4o", api_key=sim.api_key, api_base=sim.base_url, max_retries=0).complete("hi")


@pytest.mark.parametrize("shape", ["html-page", "non-chat-json", "no-choices"])
def test_a_stream_answered_with_something_else_is_typed_too(sim, shape):
    sim.inject("gpt-4o", SHAPES[shape][0])
    with pytest.raises(E.MalformedResponseError):
        list(models(sim).stream("hi"))


def test_a_malformed_answer_fails_over(sim):
    sim.inject("gpt-4.1", SHAPES["html-page"][0])
    runnable = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url)
    assert runnable.invoke("hi").response_metadata["model_name"] == "claude-3-sonnet"


@pytest.mark.parametrize(
    ("code", "error", "fails_over"),
    [
        ("rate_limit_exceeded", E.RateLimitError, True),
        ("server_error", E.ServerError, True),
        ("insufficient_credits", E.InsufficientCreditsError, False),
        ("invalid_api_key", E.AuthenticationError, False),
        ("context_length_exceeded", E.ContextLengthExceededError, True),
    ],
)
def test_errors_in_a_200_body_are_typed_and_classified_like_their_status(sim, code, error, fails_over):
    sim.inject("gpt-4o", Fault(error_in_body=True, code=code, times=1))
    with pytest.raises(error):
        models(sim).invoke("hi")
    sim.inject("gpt-4.1", Fault(error_in_body=True, code=code))
    runnable = FallbackRunnable(
        ["gpt-4.1", "gemini-2.0-flash"], api_key=sim.api_key, base_url=sim.base_url, rate_limit_min_interval=0.01
    )
    if fails_over:
        assert runnable.invoke("hi").response_metadata["model_name"] == "gemini-2.0-flash"
    else:
        with pytest.raises(error):
            runnable.invoke("hi")


def test_an_in_band_stream_error_event_is_typed_and_fails_over_before_content(sim):
    sim.inject("gpt-4o", Fault(error_event_at=1, code="rate_limit_exceeded", times=1))
    with pytest.raises(E.RateLimitError):
        list(models(sim).stream("hi"))
    sim.inject("gpt-4.1", Fault(error_event_at=1, code="server_error"))
    runnable = FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], api_key=sim.api_key, base_url=sim.base_url)
    text = "".join(c.content for c in runnable.stream("hi"))
    assert text.startswith("Simulated reply from claude-3-sonnet")
    sim.inject("gpt-4o", Fault(error_event_at=4, code="server_error", message="upstream fell over", times=1))
    with pytest.raises(E.ServerError, match="upstream fell over"):
        list(models(sim).stream("hi"))  # after content: typed, never a truncated answer


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ({"retry-after": "soon"}, None),
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "Wed, 99 Foo 2015"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
    ],
)
def test_retry_after_is_parsed_robustly(header, seconds):
    assert parse_retry_after(header) == seconds


def test_a_bad_retry_after_from_the_gateway_does_not_crash_the_mapping(sim):
    sim.inject("gpt-4o", Fault(status=429, headers={"Retry-After": "soon"}))
    with pytest.raises(E.RateLimitError) as info:
        models(sim).invoke("hi")
    assert info.value.retry_after is None


def test_the_client_cache_is_bounded_and_holds_no_key():
    clear_client_cache()
    for tenant in range(300):
        get_client(ClientConfig.resolve(api_key=f"tenant-key-{tenant:04d}-abcdef", base_url="http://127.0.0.1:9/v1"))
    assert cached_clients() <= MAX_CLIENTS
    from aisa_integrations.core import client as module

    keys = repr(list(module._sync_clients.items))
    assert "tenant-key" not in keys
    clear_client_cache()


# -- the key, in every surface -----------------------------------------------------------------


@pytest.fixture
def hostile():
    """A gateway that echoes the key back: in error messages, bodies and headers."""
    with AIsaSimulator(api_key=CANARY) as sim:
        yield sim


def _surfaces(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    chain = exc
    while chain is not None:
        for name in ("body", "server_message", "message"):
            texts.append(repr(getattr(chain, name, None)))
        response = getattr(chain, "response", None)
        if response is not None:
            texts += [response.text, repr(dict(response.headers))]
            with contextlib.suppress(Exception):
                texts.append(repr(dict(response.request.headers)))
        request = getattr(chain, "request", None)
        if request is not None:
            texts.append(repr(dict(request.headers)))
        chain = chain.__cause__ or chain.__context__
    return texts


class Traces(BaseTracer):
    def __init__(self):
        super().__init__()
        self.errors: list[str] = []

    def _persist_run(self, run) -> None:
        pass

    def _end_trace(self, run) -> None:
        if run.error:
            self.errors.append(run.error)
        super()._end_trace(run)


class ErrorPayloads(BaseCallbackHandler):
    def __init__(self):
        self.errors: list[BaseException] = []

    def on_llm_error(self, error, **kwargs):
        self.errors.append(error)


def test_a_canary_key_echoed_by_the_gateway_leaks_nowhere(hostile):
    echo = {"X-Echo-Authorization": f"Bearer {CANARY}", "X-Echo-Key": CANARY}
    faults = [
        Fault(status=401, message=f"Key {CANARY} was revoked", headers=echo, times=1),
        Fault(status=503, message=f"upstream rejected Bearer {CANARY}", headers=echo, times=1),
        Fault(raw_body=f"<html>proxy error for {CANARY}</html>", content_type="text/html", headers=echo, times=1),
        Fault(error_in_body=True, code="rate_limit_exceeded", message=f"slow down {CANARY}", headers=echo, times=1),
        Fault(error_event_at=1, code="server_error", message=f"boom {CANARY}", times=1),
    ]
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    traces, payloads = Traces(), ErrorPayloads()
    debug_out = io.StringIO()
    caught: list[BaseException] = []
    try:
        with contextlib.redirect_stdout(debug_out):
            set_debug(True)
            llm = AIsaChatModel(model="gpt-4o", api_key=CANARY, base_url=hostile.base_url, max_retries=0)
            for fault in faults:
                hostile.inject("gpt-4o", fault)
                try:
                    if fault.error_event_at is not None:
                        list(llm.stream("hi", config={"callbacks": [traces, payloads]}))
                    else:
                        llm.invoke("hi", config={"callbacks": [traces, payloads]})
                except Exception as exc:
                    caught.append(exc)
            hostile.inject("*", Fault(status=503, message=f"all down {CANARY}", headers=echo))
            for call in (
                lambda: FallbackRunnable(
                    ["gpt-4.1", "claude-3-sonnet"], api_key=CANARY, base_url=hostile.base_url
                ).invoke("hi", config={"callbacks": [traces, payloads]}),
                lambda: AIsaLLM(model="gpt-4o", api_key=CANARY, api_base=hostile.base_url, max_retries=0).chat(
                    [ChatMessage(role="user", content="hi")]
                ),
            ):
                try:
                    call()
                except Exception as exc:
                    caught.append(exc)
    finally:
        set_debug(False)
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert len(caught) == 7
    surfaces = [text for exc in caught for text in _surfaces(exc)]
    surfaces += traces.errors + [text for exc in payloads.errors for text in _surfaces(exc)]
    surfaces += [log.getvalue(), debug_out.getvalue()]
    assert traces.errors and payloads.errors and debug_out.getvalue()
    leaks = [text for text in surfaces if CANARY in text or CANARY[:20] in text]
    assert leaks == []


def test_pickles_carry_no_key_and_read_it_again_from_the_environment(hostile, monkeypatch):
    objects = [
        AIsaChatModel(model="gpt-4o", api_key=CANARY, base_url=hostile.base_url),
        FallbackRunnable(["gpt-4.1", "claude-3-sonnet"], api_key=CANARY, base_url=hostile.base_url),
        TaskRouterRunnable({"code": ["deepseek-coder", "gpt-4.1"]}, api_key=CANARY, base_url=hostile.base_url),
        AIsaLLM(model="gpt-4o", fallback_models=["qwen-max"], api_key=CANARY, api_base=hostile.base_url),
    ]
    for obj in objects:
        data = pickle.dumps(obj)
        assert CANARY.encode() not in data, type(obj).__name__
        with pytest.raises(E.MissingAPIKeyError, match="AISA_API_KEY"):
            pickle.loads(data)
        monkeypatch.setenv("AISA_API_KEY", CANARY)
        revived = pickle.loads(data)
        monkeypatch.delenv("AISA_API_KEY")
        if isinstance(revived, AIsaLLM):
            assert revived.complete("hi").text
        else:
            assert revived.invoke("hi").content


def test_a_block_langchain_core_cannot_trace_is_a_typed_input_error(sim):
    """Found by the fuzz lane: langchain-core reads messages for tracing before the model sees them,
    and raises a bare ValueError on a base64 image without a mime type."""
    from langchain_core.messages import HumanMessage

    from aisa_integrations import AIsaChatModel, InvalidRequestError

    model = AIsaChatModel(model="gpt-4o", api_key=sim.api_key, base_url=sim.base_url)
    bad = [HumanMessage(content=[{"type": "image", "base64": "iVBORw0KGgo="}])]
    for call in (lambda: model.invoke(bad), lambda: list(model.stream(bad))):
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content\[0\].*mime_type"):
            call()
    assert sim.requests == []
    empty_audio = [HumanMessage(content=[{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}])]
    with pytest.raises(InvalidRequestError, match=r"before anything was sent\): Must provide one of"):
        model.invoke(empty_audio)
    assert sim.requests == []
