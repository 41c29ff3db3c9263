"""Routing by task type, cost-aware and capability-checked.

A request is classified into a task (:mod:`aisa_integrations.core.classifier`), the task's route
names candidates, and the engine's capability check decides which are eligible: image input only to
vision models, tools only to tool-capable models, a json_schema format only where honoured, the
output limit and the estimated prompt within the model's limits. The first eligible candidate wins
(a list route is a fallback chain of its eligible members); then the default route; then the
cheapest capable catalog model. Every skip is recorded with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .capabilities import Requirements, estimate_tokens
from .catalog import ModelCatalog, Tier, default_catalog
from .classifier import TASKS, Classification, Classifier, classify_task, model_classifier
from .errors import InvalidRequestError, NoEligibleModelError

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


class TaskRouter:
    """Decide the candidates for a request: explicit task, else the classifier; then the route.

    ``routes`` maps a task to a model id, a list (a fallback chain), a :class:`Cheapest` policy, or
    an adapter's target (a configured chat model, a runnable); missing tasks use
    :data:`DEFAULT_ROUTES`.

    >>> router = TaskRouter({"code": ["deepseek-coder", "gpt-4.1"]})
    >>> decision = router.decide("def broken(:\\n  pass  # fix this python", needs=Requirements())
    >>> (decision.task, decision.model, decision.candidates)
    ('code', 'deepseek-coder', ['deepseek-coder', 'gpt-4.1'])
    """

    def __init__(
        self,
        routes: Mapping[str, Any] | None = None,
        *,
        classifier: Classifier | None = None,
        catalog: ModelCatalog | None = None,
        model_of: ModelOf | None = None,
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
        self.model_of: ModelOf = model_of or (lambda target: getattr(target, "model", None))

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
    ) -> RouteDecision:
        """Pick the candidates for a request; raises :class:`NoEligibleModelError` before anything is sent."""
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
        return self.route(classification, needs=needs, violations=violations)

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
