"""Routing by task type, cost-aware and capability-checked, written once for every adapter.

A request is classified into a task (code, creative, fast, vision, chinese, reasoning, or
default), the task's route names candidate models, and the catalog decides which are eligible:
image input only to vision models, bound tools only to tool-capable models, the estimated prompt
within the context window, a json_schema response format only where it is honoured. The first
eligible candidate wins; every skipped one is recorded with the reason.

The built-in classifier is local and deterministic (regular expressions over the last user turn,
a few microseconds per call); any callable can replace it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .catalog import ModelCatalog, ModelInfo, Tier, default_catalog
from .errors import InvalidRequestError

__all__ = [
    "DEFAULT_ROUTES",
    "TASKS",
    "Cheapest",
    "Classification",
    "NoEligibleModelError",
    "Requirements",
    "RouteDecision",
    "TaskRouter",
    "classify_task",
]

TASKS = ("code", "creative", "fast", "vision", "chinese", "reasoning", "default")

#: The AIsa reference's MODEL_MAP, with its default.
DEFAULT_ROUTES: dict[str, Any] = {
    "code": "deepseek-coder",
    "creative": "claude-3-opus",
    "fast": "gpt-3.5-turbo",
    "vision": "gpt-4o",
    "chinese": "qwen-max",
    "reasoning": "gpt-4.1",
    "default": "gpt-4.1",
}


class NoEligibleModelError(InvalidRequestError):
    """No candidate model can serve this request (raised before anything is sent)."""


@dataclass(frozen=True)
class Classification:
    task: str
    confidence: float
    reason: str


# -- the built-in classifier -------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_STRONG_CODE = re.compile(
    r"```|~~~|Traceback \(most recent call last\)|Exception in thread|\b\w+(?:Error|Exception): |"
    r"segmentation fault|panicked at|undefined reference|NullPointerException|^\s+at [\w.$]+\(.*:\d+\)",
    re.M | re.I,
)
_STRONG_CODE_HINTS = ("```", "~~~", "Traceback", "Error", "Exception", "fault", "panicked", "undefined", "\n ")
_SYNTAX = re.compile(
    r"\bdef \w+\(|\bfunction\s*\w*\s*\(|=>|#include\s*<|\bpublic (?:static )?(?:void|class)\b|"
    r"\bconsole\.log\(|\bprint\(|\bimport [\w.]+|\bfrom [\w.]+ import\b|\bSELECT\b.+\bFROM\b|"
    r"\bfn \w+\(|\bfunc \w+\(|\bclass \w+[:({]|;\s*$|\b(?:var|let|const) \w+ =|</?\w+[^>]*>|"
    r"\bfor \w+ in \w+|\.\w+\(.*\)|\b\w+ = \w+\(|;\s*\w+\s*=|\w+\[\w*\]\s*=|\binterface \w+ \{|"
    r"\bgit (?:commit|rebase|merge|push)\b",
    re.M | re.I,
)
_SYNTAX_HINTS = ("(", "=", ";", "<", "{", "[", "import", "SELECT", "select ", "git ")
_TOKEN = re.compile(r"[a-z0-9+#]+(?:[.'-][a-z0-9+#]+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_OPERATOR = re.compile(r"\d\s*[-+*/^×÷=<>]\s*\(?\d|\d\s*%|\d\s*x\b|\bx\s*[-+*/^]|\^\d|∫|√|∑|divided by|times\b", re.I)  # noqa: RUF001
_QUESTION = re.compile(r"\?\s*$|^(?:what|who|when|where|which|is|are|can|does|do|how|define|name)\b", re.I)

# Keyword vocabularies: one tokenisation and set look-ups keep a decision in a few microseconds.
_LANGUAGES = frozenset(
    [
        "python",
        "javascript",
        "typescript",
        "java",
        "c++",
        "c#",
        "golang",
        "rust",
        "ruby",
        "php",
        "kotlin",
        "swift",
        "scala",
        "haskell",
        "sql",
        "bash",
        "powershell",
        "perl",
        "lua",
        "matlab",
        "dart",
        "elixir",
        "html",
        "css",
        "react",
        "django",
        "flask",
        "node.js",
        "nodejs",
        "pandas",
        "numpy",
        "regex",
        "dockerfile",
        "kubernetes",
        "terraform",
        "pytest",
        "jest",
        "junit",
    ]
)
_LANGUAGE_PHRASES = ("shell script", "go program", "in go ")
_CODE_ASKS = frozenset(
    [
        "write",
        "implement",
        "code",
        "debug",
        "fix",
        "refactor",
        "optimise",
        "optimize",
        "port",
        "convert",
        "review",
        "compile",
        "create",
    ]
)
_CODE_ASK_PHRASES = ("how do i", "how to")
_CODE_STRONG_PHRASES = (
    "unit test",
    "write a program",
    "write a script",
    "write a function",
    "write code",
    "write some code",
    "write a class",
    "write a method",
    "write a regex",
    "write a query",
    "program that",
    "script that",
    "function that",
    "method that",
    "class that",
    "endpoint that",
    "regex that",
    "query that",
    "api endpoint",
    "rest api",
)
_CODE_WORDS = frozenset(
    [
        "segfault",
        "deadlock",
        "compiler",
        "linter",
        "rebase",
        "npm",
        "pointer",
        "variable",
        "component",
        "setstate",
        "useeffect",
        "recursion",
        "algorithm",
        "dataclass",
        "docker",
        "array",
        "hashmap",
        "stacktrace",
        "re-renders",
        "re-render",
        "rerenders",
    ]
)
_CODE_PHRASES = (
    "stack trace",
    "null pointer",
    "off-by-one",
    "race condition",
    "memory leak",
    "big-o",
    "big o",
    "time complexity",
    "merge conflict",
    "pull request",
    "pip install",
    "linked list",
    "hash map",
    "binary search",
    "binary tree",
    "list comprehension",
    "index out of range",
    "core dumped",
)
_CREATIVE_WORDS = frozenset(
    [
        "story",
        "stories",
        "poem",
        "poems",
        "poetry",
        "haiku",
        "haikus",
        "limerick",
        "limericks",
        "sonnet",
        "sonnets",
        "slogan",
        "slogans",
        "tagline",
        "taglines",
        "lyrics",
        "song",
        "songs",
        "rap",
        "verse",
        "verses",
        "fable",
        "fables",
        "screenplay",
        "novel",
        "fiction",
        "jingle",
        "jingles",
        "toast",
        "motto",
        "mottos",
        "mottoes",
        "catchphrase",
        "catchphrases",
        "rhyme",
        "rhymes",
        "ballad",
        "ballads",
        "ode",
        "odes",
        "bedtime",
        "fairytale",
    ]
)
_CREATIVE_PHRASES = ("fairy tale",)
_ROLEPLAY_PHRASES = (
    "role-play",
    "roleplay",
    "role play",
    "pretend you are",
    "pretend to be",
    "act as ",
    "in the voice of",
    "in the style of",
    "stay in character",
)
_REASONING_STRONG = frozenset(
    [
        "prove",
        "proof",
        "derive",
        "solve",
        "calculate",
        "compute",
        "integrate",
        "differentiate",
        "probability",
        "equation",
        "theorem",
        "analyze",
        "analyse",
        "analysis",
        "critique",
        "assess",
        "evaluate",
        "estimate",
        "deduce",
        "eigenvalue",
        "eigenvalues",
        "eigenvectors",
        "riddle",
        "puzzle",
        "syllogism",
        "implications",
        "consequences",
        "optimal",
        "logically",
        "valid",
        "validity",
        "trade-offs",
        "tradeoffs",
    ]
)
_REASONING_STRONG_PHRASES = (
    "step by step",
    "step-by-step",
    "expected value",
    "pros and cons",
    "trade offs",
    "reason it out",
    "think through",
)
_REASONING_WEAK = frozenset(
    ["compare", "comparison", "reason", "reasoning", "logic", "logical", "strategy", "therefore", "matrix"]
)
_REASONING_WEAK_PHRASES = (
    "why does",
    "why do ",
    "why is",
    "why are",
    "how many",
    "how much",
    "how long",
    "what would happen",
    "explain why",
    "if all",
    "catch up",
)


def _phrases(lowered: str, phrases: tuple[str, ...]) -> int:
    return sum(1 for phrase in phrases if phrase in lowered)


def _score_code(text: str, lowered: str, tokens: list[str], token_set: set[str]) -> tuple[int, str]:
    if any(h in text for h in _STRONG_CODE_HINTS) and _STRONG_CODE.search(text):
        return 5, "code or error output in the message"
    score, reasons = 0, []
    if any(h in text for h in _SYNTAX_HINTS):
        syntax = 0
        for _ in _SYNTAX.finditer(text):
            syntax += 1
            if syntax == 2:
                break
        if syntax:
            score += syntax + 1
            reasons.append("code-like syntax")
    if _phrases(lowered, _CODE_STRONG_PHRASES):
        score += 3
        reasons.append("asks for code")
    language = next((t for t in tokens if t in _LANGUAGES), None) or (
        "Go" if _phrases(lowered, _LANGUAGE_PHRASES) else None
    )
    if language:
        ask = bool(token_set & _CODE_ASKS) or bool(_phrases(lowered, _CODE_ASK_PHRASES))
        score += 3 if ask else 1
        reasons.append(f"{'asks about' if ask else 'mentions'} {language}")
    if token_set & _CODE_WORDS or _phrases(lowered, _CODE_PHRASES):
        score += 2
        reasons.append("programming vocabulary")
    return score, " and ".join(reasons)


def _score_creative(lowered: str, token_set: set[str]) -> tuple[int, str]:
    score, reasons = 0, []
    found = token_set & _CREATIVE_WORDS
    if found or _phrases(lowered, _CREATIVE_PHRASES):
        score += 3
        reasons.append(f"asks for {min(found) if found else 'a fairy tale'}")
    if _phrases(lowered, _ROLEPLAY_PHRASES):
        score += 3
        reasons.append("role-play or a voice")
    return score, " and ".join(reasons)


def _score_reasoning(text: str, lowered: str, tokens: list[str], words: int) -> tuple[int, str]:
    score, reasons = 0, []
    operators = len(_OPERATOR.findall(text)) if any(c.isdigit() for c in text) or "x" in lowered else 0
    numbers = len(_NUMBER.findall(text)) if operators or any(c.isdigit() for c in text) else 0
    if operators >= 2 or (operators and words > 6) or numbers >= 3:
        score += 3
        reasons.append("a calculation or word problem")
    strong = sum(1 for t in tokens if t in _REASONING_STRONG) + _phrases(lowered, _REASONING_STRONG_PHRASES)
    weak = sum(1 for t in tokens if t in _REASONING_WEAK) + _phrases(lowered, _REASONING_WEAK_PHRASES)
    if strong or weak:
        score += min(2 * strong + weak, 4)
        reasons.append("asks for multi-step reasoning or analysis")
    return score, " and ".join(reasons)


def classify_task(text: str, *, images: int = 0) -> Classification:
    """The built-in classifier: local, deterministic, no network.

    >>> classify_task("Fix this Python function: def f(x) return x").task
    'code'
    >>> classify_task("Write a haiku about autumn").task
    'creative'
    >>> classify_task("What is the capital of France?").task
    'fast'
    """
    if images:
        return Classification("vision", 1.0, f"the request carries {images} image(s)")
    text = text[:4000]  # the signals are near the start; a bound keeps the decision in microseconds
    if _CJK.search(text):
        cjk = len(_CJK.findall(text))
        latin = len(_LATIN.findall(text))
        if cjk >= 2 and cjk / (cjk + latin / 4 + 1e-9) >= 0.5:
            return Classification("chinese", 0.95, "mostly Chinese text")
    words = text.count(" ") + 1
    lowered = text.lower()
    tokens = _TOKEN.findall(lowered)
    token_set = set(tokens)
    code, code_why = _score_code(text, lowered, tokens, token_set)
    creative, creative_why = _score_creative(lowered, token_set)
    reasoning, reasoning_why = _score_reasoning(text, lowered, tokens, words)
    score, _, task, why = max(
        (code, 3, "code", code_why),
        (creative, 2, "creative", creative_why),
        (reasoning, 1, "reasoning", reasoning_why),
    )
    if score >= 2:
        runner_up = sorted((code, creative, reasoning))[-2]
        confidence = min(0.97, 0.55 + 0.08 * score - 0.08 * runner_up)
        return Classification(task, round(max(confidence, 0.4), 2), why)
    question = bool(_QUESTION.search(text.strip()))
    if words <= 25 and (question or words <= 12):
        return Classification("fast", 0.7 if question else 0.55, "a short, simple request")
    return Classification("default", 0.4, "no strong signal; the default route")


# -- requirements and candidates ---------------------------------------------------------------


@dataclass(frozen=True)
class Requirements:
    """What the request needs from a model, derived before anything is sent."""

    vision: bool = False
    tools: bool = False
    json_schema: bool = False
    prompt_tokens: int = 0

    def violations(self, info: ModelInfo) -> list[str]:
        why = []
        if self.vision and info.vision is not True:
            why.append("no image input" if info.vision is False else "image input not known to be supported")
        if self.tools and info.tools is not True:
            why.append("no tool calling" if info.tools is False else "tool calling not known to be supported")
        if self.json_schema and info.json_schema is not True:
            why.append("no json_schema response format")
        if info.context_window is not None and self.prompt_tokens > info.context_window:
            why.append(f"prompt of ~{self.prompt_tokens} tokens exceeds the {info.context_window}-token window")
        return why


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A cheap over-estimate of prompt tokens (chars / 3.5), images at a flat 1K each."""
    chars, images = 0, 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping):
                    if part.get("type") == "text":
                        chars += len(str(part.get("text", "")))
                    elif part.get("type") in ("image_url", "image"):
                        images += 1
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
    return int(chars / 3.5) + 1000 * images + 4 * len(messages)


@dataclass(frozen=True)
class Cheapest:
    """A route policy: the cheapest catalog model of ``tier`` (and ``family``) meeting the request's needs.

    >>> Cheapest(tier="fast").resolve(Requirements(vision=True), default_catalog())[0]
    'gemini-1.5-flash'
    """

    tier: Tier | None = None
    family: str | None = None

    def resolve(self, needs: Requirements, catalog: ModelCatalog) -> list[str]:
        models = catalog.select(
            tier=self.tier,
            family=self.family,
            vision=needs.vision or None,
            tools=needs.tools or None,
            json_schema=needs.json_schema or None,
            min_context=needs.prompt_tokens or None,
        )
        return [m.id for m in models]


@dataclass
class RouteDecision:
    """Why a request went where it went (``response_metadata["aisa_route"]``)."""

    task: str
    model: str | None
    reason: str
    confidence: float
    candidates: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    target: Any = field(default=None, repr=False, compare=False)
    route_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": self.model,
            "reason": self.reason,
            "confidence": self.confidence,
            "candidates": list(self.candidates),
            "skipped": list(self.skipped),
        }


Classifier = Callable[[str], "Classification | str | tuple[str, float, str]"]


def _as_classification(value: Any, source: str) -> Classification:
    if isinstance(value, Classification):
        return value
    if isinstance(value, str):
        return Classification(value, 1.0, f"{source} said {value!r}")
    if isinstance(value, tuple) and len(value) == 3:
        return Classification(str(value[0]), float(value[1]), str(value[2]))
    raise InvalidRequestError(
        f"A classifier must return a task name, (task, confidence, reason) or a Classification; got {value!r}."
    )


class TaskRouter:
    """Decide the model for a request: explicit task, else the classifier; then route and constraints.

    ``routes`` maps a task to a model id, a list of ids (tried in order, with fallback), a
    :class:`Cheapest` policy, or any adapter object (a chat model, a runnable); missing tasks use
    :data:`DEFAULT_ROUTES`.

    >>> router = TaskRouter({"code": ["deepseek-coder", "gpt-4.1"]})
    >>> decision = router.decide("def broken(:\\n  pass  # fix this python", needs=Requirements())
    >>> (decision.task, decision.model)
    ('code', 'deepseek-coder')
    """

    def __init__(
        self,
        routes: Mapping[str, Any] | None = None,
        *,
        classifier: Classifier | None = None,
        catalog: ModelCatalog | None = None,
        model_of: Callable[[Any], str | None] = lambda target: getattr(target, "model", None),
    ) -> None:
        self.routes: dict[str, Any] = {**DEFAULT_ROUTES, **(routes or {})}
        unknown = set(self.routes) - set(TASKS)
        if unknown and classifier is None:
            raise InvalidRequestError(
                f"Routes for unknown tasks {sorted(unknown)}: the built-in classifier only produces {list(TASKS)}. "
                "Pass classifier= to produce your own task names."
            )
        self.classifier = classifier
        self.catalog = catalog or default_catalog()
        self.model_of = model_of

    def classify(self, text: str, *, images: int = 0) -> Classification:
        if images:
            return classify_task(text, images=images)
        if self.classifier is None:
            return classify_task(text)
        try:
            return _as_classification(self.classifier(text), "the classifier")
        except InvalidRequestError:
            raise
        except Exception as exc:  # a flaky custom or model-based classifier must not sink the request
            fallback = classify_task(text)
            return Classification(
                fallback.task,
                fallback.confidence,
                f"{fallback.reason} (custom classifier failed: {type(exc).__name__})",
            )

    def _route_models(self, spec: Any, needs: Requirements) -> list[tuple[str | None, Any]]:
        if isinstance(spec, str):
            return [(spec, spec)]
        if isinstance(spec, Cheapest):
            return [(m, m) for m in spec.resolve(needs, self.catalog)]
        if isinstance(spec, list | tuple):
            out: list[tuple[str | None, Any]] = []
            for item in spec:
                out.extend(self._route_models(item, needs))
            return out
        return [(self.model_of(spec), spec)]

    def decide(
        self,
        text: str,
        *,
        needs: Requirements,
        images: int = 0,
        task: str | None = None,
    ) -> RouteDecision:
        """Pick the route for a request; raises :class:`NoEligibleModelError` before anything is sent."""
        if task is not None:
            if task not in self.routes:
                raise InvalidRequestError(f"Unknown task {task!r}; routes exist for {sorted(self.routes)}.")
            classification = Classification(task, 1.0, "explicit task")
        else:
            classification = self.classify(text, images=images)
            if classification.task not in self.routes:
                classification = Classification(
                    "default",
                    classification.confidence,
                    f"{classification.reason}; no route for {classification.task!r}",
                )
        order = [classification.task] + (["default"] if classification.task != "default" else [])
        considered: list[str] = []
        skipped: list[dict[str, str]] = []
        seen: set[str] = set()
        for key in order:
            spec = self.routes[key]
            entries = self._route_models(spec, needs)
            if isinstance(spec, list | tuple) and entries:
                # A list route is a fallback chain: eligible members form the chain, in order.
                eligible = [(m, t) for m, t in entries if self._eligible(m, needs, considered, skipped, seen)]
                if eligible:
                    return RouteDecision(
                        classification.task,
                        eligible[0][0],
                        classification.reason,
                        classification.confidence,
                        considered,
                        skipped,
                        target=[t for _, t in eligible],
                        route_key=key,
                    )
                continue
            for model, target in entries:
                if self._eligible(model, needs, considered, skipped, seen):
                    return RouteDecision(
                        classification.task,
                        model,
                        classification.reason,
                        classification.confidence,
                        considered,
                        skipped,
                        target=target,
                        route_key=key,
                    )
        # Nothing on the route or the default: the cheapest catalog model that meets the needs.
        for model in Cheapest().resolve(needs, self.catalog):
            if self._eligible(model, needs, considered, skipped, seen):
                return RouteDecision(
                    classification.task,
                    model,
                    f"{classification.reason}; no routed model could serve it, so the cheapest eligible catalog model",
                    classification.confidence,
                    considered,
                    skipped,
                    target=model,
                    route_key="catalog",
                )
        details = "; ".join(f"{s['model']}: {s['why']}" for s in skipped) or "no candidates"
        raise NoEligibleModelError(
            f"No model can serve this {classification.task} request ({details}). "
            "Add a capable model to the route, or remove what it cannot handle."
        )

    def _eligible(
        self,
        model: str | None,
        needs: Requirements,
        considered: list[str],
        skipped: list[dict[str, str]],
        seen: set[str],
    ) -> bool:
        if model is None:
            considered.append("<custom runnable>")
            return True  # an opaque runnable: its owner vouches for it
        if model in seen:
            return False
        seen.add(model)
        considered.append(model)
        why = needs.violations(self.catalog.info(model))
        if why:
            skipped.append({"model": model, "why": "; ".join(why)})
            return False
        return True


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
    from .chat import create_chat_completion

    allowed = [t for t in tasks if t != "default"]

    def classify(text: str) -> Classification:
        completion = create_chat_completion(
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
        answer = (completion.choices[0].message.content or "").strip().lower().strip(".")
        if answer not in allowed:
            raise ValueError(f"unexpected classifier answer {answer!r}")
        return Classification(answer, 0.8, f"{model} classified it")

    return classify


Task = Literal["code", "creative", "fast", "vision", "chinese", "reasoning", "default"]
