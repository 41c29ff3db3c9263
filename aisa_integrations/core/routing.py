"""Routing by task type, cost-aware and capability-checked.

A request is classified into a task (:mod:`aisa_integrations.core.classifier`) with the conversation
in view: a follow-up turn that does not clearly ask for another task (it reads as ``fast`` or
``default``, or as a task below :data:`SWITCH_CONFIDENCE`) keeps the task of the conversation's
latest turn that had one, so a conversation does not switch models mid-way (``sticky=False`` turns
this off; an explicit task always wins). The task's route names candidates, and the engine's
capability check decides which are eligible: image input only to vision models, tools only to
tool-capable models, a json_schema format only where honoured, the output limit and the estimated
prompt within the model's limits. The first eligible candidate wins
(a list route is a fallback chain of its eligible members); then the default route; then the
cheapest capable catalog model. Every skip is recorded with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capabilities import Requirements, estimate_tokens
from .catalog import ModelCatalog, Tier, default_catalog
from .classifier import TASKS, Classification, Classifier, TaskClassifier, classify_task, model_classifier
from .errors import InvalidRequestError, NoEligibleModelError
from .lexical import LexicalModel

__all__ = [
    "DEFAULT_ROUTES",
    "SWITCH_CONFIDENCE",
    "TASKS",
    "Cheapest",
    "Classification",
    "NoEligibleModelError",
    "Requirements",
    "RouteDecision",
    "TaskClassifier",
    "TaskRouter",
    "classify_task",
    "estimate_tokens",
    "model_classifier",
]

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
    """Why a request went where it went (``response_metadata["aisa_route"]`` / ``additional_kwargs``)."""

    task: str
    model: str | None
    reason: str
    confidence: float
    candidates: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    targets: list[Any] = field(default_factory=list, repr=False, compare=False)
    route_key: str = ""
    inherited: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "task": self.task,
            "model": self.model,
            "reason": self.reason,
            "confidence": self.confidence,
            "candidates": list(self.candidates),
            "skipped": list(self.skipped),
        }
        if self.inherited:
            out["inherited"] = True
        return out


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


#: Why a route entry cannot serve the request ([] if it can): supplied by the engine.
Violations = Callable[[Any], list[str]]
#: The model id of a route entry (None for an opaque one, such as a custom runnable).
ModelOf = Callable[[Any], "str | None"]

#: Tasks a turn can have without changing the conversation's task ("thanks", "shorter please").
FOLLOW_UP_TASKS = frozenset({"fast", "default"})
#: A turn moves a conversation to a new task only when it reads as that task at least this surely.
#: Cross-validated on train.jsonl: at 0.7, 88 % of prompts of a specific task (code, creative,
#: reasoning) would switch, and 2.6 % of fast/default prompts would switch by mistake (0.5: 93 % / 4.3 %;
#: 0.9: 79 % / 1.0 %). A missed switch keeps the previous specific model, a false one changes models.
SWITCH_CONFIDENCE = 0.7
#: How many earlier user turns a sticky decision looks back over.
_LOOK_BACK = 8


def user_turns(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The text of each user message, in order (text parts joined; images are counted elsewhere)."""
    turns = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            turns.append(content)
        elif isinstance(content, list):
            turns.append(" ".join(p.get("text", "") for p in content if p.get("type") == "text"))
    return turns


class TaskRouter:
    """Decide the candidates for a request: explicit task, else the classifier; then the route.

    ``routes`` maps a task to a model id, a list (a fallback chain), a :class:`Cheapest` policy, or
    an adapter's target (a configured chat model, a runnable); missing tasks use
    :data:`DEFAULT_ROUTES`. ``classifier`` is a :class:`TaskClassifier`, a trained
    :class:`~aisa_integrations.core.lexical.LexicalModel` or a path to one, or any callable
    returning a task; ``None`` is the built-in classifier. ``sticky`` keeps a conversation's task
    across follow-up turns that name none.

    >>> router = TaskRouter({"code": ["deepseek-coder", "gpt-4.1"]})
    >>> decision = router.decide("def broken(:\\n  pass  # fix this python", needs=Requirements())
    >>> (decision.task, decision.model, decision.candidates)
    ('code', 'deepseek-coder', ['deepseek-coder', 'gpt-4.1'])
    """

    def __init__(
        self,
        routes: Mapping[str, Any] | None = None,
        *,
        classifier: Classifier | TaskClassifier | LexicalModel | str | Path | None = None,
        catalog: ModelCatalog | None = None,
        model_of: ModelOf | None = None,
        sticky: bool = True,
    ) -> None:
        self.routes: dict[str, Any] = {**DEFAULT_ROUTES, **(routes or {})}
        if isinstance(classifier, LexicalModel | str | Path):
            classifier = TaskClassifier(classifier)
        produced = classifier.tasks if isinstance(classifier, TaskClassifier) else TASKS
        unknown = set(routes or {}) - set(produced)
        if unknown and (classifier is None or isinstance(classifier, TaskClassifier)):
            raise InvalidRequestError(
                f"Routes for unknown tasks {sorted(unknown)}: the classifier only produces {sorted(produced)}. "
                "Train one on your own task names (aisa route --train) or pass classifier= that produces them."
            )
        self.classifier = classifier
        self.sticky = sticky
        self.catalog = catalog or default_catalog()
        self.model_of: ModelOf = model_of or (lambda target: getattr(target, "model", None))

    def model_ids(self) -> list[str | None]:
        """The models the routes name (None for a member whose model is unknown); a ``Cheapest``
        route names none: it picks a model that meets each request's needs."""
        ids: list[str | None] = []
        for spec in self.routes.values():
            for member in spec if isinstance(spec, list | tuple) else [spec]:
                if not isinstance(member, Cheapest):
                    ids.append(member if isinstance(member, str) else self.model_of(member))
        return ids

    def classify(self, text: str, *, images: int = 0) -> Classification:
        if images:
            return classify_task(text, images=images)
        if self.classifier is None:
            return classify_task(text)
        if isinstance(self.classifier, TaskClassifier):
            return self.classifier(text)
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

    def classify_conversation(self, turns: Sequence[str], *, images: int = 0) -> tuple[Classification, bool]:
        """The latest turn's task, or (when sticky and that turn does not clearly name one) the conversation's.

        Returns the classification and whether it was inherited from an earlier turn.
        """
        latest = self.classify(turns[-1] if turns else "", images=images)
        if not self.sticky or len(turns) < 2 or images:
            return latest, False
        if latest.task not in FOLLOW_UP_TASKS and latest.confidence >= SWITCH_CONFIDENCE:
            return latest, False  # the turn clearly asks for something else: the conversation moves on
        for back, text in enumerate(reversed(turns[-_LOOK_BACK - 1 : -1]), 1):
            earlier = self.classify(text)
            if earlier.task not in FOLLOW_UP_TASKS:
                where = "the previous user turn" if back == 1 else f"the user turn {back} back"
                return Classification(
                    earlier.task,
                    earlier.confidence,
                    f"inherited from the conversation: {where} was {earlier.task} ({earlier.reason}); "
                    f"this turn alone reads as {latest.task} ({latest.reason})",
                ), True
        return latest, False

    def _entries(self, spec: Any, needs: Requirements) -> list[tuple[str | None, Any]]:
        if isinstance(spec, str):
            return [(spec, spec)]
        if isinstance(spec, Cheapest):
            return [(m, m) for m in spec.resolve(needs, self.catalog)]
        if isinstance(spec, list | tuple):
            out: list[tuple[str | None, Any]] = []
            for item in spec:
                out.extend(self._entries(item, needs))
            return out
        return [(self.model_of(spec), spec)]

    def _default_violations(self, target: Any) -> list[str]:
        model = target if isinstance(target, str) else self.model_of(target)
        return [] if model is None else self._needs.violations(self.catalog.info(model))

    def decide(
        self,
        text: str,
        *,
        needs: Requirements,
        images: int = 0,
        task: str | None = None,
        violations: Violations | None = None,
        earlier: Sequence[str] = (),
    ) -> RouteDecision:
        """Pick the candidates for a request; raises :class:`NoEligibleModelError` before anything is sent.

        ``earlier`` holds the conversation's earlier user turns, oldest first (for sticky routing).
        """
        inherited = False
        if task is not None:
            if task not in self.routes:
                raise InvalidRequestError(f"Unknown task {task!r}; routes exist for {sorted(self.routes)}.")
            classification = Classification(task, 1.0, "explicit task")
        else:
            classification, inherited = self.classify_conversation([*earlier, text], images=images)
            if classification.task not in self.routes:
                classification = Classification(
                    "default",
                    classification.confidence,
                    f"{classification.reason}; no route for {classification.task!r}",
                )
        decision = self.route(classification, needs=needs, violations=violations)
        decision.inherited = inherited
        return decision

    def route(
        self, classification: Classification, *, needs: Requirements, violations: Violations | None = None
    ) -> RouteDecision:
        """The candidates for an already classified request."""
        self._needs = needs
        check = violations or self._default_violations
        order = [classification.task] + (["default"] if classification.task != "default" else [])
        considered: list[str] = []
        skipped: list[dict[str, str]] = []
        seen: set[str] = set()

        def eligible(name: str | None, target: Any) -> bool:
            label = name or "<custom runnable>"
            if name is not None and name in seen:
                return False
            if name is not None:
                seen.add(name)
            considered.append(label)
            why = check(target)
            if why:
                skipped.append({"model": label, "why": "; ".join(why)})
                return False
            return True

        def decision(targets: list[Any], first: str | None, key: str, reason: str) -> RouteDecision:
            return RouteDecision(
                classification.task,
                first,
                reason,
                classification.confidence,
                considered,
                skipped,
                targets=targets,
                route_key=key,
            )

        for key in order:
            spec = self.routes[key]
            entries = self._entries(spec, needs)
            if isinstance(spec, list | tuple):
                # A list route is a fallback chain: its eligible members form the chain, in order.
                chain = [(m, t) for m, t in entries if eligible(m, t)]
                if chain:
                    return decision([t for _, t in chain], chain[0][0], key, classification.reason)
                continue
            for model, target in entries:
                if eligible(model, target):
                    return decision([target], model, key, classification.reason)
        # Nothing on the route or the default: the cheapest catalog model that meets the needs.
        for model in Cheapest().resolve(needs, self.catalog):
            if eligible(model, model):
                return decision(
                    [model],
                    model,
                    "catalog",
                    f"{classification.reason}; no routed model could serve it, so the cheapest eligible catalog model",
                )
        details = "; ".join(f"{s['model']}: {s['why']}" for s in skipped) or "no candidates"
        raise NoEligibleModelError(
            f"No model can serve this {classification.task} request ({details}). "
            "Add a capable model to the route, or remove what it cannot handle."
        )
