"""Train a task classifier on labelled prompts, and measure any classifier on them.

Training needs the ``train`` extra (``pip install "aisa-integrations[train]"``: numpy and
scikit-learn); measuring needs nothing. The model it writes is scored in plain Python by
:class:`~aisa_integrations.core.lexical.LexicalModel`.

Examples are ``{"text": ..., "task": ..., "images": 0}`` mappings (the JSON Lines format of
``training/routing/*.jsonl``) or ``(text, task)`` pairs. Prompts with an attached image are about
the image, which the model never sees, so they do not train it.

>>> from aisa_integrations.core.classifier import TaskClassifier
>>> report = evaluate(TaskClassifier(), [{"text": "hi!", "task": "fast"}, ("my pandas merge drops rows", "code")])
>>> report.accuracy
1.0
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .lexical import LexicalModel, bucket, feature_names

__all__ = ["Evaluation", "Example", "evaluate", "read_examples", "train_classifier"]

#: Candidate thresholds for ``threshold="auto"`` (chosen on cross-validated predictions only).
_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(15))


@dataclass(frozen=True)
class Example:
    """One labelled prompt."""

    text: str
    task: str
    images: int = 0


def _as_example(item: Any, where: str) -> Example:
    if isinstance(item, Example):
        return item
    if isinstance(item, Mapping):
        text, task, images = item.get("text"), item.get("task"), item.get("images", 0)
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        (text, task), images = item, 0
    else:
        raise ValueError(f"{where}: expected {{'text', 'task'}} or (text, task); got {item!r}.")
    if not isinstance(text, str) or not isinstance(task, str) or not task:
        raise ValueError(f"{where}: 'text' and 'task' must be non-empty strings; got {item!r}.")
    if not isinstance(images, int) or images < 0:
        raise ValueError(f"{where}: 'images' must be a count (0 or more); got {images!r}.")
    return Example(text, task, images)


def read_examples(path: str | Path) -> list[Example]:
    """Labelled prompts from a JSON Lines file (``{"text", "task", "images"?}`` per line)."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc}).") from None
            out.append(_as_example(item, f"{path}:{number}"))
    return out


def _examples(items: Iterable[Any]) -> list[Example]:
    return [_as_example(item, f"example {i}") for i, item in enumerate(items)]


@dataclass
class Evaluation:
    """Accuracy, per-class recall and the confusion matrix of a classifier on labelled prompts."""

    labels: list[str]
    confusion: dict[str, dict[str, int]]
    total: int
    correct: int
    misses: list[tuple[Example, str]] = field(default_factory=list, repr=False)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def per_class(self) -> dict[str, float]:
        """Recall per true class: the share of each class's prompts routed to it."""
        out = {}
        for label, row in self.confusion.items():
            n = sum(row.values())
            if n:
                out[label] = row.get(label, 0) / n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "accuracy": round(self.accuracy, 4),
            "per_class": {k: round(v, 4) for k, v in self.per_class.items()},
            "confusion": self.confusion,
        }

    def format(self) -> str:
        """A plain-text report: accuracy, then the confusion matrix (rows: true, columns: predicted)."""
        labels = self.labels
        width = max(9, *(len(label) + 1 for label in labels))
        lines = [f"accuracy {self.accuracy:.3f} on {self.total} prompts", ""]
        lines.append(
            "true \\ predicted".ljust(width + 7) + "".join(label.rjust(width) for label in labels) + "  recall"
        )
        recall = self.per_class
        for label in labels:
            row = self.confusion.get(label, {})
            if not sum(row.values()):
                continue
            cells = "".join(str(row.get(other, 0)).rjust(width) for other in labels)
            lines.append(f"{label} ({sum(row.values())})".ljust(width + 7) + cells + f"  {recall[label]:.3f}")
        return "\n".join(lines)


def evaluate(classify: Callable[..., Any], examples: Iterable[Any]) -> Evaluation:
    """Run ``classify(text, images=...)`` (or ``classify(text)``) over labelled prompts."""
    items = _examples(examples)
    confusion: dict[str, Counter[str]] = {}
    misses: list[tuple[Example, str]] = []
    for example in items:
        try:
            result = classify(example.text, images=example.images)
        except TypeError:
            result = classify(example.text)
        predicted = result if isinstance(result, str) else getattr(result, "task", None) or result[0]
        confusion.setdefault(example.task, Counter())[predicted] += 1
        if predicted != example.task:
            misses.append((example, predicted))
    labels = sorted({e.task for e in items} | {p for row in confusion.values() for p in row})
    correct = sum(row.get(label, 0) for label, row in confusion.items())
    return Evaluation(labels, {k: dict(v) for k, v in confusion.items()}, len(items), correct, misses)


# -- training --------------------------------------------------------------------------------
def _require_training_stack() -> tuple[Any, Any]:
    try:
        import numpy
        import sklearn  # noqa: F401  (the error below names the extra that installs it)
    except ImportError:
        raise ConfigurationError(
            'Training a classifier needs numpy and scikit-learn: pip install "aisa-integrations[train]".'
        ) from None
    from scipy.sparse import csr_matrix

    return numpy, csr_matrix


def _design(texts: Sequence[str], bits: int, ngrams: tuple[int, int]) -> tuple[list[dict[int, int]], list[int]]:
    counts, sizes = [], []
    for text in texts:
        names = feature_names(text, ngrams)
        row: dict[int, int] = {}
        for name in names:
            h = bucket(name, bits)
            row[h] = row.get(h, 0) + 1
        counts.append(row)
        sizes.append(len(names))
    return counts, sizes


def _matrix(counts: Sequence[dict[int, int]], sizes: Sequence[int], idf: Any, bits: int, csr_matrix: Any) -> Any:
    indices: list[int] = []
    data: list[float] = []
    indptr = [0]
    for row, size in zip(counts, sizes, strict=True):
        norm = 1.0 / math.sqrt(size)
        for h, count in row.items():
            indices.append(h)
            data.append(count * idf[h] * norm)
        indptr.append(len(indices))
    return csr_matrix((data, indices, indptr), shape=(len(counts), 1 << bits))


def _idf(counts: Sequence[dict[int, int]], bits: int, numpy: Any) -> Any:
    df = numpy.zeros(1 << bits)
    for row in counts:
        df[list(row)] += 1
    return numpy.log((1 + len(counts)) / (1 + df)) + 1


def _choose_threshold(probabilities: Any, y: Any, classes: list[str], numpy: Any) -> tuple[float, dict[str, Any]]:
    """The threshold that maximises the worst class's recall (ties: the better overall accuracy)."""
    if "default" not in classes:
        return 0.0, {}
    fallback = classes.index("default")
    best: tuple[float, float, float] | None = None
    for threshold in _THRESHOLDS:
        predicted = numpy.where(probabilities.max(1) < threshold, fallback, probabilities.argmax(1))
        recalls = [float((predicted[y == k] == k).mean()) for k in range(len(classes))]
        key = (min(recalls), float((predicted == y).mean()), -threshold)
        if best is None or key > best:
            best = key
    assert best is not None
    return -best[2], {"worst_class_recall": round(best[0], 4), "accuracy": round(best[1], 4)}


def _fit(x: Any, y: Any, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000).fit(x, y)


def train_classifier(
    examples: Iterable[Any],
    *,
    c: float = 10.0,
    bits: int = 17,
    ngrams: tuple[int, int] = (3, 5),
    threshold: float | str = "auto",
    folds: int = 5,
    seed: int = 0,
) -> LexicalModel:
    """Train a :class:`LexicalModel` on labelled prompts (needs the ``train`` extra).

    ``threshold="auto"`` picks the confidence threshold below which a prompt goes to ``default``
    from ``folds``-fold cross-validated predictions on these examples (never from anything else);
    a number sets it. The same examples and settings give the same bytes.

    >>> examples = [("fix my segfault in C", "code"), ("a limerick about cats", "creative")] * 5
    >>> train_classifier(examples).classes
    ('code', 'creative')
    """
    numpy, csr_matrix = _require_training_stack()
    items = [e for e in _examples(examples) if not e.images]
    classes = sorted({e.task for e in items})
    if len(classes) < 2:
        raise ValueError(f"Training needs at least two tasks among the prompts without images; got {classes}.")
    per_class = Counter(e.task for e in items)
    if threshold == "auto" and min(per_class.values()) < folds:
        raise ValueError(f"threshold='auto' needs at least {folds} prompts per task; got {dict(per_class)}.")
    y = numpy.array([classes.index(e.task) for e in items])
    counts, sizes = _design([e.text for e in items], bits, ngrams)
    metadata: dict[str, Any] = {"examples": dict(sorted(per_class.items())), "c": c}

    if threshold == "auto":
        from sklearn.model_selection import StratifiedKFold

        probabilities = numpy.zeros((len(items), len(classes)))
        for train_rows, test_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(counts, y):
            idf = _idf([counts[i] for i in train_rows], bits, numpy)
            fold_model = _fit(
                _matrix([counts[i] for i in train_rows], [sizes[i] for i in train_rows], idf, bits, csr_matrix),
                y[train_rows],
                c,
            )
            test_x = _matrix([counts[i] for i in test_rows], [sizes[i] for i in test_rows], idf, bits, csr_matrix)
            probabilities[test_rows] = fold_model.predict_proba(test_x)
        threshold, chosen = _choose_threshold(probabilities, y, classes, numpy)
        metadata["cross_validation"] = {"folds": folds, "seed": seed, **chosen}
    elif not isinstance(threshold, int | float) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be 'auto' or a number in [0, 1); got {threshold!r}.")

    idf = _idf(counts, bits, numpy)
    fitted = _fit(_matrix(counts, sizes, idf, bits, csr_matrix), y, c)
    coef = fitted.coef_ if len(classes) > 2 else numpy.vstack([-fitted.coef_[0] / 2, fitted.coef_[0] / 2])
    bias = fitted.intercept_ if len(classes) > 2 else numpy.array([-fitted.intercept_[0] / 2, fitted.intercept_[0] / 2])
    folded = (coef * idf).T  # buckets x classes: the idf folded in, so scoring only sums
    scale = float(numpy.abs(folded).max()) / 32767 or 1.0
    weights = array("h", numpy.rint(folded / scale).astype("int16").ravel().tolist())
    return LexicalModel(
        classes=classes,
        bits=bits,
        weights=weights,
        scale=scale,
        bias=[float(b) for b in bias],
        ngrams=ngrams,
        threshold=float(threshold),
        metadata=metadata,
    )
