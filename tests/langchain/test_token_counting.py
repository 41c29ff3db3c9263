"""Token counting works offline for every catalog family: no ImportError, trim_messages works."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, trim_messages
from langchain_core.tools import tool

from aisa_integrations import AIsaChatModel
from aisa_integrations.core import tokens
from aisa_integrations.core.catalog import default_catalog

FAMILIES = sorted({default_catalog().get(i).family: i for i in default_catalog().ids()}.items())


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


CONVERSATION = [
    SystemMessage("You are brief."),
    HumanMessage("Tell me about the history of the city of Paris " * 5),
    AIMessage("", tool_calls=[{"id": "c1", "name": "get_weather", "args": {"city": "Paris"}}]),
    ToolMessage("sunny", tool_call_id="c1"),
    AIMessage("It is sunny in Paris."),
    HumanMessage("And tomorrow?"),
]


@pytest.mark.parametrize(("family", "model"), FAMILIES)
def test_every_family_counts_offline_and_trims(family, model):
    llm = AIsaChatModel(model=model, api_key="k")
    assert llm.get_num_tokens("Hello, world!") == 4
    total = llm.get_num_tokens_from_messages(CONVERSATION)
    assert 60 < total < 140
    assert llm.get_num_tokens_from_messages(CONVERSATION, tools=[get_weather]) > total  # tools count
    trimmed = trim_messages(CONVERSATION, max_tokens=40, token_counter=llm, strategy="last", include_system=True)
    assert trimmed[0] == CONVERSATION[0] and trimmed[-1] == CONVERSATION[-1] and len(trimmed) < len(CONVERSATION)
    assert llm.get_num_tokens_from_messages(trimmed) <= 40


def test_the_estimate_counts_words_digits_cjk_and_images():
    assert tokens.count_tokens("internationalization", "claude-3-opus") == 4  # a long word: several
    assert tokens.count_tokens("1234567", "claude-3-opus") == 3  # digits in threes
    assert tokens.count_tokens("你好，世界", "qwen-max") == 5  # one per CJK character and mark
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    with_image = tokens.count_message_tokens([{"role": "user", "content": [image]}], "gpt-4o")
    assert with_image == tokens.REPLY_PRIMING + tokens.MESSAGE_FRAMING + 1 + 85


def test_an_exact_tokenizer_is_used_when_its_data_is_on_the_machine(monkeypatch):
    class Encoding:
        def encode(self, text, disallowed_special=()):
            return list(range(len(text)))  # one id per character: easy to tell from the estimate

    tokens.tokenizer_for.cache_clear()
    monkeypatch.setattr(tokens, "_cached_tiktoken", lambda name: Encoding() if name == "o200k_base" else None)
    try:
        llm = AIsaChatModel(model="gpt-4o", api_key="k")
        assert llm.get_num_tokens("Hello") == 5 and llm.get_token_ids("ab") == [0, 1]
        assert tokens.tokenizer_for("gpt-4o").exact and not tokens.tokenizer_for("claude-3-opus").exact
    finally:
        tokens.tokenizer_for.cache_clear()


def test_token_ids_without_an_exact_tokenizer_say_what_to_do():
    with pytest.raises(NotImplementedError, match="get_num_tokens"):
        AIsaChatModel(model="claude-3-opus", api_key="k").get_token_ids("hi")


def test_no_download_is_attempted_without_a_whole_cached_file(tmp_path, monkeypatch):
    import hashlib
    import sys
    import types

    asked = []
    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: asked.append(name) or "encoding"  # would download if the file were bad
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert tokens._cached_tiktoken("o200k_base") is None  # no file
    url, _expected = tokens._TIKTOKEN_FILES["o200k_base"]
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"damaged")
    assert tokens._cached_tiktoken("o200k_base") is None  # a damaged file: tiktoken would fetch it again
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert tokens._cached_tiktoken("o200k_base") is None  # caching off: tiktoken would fetch every time
    assert asked == []
