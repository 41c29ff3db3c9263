"""Token counting that works offline for every model family, and never raises ImportError.

An exact tokenizer is used where one is installed *and* has its data on this machine: for GPT
models, ``tiktoken`` with its encoding file already in tiktoken's cache (``TIKTOKEN_CACHE_DIR``) and
whole (its sha256 is checked first: tiktoken would download a damaged one); nothing is downloaded.
Every other case (Claude, Gemini, Qwen, DeepSeek, Grok, or GPT without tiktoken's data) uses the
package's own estimate:

- text is split the way byte-level BPE tokenizers pre-split it (runs of letters, of digits, single
  punctuation marks, whitespace folded into the following word);
- a run of letters counts one token, plus one per further 6 characters (common words are one
  token; long or rare words several); a run of digits one per 3 digits; punctuation one each;
- each CJK character (Han, kana, Hangul) counts one token;
- a message adds 3 tokens of framing (role, separators) plus its role and name; tool calls and tool
  definitions count as their JSON text; an answer adds 3 tokens of priming; an image 85 tokens at
  ``detail="low"``, else 765 (a 1024x1024 tile at OpenAI's rate; other families differ).

The estimate is meant for budgeting and trimming (``trim_messages(token_counter=llm)``): it is not
any provider's exact count, and :func:`tokenizer_for` says which one is in use (``.exact``).

>>> count_tokens("Hello, world!", "claude-3-5-sonnet")
4
>>> tokenizer_for("qwen-max").exact
False
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .catalog import family_of

__all__ = ["Tokenizer", "count_message_tokens", "count_tokens", "tokenizer_for"]

# Letters (with a leading space or apostrophe), digits, CJK characters, other single symbols.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECES = re.compile(rf"[{_CJK}]|'?[^\W\d_{_CJK}]+|\d+|[^\w\s]|_+", re.UNICODE)

MESSAGE_FRAMING = 3
REPLY_PRIMING = 3
IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}


def _estimate(text: str) -> int:
    tokens = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if "\u3040" <= first <= "\ufaff":
            tokens += 1
        elif first.isdigit():
            tokens += math.ceil(len(piece) / 3)
        elif first.isalpha() or first in "'_":
            tokens += 1 + (len(piece) - 1) // 6
        else:
            tokens += 1
    return tokens


@dataclass(frozen=True)
class Tokenizer:
    """How a model's text is counted: ``exact`` (a real tokenizer, ``name``) or the estimate."""

    name: str
    exact: bool
    encoding: Any = None

    def count(self, text: str) -> int:
        if self.encoding is not None:
            return len(self.encoding.encode(text, disallowed_special=()))
        return _estimate(text)

    def ids(self, text: str) -> list[int]:
        if self.encoding is None:
            raise NotImplementedError(
                f"Token ids need an exact tokenizer; {self.name} is an estimate. Counting works without one "
                "(get_num_tokens); for ids install tiktoken and put its encoding file in TIKTOKEN_CACHE_DIR."
            )
        return list(self.encoding.encode(text, disallowed_special=()))


_ESTIMATE = Tokenizer("aisa-estimate", exact=False)


def _gpt_encoding_name(model: str) -> str:
    lowered = model.lower().rsplit("/", 1)[-1]
    if lowered.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")):
        return "o200k_base"
    return "cl100k_base"


#: tiktoken's encoding files: where tiktoken caches them from, and the sha256 it expects of them.
_TIKTOKEN_FILES = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}


def _cached_tiktoken(name: str) -> Any:
    """tiktoken's encoding if tiktoken is installed and the encoding's file is in its cache, whole.

    tiktoken downloads a missing or damaged file (with no timeout); so it is only asked for an
    encoding whose cached file is there and has the expected hash, and never with caching off.
    """
    try:
        import tiktoken
    except ImportError:
        return None
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    else:
        cache_dir = os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir or name not in _TIKTOKEN_FILES:
        return None  # "" turns tiktoken's cache off: it would download every time
    url, expected = _TIKTOKEN_FILES[name]
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as handle:
            if hashlib.sha256(handle.read()).hexdigest() != expected:
                return None
    except OSError:
        return None
    try:
        return tiktoken.get_encoding(name)
    except Exception:  # whatever else goes wrong, the estimate is better than an error
        return None


@lru_cache(maxsize=64)
def tokenizer_for(model: str) -> Tokenizer:
    """The exact tokenizer for ``model`` if one is available offline, else the estimate."""
    if family_of(model)[0] == "gpt":
        name = _gpt_encoding_name(model)
        encoding = _cached_tiktoken(name)
        if encoding is not None:
            return Tokenizer(f"tiktoken {name}", exact=True, encoding=encoding)
    return _ESTIMATE


def count_tokens(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model`` (exact where available offline, else the estimate)."""
    return tokenizer_for(model).count(text)


def count_message_tokens(
    messages: Sequence[Mapping[str, Any]], model: str, tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """Prompt tokens of OpenAI-format ``messages`` (and ``tools``) for ``model``, as above.

    >>> count_message_tokens([{"role": "user", "content": "Hi there"}], "gemini-2.0-flash")
    9
    """
    tokenizer = tokenizer_for(model)
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_FRAMING + tokenizer.count(str(message.get("role", "")))
        if message.get("name"):
            total += tokenizer.count(str(message["name"]))
        content = message.get("content")
        if isinstance(content, str):
            total += tokenizer.count(content)
        elif isinstance(content, list):
            for part in content:
                total += _part_tokens(part, tokenizer)
        for call in message.get("tool_calls") or ():
            function = (call or {}).get("function") or {}
            total += tokenizer.count(str(function.get("name", ""))) + tokenizer.count(
                str(function.get("arguments", ""))
            )
    for tool in tools or ():
        total += tokenizer.count(json.dumps(tool, separators=(",", ":"), sort_keys=True))
    return total


def _part_tokens(part: Any, tokenizer: Tokenizer) -> int:
    if not isinstance(part, Mapping):
        return tokenizer.count(str(part))
    kind = part.get("type")
    if kind == "text":
        return tokenizer.count(str(part.get("text", "")))
    if kind == "image_url":
        detail = ((part.get("image_url") or {}) if isinstance(part.get("image_url"), Mapping) else {}).get("detail")
        return IMAGE_TOKENS.get(str(detail or "auto"), IMAGE_TOKENS["auto"])
    # Any other block (audio, file, a provider's own): its JSON text, so nothing counts as free.
    return tokenizer.count(json.dumps(part, default=str))
