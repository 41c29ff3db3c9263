"""Which task a request is: deterministic signals, then a trained lexical model; local, no network.

The signals decide what needs no guessing: an attached image is ``vision``, mostly Chinese text is
``chinese``, a code fence or a stack trace is ``code``. Everything else is scored by a
:class:`~aisa_integrations.core.lexical.LexicalModel` (the one shipped in the package, or one
trained on your own prompts); a prediction below the model's confidence threshold is unclear and
goes to ``default``. :func:`model_classifier` is an
optional alternative that asks a cheap model.

>>> classify_task("Write a haiku about autumn").task
'creative'
>>> classify_task("这个函数为什么报错").task
'chinese'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lexical import Feature, LexicalModel

__all__ = [
    "TASKS",
    "Classification",
    "Classifier",
    "Explanation",
    "TaskClassifier",
    "classify_task",
    "model_classifier",
    "signal",
]

TASKS = ("code", "creative", "fast", "vision", "chinese", "reasoning", "default")


@dataclass(frozen=True)
class Classification:
    """A task, how sure the classifier is, and why."""

    task: str
    confidence: float
    reason: str


Classifier = Callable[[str], "Classification | str | tuple[str, float, str]"]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")  # Japanese writes kanji too: kana keeps it out of ``chinese``
_LATIN = re.compile(r"[A-Za-z]")
# A code fence or a stack trace: marks no prose request carries (on the training set: 68 hits, all code).
_CODE_MARKS = re.compile(
    r"```|~~~|Traceback \(most recent call last\)|Exception in thread \"|\b[A-Z]\w*(?:Error|Exception): |"
    r"\bpanicked at\b|^\s+at [\w.$]+\([\w.]*:\d+\)",
    re.M,
)
_CODE_HINTS = ("``", "~~", "Trace", "Exception", "Error", "panicked", "\n ", "\n\t")  # cheap pre-checks
#: Beyond this the text is pasted material; the language of the request shows in its head.
_SIGNAL_SPAN = 4000


def signal(text: str, *, images: int = 0) -> Classification | None:
    """The deterministic decision, if there is one: an attached image, mostly Chinese text, or a
    code fence or stack trace.

    >>> signal("what breed is this?", images=1).task
    'vision'
    >>> signal("what breed is a corgi?") is None
    True
    """
    if images:
        return Classification("vision", 1.0, f"the request carries {images} image(s)")
    head = text[:_SIGNAL_SPAN]
    if _HAN.search(head):
        han = len(_HAN.findall(head))
        other = len(_KANA.findall(head)) + len(_LATIN.findall(head)) / 4  # a Latin word is ~4 letters
        if han >= 2 and han / (han + other) >= 0.5:
            return Classification("chinese", 0.99, "mostly Chinese text")
    mark = _CODE_MARKS.search(head) if any(hint in head for hint in _CODE_HINTS) else None
    if mark:
        return Classification("code", 0.99, f"a code fence or stack trace ({mark.group(0).strip()!r})")
    return None


@dataclass(frozen=True)
class Explanation:
    """Why a prompt got its task: the signal that decided it, or the model's probabilities and features."""

    classification: Classification
    signal: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    features: list[Feature] = field(default_factory=list)
    threshold: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.classification.task,
            "confidence": round(self.classification.confidence, 4),
            "reason": self.classification.reason,
            "signal": self.signal,
            "threshold": self.threshold,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "features": [{"feature": f.name, "weight": f.weight} for f in self.features],
        }


class TaskClassifier:
    """Signals first, then a lexical model; a prediction below its threshold goes to ``default``.

    ``model`` is a :class:`LexicalModel`, a path to a saved one, or ``None`` for the model shipped
    in the package. ``threshold`` overrides the one the model was trained with.

    >>> classify = TaskClassifier()
    >>> classify("my pandas merge drops rows, why").task
    'code'
    >>> TaskClassifier(threshold=0.999)("tell me something").task
    'default'
    """

    def __init__(self, model: LexicalModel | str | Path | None = None, *, threshold: float | None = None) -> None:
        if isinstance(model, str | Path):
            model = LexicalModel.load(model)
        self._model = model
        if threshold is not None and not 0 <= threshold < 1:
            raise ValueError(f"threshold must be in [0, 1); got {threshold!r}.")
        self._threshold = threshold

    @property
    def model(self) -> LexicalModel:
        if self._model is None:
            self._model = LexicalModel.builtin()  # loaded on first use: importing stays cheap
        return self._model

    @property
    def threshold(self) -> float:
        return self.model.threshold if self._threshold is None else self._threshold

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task this classifier can produce."""
        return tuple(dict.fromkeys((*self.model.classes, "vision", "chinese", "default")))

    def __call__(self, text: str, *, images: int = 0) -> Classification:
        decided = signal(text, images=images)
        if decided is not None:
            return decided
        prediction = self.model.predict(text)
        threshold = self.threshold
        if prediction.probability < threshold:
            return Classification(
                "default",
                prediction.probability,
                f"unclear: {prediction.label} at {prediction.probability:.2f} is below the "
                f"{threshold:.2f} threshold, so the default route",
            )
        return Classification(
            prediction.label,
            prediction.probability,
            f"the task model: {prediction.label} at {prediction.probability:.2f}",
        )

    def explain(self, text: str, *, images: int = 0, top: int = 8) -> Explanation:
        """The decision with its evidence: the deciding signal, or probabilities and top features."""
        classification = self(text, images=images)
        decided = signal(text, images=images)
        if decided is not None:
            return Explanation(classification, decided.reason)
        return Explanation(
            classification,
            None,
            self.model.predict(text).probabilities,
            self.model.explain(text, top=top),
            self.threshold,
        )


_BUILTIN = TaskClassifier()


def classify_task(text: str, *, images: int = 0) -> Classification:
    """The built-in classifier: signals, then the shipped model; local, deterministic, no network.

    >>> classify_task("Fix this Python function: def f(x) return x").task
    'code'
    >>> classify_task("What is the capital of France?").task
    'fast'
    """
    return _BUILTIN(text, images=images)


def model_classifier(
    config: Any,
    model: str = "gpt-4o-mini",
    *,
    tasks: Sequence[str] = TASKS,
) -> Classifier:
    """An optional classifier that asks a cheap model for the task (off by default).

    ``config`` is a :class:`~aisa_integrations.core.config.ClientConfig`. Any failure falls back to
    the built-in classifier (see :meth:`TaskRouter.classify`).
    """
    from .costs import record_usage
    from .transport import post
    from .usage import parse_usage

    allowed = [t for t in tasks if t != "default"]

    def classify(text: str) -> Classification:
        completion = post(
            config,
            {
                "model": model,
                "temperature": 0,
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "system",
                        "content": "Classify the user's request as exactly one word from: "
                        + ", ".join(allowed)
                        + ". Answer with the word only.",
                    },
                    {"role": "user", "content": text[:4000]},
                ],
            },
        )
        record_usage(completion.get("model") or model, parse_usage(completion.get("usage")))  # billed: counted
        answer = (completion["choices"][0]["message"].get("content") or "").strip().lower().strip(".")
        if answer not in allowed:
            raise ValueError(f"unexpected classifier answer {answer!r}")
        return Classification(answer, 0.8, f"{model} classified it")

    return classify
