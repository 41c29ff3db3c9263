"""Which task a request is: the built-in classifier (local, deterministic, no network) and an
optional one that asks a cheap model.

>>> classify_task("Write a haiku about autumn").task
'creative'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TASKS", "Classification", "Classifier", "classify_task", "model_classifier"]

TASKS = ("code", "creative", "fast", "vision", "chinese", "reasoning", "default")


@dataclass(frozen=True)
class Classification:
    """A task, how sure the classifier is, and why."""

    task: str
    confidence: float
    reason: str


Classifier = Callable[[str], "Classification | str | tuple[str, float, str]"]


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
    from .transport import post_chat
    from .usage import parse_usage

    allowed = [t for t in tasks if t != "default"]

    def classify(text: str) -> Classification:
        completion = post_chat(
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
