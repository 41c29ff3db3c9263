"""A small linear text model, scored in plain Python.

Features are hashed (crc32, stable across processes and platforms): each word, each pair of
adjacent words, and the character 3- to 5-grams inside each word (so typos and inflections share
most of their features), plus a few shape features (length, line breaks, a closing question
mark). The model is one weight row per hash bucket and class; a text's score for a class is the
sum of its features' weights over the square root of its feature count, plus the class's bias.
Inverse document frequencies are folded into the weights when the model is trained, so scoring
needs nothing but look-ups and sums.

Scoring imports neither numpy nor scikit-learn; training (:mod:`aisa_integrations.core.training`)
does. A word's summed features are cached, so a decision costs a look-up per word and a hash per
word pair.

>>> model = LexicalModel.builtin()
>>> model.classes
('code', 'creative', 'default', 'fast', 'reasoning')
>>> prediction = model.predict("my docker build fails with exit code 137")
>>> prediction.label
'code'
"""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from array import array
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

__all__ = ["Feature", "LexicalModel", "Prediction", "feature_names", "tokenize"]

_MAGIC = b"AISA-LEXICAL-1\n"
_FORMAT = 1
#: Text beyond this is mostly pasted material: the head and the tail carry the request.
_HEAD, _TAIL = 2000, 1000
_TOKEN = re.compile(r"\w+(?:['\u2019.\-]\w+)*|[^\w\s]")
_SUBWORD_MAX = 24  # long tokens (hashes, URLs) add no more character n-grams past this
_CACHE_LIMIT = 50_000
_FIELD = 48  # bits per class in a packed row: room for 2**32 features of the largest weight
_FIELD_MASK = (1 << _FIELD) - 1
_OFFSET = 1 << 15  # int16 weights + this are positive, so fields never borrow from each other


def tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks, from the head and tail of a long text."""
    lowered = text.lower()
    if len(lowered) > _HEAD + _TAIL:
        lowered = lowered[:_HEAD] + " " + lowered[-_TAIL:]
    return _TOKEN.findall(lowered)


def _word_features(token: str, ngrams: tuple[int, int]) -> list[str]:
    names = ["w:" + token]
    if len(token) >= 2:
        padded = "<" + token[:_SUBWORD_MAX] + ">"
        for n in range(ngrams[0], ngrams[1] + 1):
            names.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return names


def _shape_features(text: str, tokens: list[str]) -> list[str]:
    n = len(tokens)
    size = "1" if n <= 3 else "2" if n <= 8 else "3" if n <= 20 else "4" if n <= 60 else "5"
    names = ["len:" + size]
    if "\n" in text.strip():
        names.append("shape:lines")
    if text.rstrip().endswith("?"):
        names.append("shape:question")
    return names


def feature_names(text: str, ngrams: tuple[int, int] = (3, 5)) -> list[str]:
    """Every feature of ``text`` by name, repeats included (the reference for the cached scorer)."""
    tokens = tokenize(text)
    names: list[str] = []
    for token in tokens:
        names.extend(_word_features(token, ngrams))
    names.extend("b:" + a + " " + b for a, b in pairwise(tokens))
    names.extend(_shape_features(text, tokens))
    return names


def bucket(name: str, bits: int) -> int:
    """The hash bucket of a feature name (crc32: the same in every process and on every platform)."""
    return zlib.crc32(name.encode("utf-8")) & ((1 << bits) - 1)


@dataclass(frozen=True)
class Feature:
    """One feature's pull towards the predicted class over the runner-up."""

    name: str
    weight: float


@dataclass(frozen=True)
class Prediction:
    """The most likely class, its probability, and every class's probability."""

    label: str
    probability: float
    probabilities: dict[str, float]

    @property
    def runner_up(self) -> str:
        ordered = sorted(self.probabilities, key=self.probabilities.__getitem__, reverse=True)
        return ordered[1] if len(ordered) > 1 else ordered[0]


class LexicalModel:
    """Hashed n-gram features into a linear model (multinomial logistic regression).

    Build one with :func:`aisa_integrations.core.training.train_classifier`, save it with
    :meth:`save`, load it with :meth:`load`; :meth:`builtin` is the model shipped in the package.

    >>> model = LexicalModel.builtin()
    >>> round(sum(model.predict("thanks!").probabilities.values()), 6)
    1.0
    """

    def __init__(
        self,
        *,
        classes: tuple[str, ...] | list[str],
        bits: int,
        weights: array,
        scale: float,
        bias: list[float] | tuple[float, ...],
        ngrams: tuple[int, int] = (3, 5),
        threshold: float = 0.0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        classes = tuple(classes)
        if len(classes) < 2:
            raise ValueError(f"A model needs at least two classes; got {list(classes)}.")
        if len(weights) != (1 << bits) * len(classes):
            raise ValueError(f"{len(weights)} weights do not fit {1 << bits} buckets x {len(classes)} classes.")
        if len(bias) != len(classes):
            raise ValueError(f"{len(bias)} biases for {len(classes)} classes.")
        self.classes = classes
        self.bits = bits
        self.ngrams = (int(ngrams[0]), int(ngrams[1]))
        #: Below this top probability a prediction is unclear (the router sends it to ``default``).
        self.threshold = float(threshold)
        self.metadata = dict(metadata or {})
        self._weights = weights
        self._scale = float(scale)
        self._bias = tuple(float(b) for b in bias)
        self._width = len(classes)
        self._mask = (1 << bits) - 1
        self._words: dict[str, tuple[int, int]] = {}
        self._pairs: dict[str, int] = {}

    # -- scoring ------------------------------------------------------------------------------
    # A weight row is packed into one integer, each class's weight (offset to be non-negative) in
    # its own 48-bit field, so summing a text's rows is one integer sum instead of a sum per class.
    def _row(self, name: str) -> array:
        start = (zlib.crc32(name.encode("utf-8")) & self._mask) * self._width
        return self._weights[start : start + self._width]

    def _pack(self, sums: Any, count: int) -> int:
        packed = 0
        shift = count * _OFFSET
        for k, value in enumerate(sums):
            packed |= (value + shift) << (_FIELD * k)
        return packed

    def _packed(self, name: str) -> int:
        return self._pack(self._row(name), 1)

    def _unpack(self, packed: int, count: int) -> list[int]:
        shift = count * _OFFSET
        return [((packed >> (_FIELD * k)) & _FIELD_MASK) - shift for k in range(self._width)]

    def _word(self, token: str) -> tuple[int, int]:
        """A word's packed feature weights and its feature count (cached: words repeat)."""
        cached = self._words.get(token)
        if cached is None:
            names = _word_features(token, self.ngrams)
            sums = map(sum, zip(*map(self._row, names), strict=True))
            cached = (self._pack(sums, len(names)), len(names))
            if len(self._words) >= _CACHE_LIMIT:
                self._words.clear()
            self._words[token] = cached
        return cached

    def _pair(self, key: str) -> int:
        """A word pair's packed weights (cached: pairs repeat across prompts too)."""
        packed = self._pairs.get(key)
        if packed is None:
            packed = self._packed("b:" + key)
            if len(self._pairs) >= _CACHE_LIMIT:
                self._pairs.clear()
            self._pairs[key] = packed
        return packed

    def _totals(self, text: str) -> tuple[list[int], int]:
        """The summed weight of every feature of ``text`` per class, and the feature count."""
        tokens = tokenize(text)
        words = self._words.get
        pairs = self._pairs.get
        total = 0
        count = 0
        for token in tokens:
            packed, n = words(token) or self._word(token)
            total += packed
            count += n
        for a, b in pairwise(tokens):
            key = a + " " + b
            total += pairs(key) or self._pair(key)
        shapes = _shape_features(text, tokens)
        total += sum(map(self._packed, shapes))
        count += len(tokens) - 1 + len(shapes) if tokens else len(shapes)
        return self._unpack(total, count), count

    def scores(self, text: str) -> list[float]:
        """Each class's linear score (log-odds up to a constant)."""
        sums, count = self._totals(text)
        factor = self._scale / math.sqrt(count)
        return [b + factor * s for b, s in zip(self._bias, sums, strict=True)]

    def predict(self, text: str) -> Prediction:
        """The most likely class and the probabilities of all classes."""
        scores = self.scores(text)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        probabilities = {c: e / total for c, e in zip(self.classes, exps, strict=True)}
        best = max(range(self._width), key=scores.__getitem__)
        return Prediction(self.classes[best], exps[best] / total, probabilities)

    def explain(self, text: str, *, top: int = 8) -> list[Feature]:
        """The features that pulled hardest towards the predicted class over the runner-up.

        A word stands for itself and its character n-grams (``w:``), a pair of words for itself
        (``b:``); ``len:`` and ``shape:`` are the shape features.
        """
        prediction = self.predict(text)
        winner = self.classes.index(prediction.label)
        rival = self.classes.index(prediction.runner_up)
        tokens = tokenize(text)
        shapes = _shape_features(text, tokens)
        named: list[tuple[str, Any, int]] = []
        for token in tokens:
            packed, n = self._word(token)
            named.append(("w:" + token, self._unpack(packed, n), n))
        named += [("b:" + a + " " + b, self._row("b:" + a + " " + b), 1) for a, b in pairwise(tokens)]
        named += [(name, self._row(name), 1) for name in shapes]
        factor = self._scale / math.sqrt(sum(n for _, _, n in named))
        pulls: dict[str, float] = {}
        for name, row, _ in named:
            pulls[name] = pulls.get(name, 0.0) + factor * (row[winner] - row[rival])
        ranked = sorted(pulls.items(), key=lambda item: item[1], reverse=True)
        return [Feature(name, round(weight, 4)) for name, weight in ranked[:top] if weight > 0]

    # -- files --------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        header = {
            "format": _FORMAT,
            "classes": list(self.classes),
            "bits": self.bits,
            "ngrams": list(self.ngrams),
            "scale": self._scale,
            "bias": list(self._bias),
            "threshold": self.threshold,
            "metadata": self.metadata,
        }
        weights = array("h", self._weights)
        if sys.byteorder == "big":
            weights.byteswap()
        encoded = json.dumps(header, sort_keys=True).encode("utf-8")
        return _MAGIC + len(encoded).to_bytes(4, "big") + encoded + zlib.compress(weights.tobytes(), 9)

    @classmethod
    def from_bytes(cls, data: bytes) -> LexicalModel:
        if not data.startswith(_MAGIC):
            raise ValueError("Not an AIsa lexical model file (train one with `aisa route --train`).")
        offset = len(_MAGIC)
        size = int.from_bytes(data[offset : offset + 4], "big")
        header = json.loads(data[offset + 4 : offset + 4 + size])
        if header.get("format") != _FORMAT:
            raise ValueError(f"Model file format {header.get('format')!r} is not {_FORMAT}; retrain it.")
        weights = array("h")
        weights.frombytes(zlib.decompress(data[offset + 4 + size :]))
        if sys.byteorder == "big":
            weights.byteswap()
        return cls(
            classes=header["classes"],
            bits=header["bits"],
            weights=weights,
            scale=header["scale"],
            bias=header["bias"],
            ngrams=tuple(header["ngrams"]),
            threshold=header["threshold"],
            metadata=header.get("metadata"),
        )

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (one binary file)."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> LexicalModel:
        """Read a model written by :meth:`save`."""
        return cls.from_bytes(Path(path).read_bytes())

    @classmethod
    def builtin(cls) -> LexicalModel:
        """The model shipped in the package (trained by ``training/routing/train.py``); loaded once."""
        global _BUILTIN
        if _BUILTIN is None:
            data = resources.files("aisa_integrations").joinpath("data/task_model.bin").read_bytes()
            _BUILTIN = cls.from_bytes(data)
        return _BUILTIN

    def __repr__(self) -> str:
        return f"LexicalModel(classes={list(self.classes)}, bits={self.bits}, threshold={self.threshold})"


_BUILTIN: LexicalModel | None = None
