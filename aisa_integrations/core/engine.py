"""The one path every call takes, from both frameworks.

An adapter hands the engine an OpenAI-format request (its framework's messages and tools already
translated) and gets back a completion dict, or a stream of chunk dicts, plus a report. In between,
in this order and in this one place:

1. the request is validated and normalised (:func:`~aisa_integrations.core.wire.normalize_request`);
2. its needs are derived (:mod:`~aisa_integrations.core.capabilities`);
3. the candidates are chosen: the plan's models in order, or the router's route for the request;
4. candidates that cannot serve it (no image input, no tools, an output limit too small, ...) are
   skipped with the reason; if none is left, :class:`InvalidRequestError` is raised before anything
   is sent;
5. the candidates are tried under the fallback policy (retries, fail-over, breakers, per-attempt
   timeouts), each attempt given a request scoped to its model family and sent in its target's wire
   format (``ModelTarget.api``: chat completions, or Gemini's native ``generateContent``, translated
   at the wire by :mod:`~aisa_integrations.core.gemini_native`);
6. every billed answer is reported to the cost trackers; the report lists every attempt.

A plan with one model and no policy is a plain call: the openai SDK's retries are the only retry
layer and errors are raised as they are. With fallback models, routes or timeouts, the policy is the
only retry layer (the SDK's retries are off).

>>> from aisa_integrations.core.config import ClientConfig
>>> from aisa_integrations.testing import AIsaSimulator, Fault
>>> with AIsaSimulator() as sim:
...     _ = sim.inject("gpt-4.1", Fault(status=503))
...     config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
...     engine = Engine(make_plan(config, model="gpt-4.1", fallback_models=["claude-3-sonnet"]))
...     outcome = engine.complete(engine.prepare({"messages": [{"role": "user", "content": "Hi"}]}))
...     (outcome.completion["model"], outcome.report.fallback_index)
('claude-3-sonnet', 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import errors as E
from . import provider_fields, wire
from .account import accounts
from .breakers import BreakerRegistry, Permit, breakers
from .capabilities import Requirements, estimate_tokens, image_count, requirements_of
from .catalog import ModelCatalog, default_catalog, family_of
from .config import ClientConfig
from .costs import CostTracker, StreamMeter, check_budgets, record_usage
from .errors import NoEligibleModelError
from .fallback import (
    UNHEALTHY,
    AttemptRecord,
    FallbackPolicy,
    FallbackReport,
    all_failed,
    classify,
)
from .ratelimit import RateLimiter
from .stream import ChunkAccumulator, chunk_has_content, chunk_text
from .timeouts import StreamTimeouts
from .usage import Usage, parse_usage

if TYPE_CHECKING:  # routing is imported only by plans that route
    from .classifier import Classifier
    from .routing import RouteDecision, TaskRouter

__all__ = [
    "Call",
    "Engine",
    "EngineStream",
    "ForeignItem",
    "ForeignTarget",
    "ModelTarget",
    "Outcome",
    "Plan",
    "make_plan",
    "plan_settings",
]

MidStream = Literal["raise", "continue"]
#: Which wire format a model is sent: chat completions, or Gemini's own ``generateContent``.
Api = Literal["chat", "gemini-native"]
APIS: tuple[str, ...] = ("chat", "gemini-native")


# -- targets and plans ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelTarget:
    """A model behind the gateway, optionally with settings of its own (a configured chat model
    used as a fallback member or a route): its ``params`` apply unless the call sets them.

    ``api`` is the wire format it is sent: ``"chat"`` (``/chat/completions``) or ``"gemini-native"``
    (``/models/{model}:generateContent``, Gemini models only). The request stays OpenAI-format until
    the wire, so members of either format fall back to each other freely.
    """

    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    config: ClientConfig | None = None
    api: Api = "chat"
    #: The member's own rate limiter (a configured chat model's), beside the plan's.
    rate_limiter: RateLimiter | None = None

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise E.ConfigurationError(f"api must be 'chat' or 'gemini-native', got {self.api!r}.")

    @property
    def name(self) -> str:
        return self.model


@dataclass(frozen=True, eq=False)
class ForeignTarget:
    """A member the engine cannot call over the wire itself: another library's chat model, a runnable,
    a nested fallback. The adapter supplies how to call it; the engine classifies what it raises
    like any failure and fails over per the policy.

    ``call`` / ``acall`` take (the adapter's call input, a prefill or None) and return a result;
    ``stream`` / ``astream`` yield items; ``is_content`` / ``text_of`` / ``cost_of`` read an item.
    Sync calls to a foreign member are not interrupted by ``first_token_timeout`` (its own timeout
    applies); async ones are.
    """

    name: str
    call: Callable[[Any, str | None], Any]
    acall: Callable[[Any, str | None], Awaitable[Any]]
    stream: Callable[[Any, str | None], Iterator[Any]]
    astream: Callable[[Any, str | None], AsyncIterator[Any]]
    is_content: Callable[[Any], bool]
    text_of: Callable[[Any], str]
    cost_of: Callable[[Any], float | None] = lambda _: None
    model: str | None = None
    takes_request_options: bool = True
    """False for a plain runnable: it cannot take tools, a response format or stop sequences."""


Target = ModelTarget | ForeignTarget


class ForeignItem:
    """A foreign member's streamed item, passed through to the adapter as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass(frozen=True, eq=False)
class Plan:
    """Who may serve a call and under which policy (built once per configured model)."""

    config: ClientConfig
    targets: tuple[Target, ...]
    policy: FallbackPolicy | None = None
    router: TaskRouter | None = None
    catalog: ModelCatalog = field(default_factory=default_catalog)
    check_capabilities: bool = True
    mid_stream: MidStream = "raise"
    #: The model's own spend cap (``budget=``): shared by every copy that holds the same tracker.
    budget: CostTracker | None = None
    #: Requests/tokens per minute for every attempt this plan sends (``rate_limiter=``).
    rate_limiter: RateLimiter | None = None
    #: The framework already took the call's first request from ``rate_limiter`` (LangChain does).
    first_request_paid: bool = False

    @property
    def managed(self) -> bool:
        """Whether the fallback policy runs this plan (else: one plain call)."""
        return self.policy is not None

    def model_ids(self) -> list[str | None]:
        """Every model that may answer under this plan: its members, then its routes' (None for a
        member whose model is unknown)."""
        ids: list[str | None] = [target.model for target in self.targets]
        if self.router is not None:
            ids += self.router.model_ids()
        return ids


def _as_target(value: Any, catalog_params: Callable[[Any], Target] | None) -> Target:
    if isinstance(value, ModelTarget | ForeignTarget):
        return value
    if isinstance(value, str):
        return ModelTarget(value)
    if catalog_params is not None:
        return catalog_params(value)
    raise E.ConfigurationError(
        f"A fallback member or route must be a model id or a chat model, got {type(value).__name__}."
    )


def make_plan(
    config: ClientConfig,
    *,
    model: str,
    fallback_models: Sequence[Any] = (),
    routes: Mapping[str, Any] | None = None,
    classifier: Classifier | None = None,
    policy: FallbackPolicy | None = None,
    first_token_timeout: float | None = None,
    stall_timeout: float | None = None,
    mid_stream: MidStream = "raise",
    check_capabilities: bool = True,
    sticky_routing: bool = True,
    budget: CostTracker | None = None,
    rate_limiter: RateLimiter | None = None,
    first_request_paid: bool = False,
    catalog: ModelCatalog | None = None,
    params: Mapping[str, Any] | None = None,
    target_of: Callable[[Any], Target] | None = None,
    api: Api = "chat",
) -> Plan:
    """The plan for a model configured with these settings (the same for every adapter).

    ``fallback_models`` and route values may be model ids, :class:`ModelTarget` /
    :class:`ForeignTarget`, or anything ``target_of`` (the adapter's) turns into one. Any of
    fallback models, routes, a policy or a timeout puts the call under the fallback policy.
    ``api`` is the primary model's wire format (fallback members and routes that are
    :class:`ModelTarget` carry their own; a model id given as a string is sent as chat).
    """
    catalog = catalog or default_catalog()
    if api not in APIS:
        raise E.ConfigurationError(f"api must be 'chat' or 'gemini-native', got {api!r}.")
    if mid_stream not in ("raise", "continue"):
        raise E.ConfigurationError(f"mid_stream must be 'raise' or 'continue', got {mid_stream!r}.")
    managed = bool(fallback_models) or routes is not None or classifier is not None or policy is not None
    managed = managed or first_token_timeout is not None or stall_timeout is not None
    if managed:
        overrides = {
            k: v
            for k, v in (("first_token_timeout", first_token_timeout), ("stall_timeout", stall_timeout))
            if v is not None
        }
        policy = dataclasses.replace(policy or FallbackPolicy(), **overrides)
    for key, value in (params or {}).items():
        wire.normalize_request({"model": "m", "messages": [{"role": "user", "content": "x"}], key: value})
    primary = _with_api(_as_target(model, target_of), api)
    targets = (primary, *(_as_target(t, target_of) for t in fallback_models))
    for target in targets:
        _check_api(target, catalog)
    router = None
    if routes is not None or classifier is not None:
        from .routing import TaskRouter

        resolved = {key: _route_spec(spec, target_of) for key, spec in (routes or {}).items()}
        for spec in resolved.values():
            for target in spec if isinstance(spec, list) else [spec]:
                _check_api(target, catalog)
        resolved.setdefault("default", model if api == "chat" else primary)
        router = TaskRouter(resolved, classifier=classifier, catalog=catalog, model_of=_model_of, sticky=sticky_routing)
    return Plan(
        config=config,
        targets=targets,
        policy=policy,
        router=router,
        catalog=catalog,
        check_capabilities=check_capabilities,
        mid_stream=mid_stream,
        budget=budget,
        rate_limiter=rate_limiter,
        first_request_paid=first_request_paid,
    )


def _with_api(target: Target, api: str) -> Target:
    if api == "chat":
        return target
    if not isinstance(target, ModelTarget):
        raise E.ConfigurationError(
            f"api={api!r} applies to a model behind the gateway; {target.name!r} is another library's model."
        )
    return dataclasses.replace(target, api=api)


def _check_api(target: Any, catalog: ModelCatalog) -> None:
    """Gemini's native format is for Gemini models only: anything else is a configuration error."""
    if isinstance(target, ModelTarget) and target.api == "gemini-native":
        family = catalog.info(target.model).family
        if family != "gemini":
            raise E.ConfigurationError(
                f"api='gemini-native' sends Gemini's own generateContent format, but {target.model!r} is a "
                f"{family} model. Use api='chat' for it (or a Gemini model such as 'gemini-2.0-flash')."
            )


#: The settings both adapters expose under the same names (as fields of the model), and that make its plan.
PLAN_SETTINGS = (
    "fallback_models",
    "routes",
    "classifier",
    "first_token_timeout",
    "stall_timeout",
    "mid_stream",
    "check_capabilities",
    "sticky_routing",
    "budget",
    "api",
)


def plan_settings(model: Any) -> dict[str, Any]:
    """A configured model's plan settings, read from its fields (``fallback_policy`` is the policy)."""
    settings = {name: getattr(model, name) for name in PLAN_SETTINGS}
    settings["policy"] = model.fallback_policy
    return settings


def _route_spec(spec: Any, target_of: Callable[[Any], Target] | None) -> Any:
    from .routing import Cheapest

    if isinstance(spec, str | Cheapest | ModelTarget | ForeignTarget):
        return spec
    if isinstance(spec, list | tuple):
        return [_route_spec(s, target_of) for s in spec]
    return _as_target(spec, target_of)


def _model_of(target: Any) -> str | None:
    if isinstance(target, str):
        return target
    return getattr(target, "model", None)


# -- a prepared call --------------------------------------------------------------------------


@dataclass
class Call:
    """A validated request with its candidates, ready to be sent."""

    request: dict[str, Any]
    needs: Requirements
    candidates: list[Target]
    skipped: list[AttemptRecord]
    route: RouteDecision | None
    explicit: frozenset[str]
    scoped: bool
    include_usage: bool
    foreign_input: Any


@dataclass
class Outcome:
    """What a completed call returned: a completion dict (or a foreign member's result), and how."""

    completion: dict[str, Any] | None
    foreign: Any
    served: Target
    report: FallbackReport | None
    route: RouteDecision | None


class _Stop(Exception):
    """Internal: raise this error now (wrapped so the loop can tell it from a failure)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


# -- the attempt loop: decisions only, shared by sync/async and plain/streamed calls -------------


@dataclass
class _Attempt:
    target: Target
    index: int
    permit: Permit | None
    started: float
    retry: int
    waited: float
    request: dict[str, Any] | None  # None for a foreign target
    first: bool = True  # the call's first request to the gateway
    charged_tokens: float = 0.0  # what the rate limiter was charged for it, settled on usage


class _Loop:
    def __init__(self, engine: Engine, call: Call) -> None:
        self.engine = engine
        self.plan = engine.plan
        self.policy = engine.plan.policy or FallbackPolicy(circuit_breaker=False)
        self.call = call
        first = call.candidates[0].name if call.candidates else (call.skipped[0].model if call.skipped else "")
        self.report = FallbackReport(requested_model=first)
        self.report.attempts.extend(call.skipped)
        self.index = 0
        self.retry = 0
        self.wait = 0.0
        self.first_error: BaseException | None = None
        self.last_error: BaseException | None = None
        self.min_context: int | None = None
        self.prefill: str | None = None
        self.sent = 0
        self.emitted: list[str] = []

    def _skip(self, target: Target, why: str, failure: str) -> None:
        self.report.attempts.append(AttemptRecord(target.name, "skipped", error=why, failure=failure))
        self.index += 1
        self.retry = 0
        self.wait = 0.0

    def next(self) -> _Attempt | None:
        candidates = self.call.candidates
        while self.index < len(candidates):
            target = candidates[self.index]
            if self.prefill is not None and not self.engine.accepts_prefill(target):
                self._skip(target, "does not accept an assistant prefill", "prefill")
                continue
            if self.min_context is not None:
                window = self.engine.context_window(target)
                if window is not None and window <= self.min_context:
                    self._skip(
                        target, f"context window {window} is not larger than {self.min_context}", "context_length"
                    )
                    continue
            request = self.engine.attempt_request(self.call, target, self.prefill)
            if isinstance(target, ModelTarget):
                self.engine.before_send(target, request)  # type: ignore[arg-type]  # raises before a permit is held
            permit = None
            if self.plan.managed and self.policy.circuit_breaker and isinstance(target, ModelTarget):
                config = target.config or self.plan.config
                permit = self.engine.breakers.get(config.base_url, target.model).acquire(self.policy.breaker)
                if permit is None:
                    self._skip(target, "circuit open", "circuit_open")
                    continue
            first = self.sent == 0
            self.sent += isinstance(target, ModelTarget)
            return _Attempt(target, self.index, permit, self.engine.clock(), self.retry, self.wait, request, first)
        return None

    def succeeded(self, attempt: _Attempt, cost: float | None) -> None:
        if attempt.permit is not None:
            attempt.permit.success()
        self.report.attempts.append(
            AttemptRecord(
                attempt.target.name,
                "ok",
                latency_ms=(self.engine.clock() - attempt.started) * 1e3,
                cost=cost,
                waited_s=attempt.waited,
            )
        )
        self.report.served_model = attempt.target.name
        self.report.fallback_index = attempt.index

    def failed(self, attempt: _Attempt, exc: BaseException, cost: float | None = None) -> float | None:
        """Record a failure; seconds to wait before retrying the same model, or None to move on.

        Raises _Stop when the error must propagate.
        """
        failure = classify(exc)
        if failure == "credits" and isinstance(attempt.target, ModelTarget):
            accounts.mark_out_of_credits(attempt.target.config or self.plan.config, attempt.target.name)
        self.report.attempts.append(
            AttemptRecord(
                attempt.target.name,
                "error",
                error=getattr(exc, "server_message", None) or str(exc).split("\n")[0][:300],
                error_type=type(exc).__name__,
                failure=failure,
                status=getattr(exc, "status_code", None),
                latency_ms=(self.engine.clock() - attempt.started) * 1e3,
                cost=cost,
                waited_s=attempt.waited,
            )
        )
        if self.first_error is None:
            self.first_error = exc
        self.last_error = exc
        if attempt.permit is not None:
            if failure in UNHEALTHY:
                attempt.permit.failure(getattr(exc, "retry_after", None))
            else:
                attempt.permit.release()
        if not self.plan.managed or failure not in self.policy.fallback_on:
            raise _Stop(exc)
        if failure == "not_found":
            warnings.warn(
                f"Model {attempt.target.name!r} was not found at the gateway; falling back. {exc}", stacklevel=5
            )
        wait = None
        if failure == "context_length":
            window = self.engine.context_window(attempt.target)
            self.min_context = max(self.min_context or 0, window or 0)
        else:
            wait = self.policy.retry_wait(failure, exc, self.retry)
        if wait is not None and attempt.permit is not None:
            config = attempt.target.config or self.plan.config  # type: ignore[union-attr]
            if self.engine.breakers.get(config.base_url, attempt.target.model).state == "open":  # type: ignore[union-attr]
                wait = None
        if wait is None:
            self.index += 1
            self.retry = 0
            self.wait = 0.0
            return None
        self.retry += 1
        self.wait = wait
        return wait

    def mid_stream_failure(self, attempt: _Attempt, exc: BaseException, cost: float | None) -> None:
        """Content already reached the caller: never pass a truncated answer off as complete."""
        with contextlib.suppress(_Stop):
            self.failed(attempt, exc, cost)
        self.index = attempt.index + 1
        self.retry = 0
        self.wait = 0.0
        if self.plan.mid_stream != "continue" or not self.plan.managed:
            raise _Stop(self.stream_error(attempt, exc))
        self.prefill = "".join(self.emitted)

    def stream_error(self, attempt: _Attempt, exc: BaseException) -> BaseException:
        if isinstance(exc, E.StreamError):
            err = exc
        else:
            err = E.StreamInterruptedError(
                f"The answer from {attempt.target.name} failed after content was streamed: {exc}. "
                "The partial answer is in .partial_text.",
                model=attempt.target.name,
            )
            err.__cause__ = exc
        err.partial_text = "".join(self.emitted)
        return err

    def attempt_failed(self, attempt: _Attempt, exc: Exception, gate: _Gate | None = None) -> float | None:
        """After a failed attempt: seconds to wait before the next one (None: none), or the error to raise.

        A bug in our own code (not an AIsaError from a wire attempt) is never classified or retried.
        """
        if isinstance(attempt.target, ModelTarget) and not isinstance(exc, E.AIsaError):
            if attempt.permit is not None:
                attempt.permit.release()
            raise exc
        try:
            if gate is not None and gate.content_seen:
                self.mid_stream_failure(attempt, exc, gate.cost)
                return None
            return self.failed(attempt, exc, gate.cost if gate is not None else None)
        except _Stop as stop:
            raise self.stop(stop) from None

    def exhausted(self) -> BaseException:
        if len(self.call.candidates) == 1 and self.call.route is None and self.last_error is not None:
            if isinstance(self.last_error, E.AIsaError):
                self.last_error.fallback_report = self.report
            return self.last_error  # one model: its own error, not a list of one
        return all_failed(self.report, self.first_error)

    def stop(self, stop: _Stop) -> BaseException:
        exc = stop.exc
        if isinstance(exc, E.AIsaError) and self.plan.managed:
            exc.fallback_report = self.report
        return exc


class _Gate:
    """The streaming contract for one attempt: hold metadata-only items until the first content
    (so a failure before it can fail over invisibly), then pass everything through. It also reads
    the attempt's cost, and reports a billed wire answer to the cost trackers."""

    __slots__ = (
        "content_seen",
        "cost",
        "cost_of",
        "emitted",
        "held",
        "is_content",
        "meter",
        "model",
        "text_of",
        "wire",
    )

    def __init__(
        self,
        target: Target,
        emitted: list[str],
        request: Mapping[str, Any] | None = None,
        budget: CostTracker | None = None,
        on_usage: Callable[[Usage], None] | None = None,
    ) -> None:
        self.wire = isinstance(target, ModelTarget)
        self.meter = StreamMeter(target.name, request, budget, on_usage) if self.wire else None
        if isinstance(target, ForeignTarget):
            self.is_content, self.text_of, self.cost_of = target.is_content, target.text_of, target.cost_of
        else:
            self.is_content, self.text_of, self.cost_of = chunk_has_content, chunk_text, _no_cost
        self.model = target.name
        self.emitted = emitted
        self.held: list[Any] = []
        self.content_seen = False
        self.cost: float | None = None

    def feed(self, item: Any) -> list[Any]:
        if self.meter is not None:
            usage = self.meter.feed(item)
            if usage is not None and usage.cost is not None:
                self.cost = usage.cost
        else:
            cost = self.cost_of(item)
            if cost is not None:
                self.cost = cost
        if not self.content_seen:
            if not self.is_content(item):
                self.held.append(item)
                return []
            self.content_seen = True
            ready, self.held = [*self.held, item], []
        else:
            ready = [item]
        text = self.text_of(item)
        if text:
            self.emitted.append(text)
        return ready

    def flush(self) -> list[Any]:
        ready, self.held = self.held, []
        return ready


def _no_cost(_: Any) -> None:
    return None


def _completion_cost(completion: Mapping[str, Any] | None) -> float | None:
    if not completion:
        return None
    usage = parse_usage(completion.get("usage"))
    return usage.cost if usage else None


@contextlib.contextmanager
def _credits_watch(target: ModelTarget, default: ClientConfig) -> Iterator[None]:
    """A plain call's 402 marks the account out of credits, as a managed attempt's does."""
    try:
        yield
    except E.InsufficientCreditsError:
        accounts.mark_out_of_credits(target.config or default, target.model)
        raise


def _record(
    completion: Mapping[str, Any], model: str, config: ClientConfig, budget: CostTracker | None
) -> Usage | None:
    usage = parse_usage(completion.get("usage"))
    record_usage(completion.get("model") or model, usage, budget=budget)
    accounts.saw_credits(config, usage.credits_remaining if usage else None)
    return usage


# -- the engine --------------------------------------------------------------------------------


class Engine:
    """Runs calls under one :class:`Plan`. Thread-safe; build one per configured model.

    ``clock`` / ``sleep`` / ``asleep`` are injectable so the policy's timing can be tested without
    waiting; ``registry`` holds the circuit breakers (the process-wide one by default);
    ``on_retry(model, error, seconds)`` is told before each wait for a retry (to say why it waits).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        registry: BreakerRegistry | None = None,
        on_retry: Callable[[str, BaseException, float], None] | None = None,
    ) -> None:
        self.plan = plan
        self.on_retry = on_retry
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self.breakers = registry or breakers
        self._managed_configs: dict[int, ClientConfig] = {}

    # -- preparing ------------------------------------------------------------------------
    def prepare(
        self,
        request: Mapping[str, Any],
        *,
        explicit: Sequence[str] = (),
        task: str | None = None,
        legacy_functions: bool = False,
        include_usage: bool = True,
        foreign_input: Any = None,
    ) -> Call:
        """Validate, route and check a request; raises :class:`InvalidRequestError` before sending.

        ``request`` holds everything but (optionally) the model; ``explicit`` names the parameters
        the call itself set (they win over a member's own settings).
        """
        plan = self.plan
        normalized = wire.normalize_request({"model": plan.targets[0].name, **request})
        # A call that names its own model (``invoke(..., model="gpt-4o-mini")``) is served by that model.
        override = self._override(normalized["model"]) if "model" in explicit else None
        if legacy_functions:
            wire.to_legacy_functions(normalized)
        needs = requirements_of(normalized)
        route = None
        if plan.router is not None and override is None:
            from .routing import user_turns  # loaded with the router already: routing stays lazy

            turns = user_turns(normalized["messages"]) or [""]
            route = plan.router.decide(
                turns[-1],
                earlier=turns[:-1],
                needs=needs,
                images=image_count(normalized),
                task=task,
                violations=lambda target: self.violations(_as_target(target, None), needs, explicit),
            )
            candidates = [_as_target(t, None) for t in route.targets]
            skipped: list[AttemptRecord] = []
        else:
            if task is not None:
                raise E.InvalidRequestError(
                    f"task={task!r} was given, but this model has no routes; pass routes={{...}} to route by task."
                )
            candidates, skipped = [], []
            targets = plan.targets if override is None else (override, *plan.targets[1:])
            for target in targets:
                why = self.violations(target, needs, explicit)
                if why:
                    skipped.append(AttemptRecord(target.name, "skipped", error="; ".join(why), failure="capability"))
                else:
                    candidates.append(target)
            if not candidates:
                details = "; ".join(f"{s.model}: {s.error}" for s in skipped)
                raise NoEligibleModelError(
                    f"No model here can serve this request ({details}). Use a model that can, or remove what it "
                    "cannot handle; if your gateway knows better than the catalog, pass check_capabilities=False."
                )
        return Call(
            request=normalized,
            needs=needs,
            candidates=candidates,
            skipped=skipped,
            route=route,
            explicit=frozenset(explicit),
            scoped=provider_fields.needs_scoping(normalized["messages"]),
            include_usage=include_usage,
            foreign_input=foreign_input,
        )

    def _override(self, model: str) -> ModelTarget:
        """The target of a call that names its own model: the primary's wire format if it can take it."""
        primary = self.plan.targets[0]
        api = primary.api if isinstance(primary, ModelTarget) else "chat"
        if api != "chat" and self.plan.catalog.info(model).family != "gemini":
            api = "chat"
        return ModelTarget(model, api=api)

    def violations(self, target: Target, needs: Requirements, explicit: Sequence[str] = ()) -> list[str]:
        """Why ``target`` cannot serve a request with these needs ([] if it can, or is unknown)."""
        if not self.plan.check_capabilities:
            return []
        if isinstance(target, ForeignTarget):
            if not target.takes_request_options and (needs.tools or needs.json_schema):
                return ["a plain runnable cannot take tools or a response format; route such requests to a chat model"]
            return [] if target.model is None else needs.violations(self.plan.catalog.info(target.model))
        own_limit = target.params.get("max_tokens", target.params.get("max_completion_tokens"))
        if own_limit is not None and needs.max_tokens is None and "max_tokens" not in explicit:
            needs = dataclasses.replace(needs, max_tokens=own_limit)
        return needs.violations(self.plan.catalog.info(target.model))

    def accepts_prefill(self, target: Target) -> bool:
        if isinstance(target, ForeignTarget):
            return False
        return self.plan.catalog.info(target.model).assistant_prefill is True

    def context_window(self, target: Target) -> int | None:
        model = target.model
        return self.plan.catalog.info(model).context_window if model else None

    def attempt_request(self, call: Call, target: Target, prefill: str | None) -> dict[str, Any] | None:
        """The request one model receives: its own settings, its family's view of the conversation."""
        if isinstance(target, ForeignTarget):
            return None
        request = dict(call.request)
        for key, value in target.params.items():
            if key not in call.explicit:
                request[key] = value
        request["model"] = target.model
        if call.scoped:
            request["messages"] = provider_fields.for_family(call.request["messages"], family_of(target.model)[0])
        if prefill is not None:
            request["messages"] = [*request["messages"], {"role": "assistant", "content": prefill}]
        return request

    def _config(self, target: ModelTarget) -> ClientConfig:
        config = target.config or self.plan.config
        if not self.plan.managed:
            return config
        # Under the policy, the SDK's own retries are off: one retry layer. Made once per configuration.
        managed = self._managed_configs.get(id(config))
        if managed is None:
            managed = self._managed_configs[id(config)] = dataclasses.replace(config, max_retries=0)
        return managed

    def before_send(self, target: ModelTarget, request: Mapping[str, Any]) -> None:
        """The last checks before a request goes out: spend caps, and an account out of credits."""
        check_budgets(target.model, request, self.plan.budget)
        accounts.check(target.config or self.plan.config, target.model)

    # -- the rate limiter: one request and its token estimate per attempt, settled on usage ------
    def _admissions(self, attempt: _Attempt) -> list[tuple[RateLimiter, float, float]]:
        """What each limiter takes for this attempt: the plan's (whose first request the framework
        already took) and the member's own; (limiter, requests, tokens)."""
        if attempt.request is None:
            return []
        limiters: list[tuple[RateLimiter, float]] = []
        if self.plan.rate_limiter is not None:
            limiters.append((self.plan.rate_limiter, 0.0 if attempt.first and self.plan.first_request_paid else 1.0))
        own = getattr(attempt.target, "rate_limiter", None)
        if own is not None and own is not self.plan.rate_limiter:
            limiters.append((own, 1.0))
        if not limiters:
            return []
        request = attempt.request
        output = request.get("max_completion_tokens") or request.get("max_tokens") or 0
        estimate = float(estimate_tokens(request.get("messages") or ()) + int(output) * int(request.get("n") or 1))
        attempt.charged_tokens = estimate
        return [(limiter, requests, estimate if limiter.tokens_per_minute else 0.0) for limiter, requests in limiters]

    def admit(self, attempt: _Attempt) -> None:
        """Wait for the rate limiters (if any) before sending ``attempt``."""
        for limiter, requests, tokens in self._admissions(attempt):
            limiter.acquire(requests, tokens)

    async def aadmit(self, attempt: _Attempt) -> None:
        for limiter, requests, tokens in self._admissions(attempt):
            await limiter.aacquire(requests, tokens)

    def _limiters(self, attempt: _Attempt) -> list[RateLimiter]:
        own = getattr(attempt.target, "rate_limiter", None)
        return [lim for lim in (self.plan.rate_limiter, own if own is not self.plan.rate_limiter else None) if lim]

    def settler(self, attempt: _Attempt) -> Callable[[Usage], None] | None:
        """What a stream meter calls when the usage chunk arrives (None without a limiter)."""
        if not self._limiters(attempt):
            return None
        return lambda usage: self.settle(attempt, usage)

    def settle(self, attempt: _Attempt, usage: Usage | None) -> None:
        """The answer's real token count replaces the estimate the limiters were charged."""
        if usage is None or usage.total_tokens is None:
            return
        for limiter in self._limiters(attempt):
            limiter.settle(usage.total_tokens - attempt.charged_tokens)

    def _timeouts(self) -> StreamTimeouts | None:
        policy = self.plan.policy
        if policy is None:
            return None
        timeouts = StreamTimeouts(policy.first_token_timeout, policy.stall_timeout)
        return timeouts if timeouts.active else None

    # -- the wire: the target's format picks the transport's path, body and decoder ----------------
    @staticmethod
    def _post(target: ModelTarget, config: ClientConfig, request: Mapping[str, Any]) -> dict[str, Any]:
        from . import transport

        return transport.post(config, request, api=target.api)

    @staticmethod
    async def _apost(target: ModelTarget, config: ClientConfig, request: Mapping[str, Any]) -> dict[str, Any]:
        from . import transport

        return await transport.apost(config, request, api=target.api)

    @staticmethod
    def _open_wire(
        target: ModelTarget,
        config: ClientConfig,
        request: Mapping[str, Any],
        timeouts: StreamTimeouts | None,
        clock: Callable[[], float],
    ) -> Any:
        from . import transport

        # Usage is always asked for: an answer that cannot be counted cannot be tracked or budgeted.
        return transport.open_stream(
            config, request, api=target.api, include_usage=True, timeouts=timeouts, clock=clock
        )

    @staticmethod
    async def _aopen_wire(
        target: ModelTarget, config: ClientConfig, request: Mapping[str, Any], timeouts: StreamTimeouts | None
    ) -> Any:
        from . import transport

        return await transport.aopen_stream(config, request, api=target.api, include_usage=True, timeouts=timeouts)

    # -- non-streamed calls -----------------------------------------------------------------
    def _complete_once(self, attempt: _Attempt, call: Call) -> tuple[dict[str, Any] | None, Any]:
        target = attempt.target
        if isinstance(target, ForeignTarget):
            return None, target.call(call.foreign_input, None)
        config = self._config(target)
        timeouts = self._timeouts()
        assert attempt.request is not None
        self.admit(attempt)
        if timeouts is None:
            completion = self._post(target, config, attempt.request)
        else:
            # Streamed under the hood: that is how a silent model is caught at first_token_timeout.
            accumulator = ChunkAccumulator()
            stream = self._open_wire(target, config, attempt.request, timeouts, self.clock)
            try:
                for chunk in stream:
                    accumulator.add(chunk)
            finally:
                stream.close()
            completion = accumulator.completion()
            completion["_request_id"] = stream.request_id
        self.settle(attempt, _record(completion, target.model, config, self.plan.budget))
        return completion, None

    def _waiting(self, attempt: _Attempt, exc: BaseException, seconds: float) -> None:
        if self.on_retry is not None:
            self.on_retry(attempt.target.name, exc, seconds)

    def _plain_target(self, call: Call) -> ModelTarget | None:
        """The model of a plain call (one model, no policy): sent directly, errors raised as they are."""
        if self.plan.managed or len(call.candidates) != 1:
            return None
        target = call.candidates[0]
        return target if isinstance(target, ModelTarget) else None

    def complete(self, call: Call) -> Outcome:
        """Send a prepared call; the first answer that arrives whole (retrying and failing over)."""
        plain = self._plain_target(call)
        if plain is not None:
            request = self.attempt_request(call, plain, None)
            self.before_send(plain, request)  # type: ignore[arg-type]
            attempt = _Attempt(plain, 0, None, 0.0, 0, 0.0, request)
            self.admit(attempt)
            with _credits_watch(plain, self.plan.config):
                completion = self._post(plain, self._config(plain), request)  # type: ignore[arg-type]
            self.settle(attempt, _record(completion, plain.model, self._config(plain), self.plan.budget))
            return Outcome(completion, None, plain, None, call.route)
        loop = _Loop(self, call)
        while True:
            attempt = loop.next()
            if attempt is None:
                raise loop.exhausted()
            try:
                completion, foreign = self._complete_once(attempt, call)
            except Exception as exc:
                wait = loop.attempt_failed(attempt, exc)
                if wait:
                    self._waiting(attempt, exc, wait)
                    self.sleep(wait)
                continue
            except BaseException:
                if attempt.permit is not None:
                    attempt.permit.release()
                raise
            loop.succeeded(attempt, _completion_cost(completion))
            return Outcome(completion, foreign, attempt.target, loop.report if self.plan.managed else None, call.route)

    async def _acomplete_once(self, attempt: _Attempt, call: Call) -> tuple[dict[str, Any] | None, Any]:
        target = attempt.target
        if isinstance(target, ForeignTarget):
            return None, await target.acall(call.foreign_input, None)
        config = self._config(target)
        timeouts = self._timeouts()
        assert attempt.request is not None
        await self.aadmit(attempt)
        if timeouts is None:
            completion = await self._apost(target, config, attempt.request)
        else:
            accumulator = ChunkAccumulator()
            stream = await self._aopen_wire(target, config, attempt.request, timeouts)
            try:
                async for chunk in stream:
                    accumulator.add(chunk)
            finally:
                await stream.aclose()
            completion = accumulator.completion()
            completion["_request_id"] = stream.request_id
        self.settle(attempt, _record(completion, target.model, config, self.plan.budget))
        return completion, None

    async def acomplete(self, call: Call) -> Outcome:
        """Async :meth:`complete`."""
        plain = self._plain_target(call)
        if plain is not None:
            request = self.attempt_request(call, plain, None)
            self.before_send(plain, request)  # type: ignore[arg-type]
            attempt = _Attempt(plain, 0, None, 0.0, 0, 0.0, request)
            await self.aadmit(attempt)
            with _credits_watch(plain, self.plan.config):
                completion = await self._apost(plain, self._config(plain), request)  # type: ignore[arg-type]
            self.settle(attempt, _record(completion, plain.model, self._config(plain), self.plan.budget))
            return Outcome(completion, None, plain, None, call.route)
        loop = _Loop(self, call)
        while True:
            attempt = loop.next()
            if attempt is None:
                raise loop.exhausted()
            try:
                completion, foreign = await self._acomplete_once(attempt, call)
            except Exception as exc:
                wait = loop.attempt_failed(attempt, exc)
                if wait:
                    self._waiting(attempt, exc, wait)
                    await self.asleep(wait)
                continue
            except BaseException:
                if attempt.permit is not None:
                    attempt.permit.release()
                raise
            loop.succeeded(attempt, _completion_cost(completion))
            return Outcome(completion, foreign, attempt.target, loop.report if self.plan.managed else None, call.route)

    # -- streams --------------------------------------------------------------------------
    def stream(self, call: Call) -> EngineStream:
        """Stream a prepared call: chunk dicts (or :class:`ForeignItem`). Fails over invisibly until the
        first content; after it, a failure raises a stream error with ``partial_text`` (or, with
        ``mid_stream="continue"``, resumes on a model that accepts the partial answer as a prefill)."""
        return EngineStream(self, call)

    def astream(self, call: Call) -> AsyncEngineStream:
        """Async :meth:`stream`."""
        return AsyncEngineStream(self, call)

    def _open(self, attempt: _Attempt, call: Call, prefill: str | None) -> Iterator[Any]:
        target = attempt.target
        if isinstance(target, ForeignTarget):
            return iter(target.stream(call.foreign_input, prefill))
        assert attempt.request is not None
        self.admit(attempt)
        return self._open_wire(target, self._config(target), attempt.request, self._timeouts(), self.clock)

    async def _aopen(self, attempt: _Attempt, call: Call, prefill: str | None) -> AsyncIterator[Any]:
        target = attempt.target
        if isinstance(target, ForeignTarget):
            return _aforeign(target.astream(call.foreign_input, prefill), self._timeouts(), target)
        assert attempt.request is not None
        await self.aadmit(attempt)
        return await self._aopen_wire(target, self._config(target), attempt.request, self._timeouts())


async def _aforeign(
    items: AsyncIterator[Any], timeouts: StreamTimeouts | None, target: ForeignTarget
) -> AsyncIterator[Any]:
    """A foreign member's async stream, under the same first-token and stall deadlines."""
    iterator = items.__aiter__()
    started = time.monotonic()
    content = False
    try:
        while True:
            limit = None
            if timeouts is not None:
                if not content and timeouts.first_token is not None:
                    limit = max(0.0, started + timeouts.first_token - time.monotonic())
                elif timeouts.stall is not None:
                    limit = timeouts.stall
            try:
                item = await (
                    asyncio.wait_for(iterator.__anext__(), limit) if limit is not None else iterator.__anext__()
                )
            except StopAsyncIteration:
                return
            except (TimeoutError, asyncio.TimeoutError):
                if content:
                    raise E.StreamStalledError(f"{target.name} went silent for {limit:g} s (stall_timeout).") from None
                raise E.FirstTokenTimeoutError(
                    f"No content from {target.name} within {timeouts.first_token:g} s (first_token_timeout)."  # type: ignore[union-attr]
                ) from None
            if not content and target.is_content(item):
                content = True
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class EngineStream:
    """One streamed call: iterate for chunk dicts (or :class:`ForeignItem`); ``report`` and ``route``
    describe it (``report`` is complete once iteration ends). Closing it (or leaving the loop) ends
    the attempt at once and frees its breaker probe."""

    def __init__(self, engine: Engine, call: Call) -> None:
        self.engine = engine
        self.call = call
        self.route = call.route
        self._loop = _Loop(engine, call)
        self.report: FallbackReport | None = self._loop.report if engine.plan.managed else None
        self.served: Target | None = None
        self.request_id: str | None = None
        self._iterator = self._run()

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()

    def _plain(self, target: ModelTarget) -> Iterator[Any]:
        request = self.engine.attempt_request(self.call, target, None)
        self.engine.before_send(target, request)  # type: ignore[arg-type]
        attempt = _Attempt(target, 0, None, 0.0, 0, 0.0, request)
        with _credits_watch(target, self.engine.plan.config):
            source = self.engine._open(attempt, self.call, None)
        self.request_id = getattr(source, "request_id", None)
        self.served = target
        meter = StreamMeter(target.model, request, self.engine.plan.budget, self.engine.settler(attempt))
        try:
            for chunk in source:
                meter.feed(chunk)
                yield chunk
        except GeneratorExit:
            _salvage(source, meter)
            raise
        except Exception:
            meter.recorded = True  # a failed answer: the gateway's billing of it is unknown, so no guess
            raise
        finally:
            _close(source)
            meter.finish()

    def _run(self) -> Iterator[Any]:
        plain = self.engine._plain_target(self.call)
        if plain is not None:
            yield from self._plain(plain)
            return
        loop, engine, call = self._loop, self.engine, self.call
        while True:
            attempt = loop.next()
            if attempt is None:
                raise loop.exhausted()
            self.served = attempt.target
            gate = _Gate(attempt.target, loop.emitted, attempt.request, engine.plan.budget, engine.settler(attempt))
            source: Any = None
            try:
                source = engine._open(attempt, call, loop.prefill)
                self.request_id = getattr(source, "request_id", None)
                for item in source:
                    for ready in gate.feed(item):
                        yield _wrap(ready, attempt.target)
                for ready in gate.flush():
                    yield _wrap(ready, attempt.target)
            except Exception as exc:
                _close(source)
                wait = loop.attempt_failed(attempt, exc, gate)
                if wait:
                    engine._waiting(attempt, exc, wait)
                    engine.sleep(wait)
                continue
            except BaseException as exc:  # GeneratorExit (the consumer left), KeyboardInterrupt, ...
                if isinstance(exc, GeneratorExit):
                    _salvage(source, gate.meter)
                _close(source)
                if gate.meter is not None and source is not None:
                    gate.meter.finish()  # the gateway bills what it sent: counted, as an estimate
                if attempt.permit is not None:
                    attempt.permit.release()
                raise
            if gate.meter is not None:
                gate.meter.finish()
            loop.succeeded(attempt, gate.cost)
            return


def _wrap(item: Any, target: Target) -> Any:
    return ForeignItem(item) if isinstance(target, ForeignTarget) else item


#: A stream the consumer left is read on while its data keeps coming (a gap of 10 ms ends it), for at
#: most this long: an answer the gateway already sent is read to its usage chunk (an exact cost); one
#: still being written is cut at once, so the gateway stops generating. Short: the consumer is gone.
SALVAGE_SECONDS = 0.25


def _salvage(source: Any, meter: StreamMeter | None) -> None:
    """The consumer left before the usage chunk: count what is already on its way (``SALVAGE_SECONDS``)."""
    salvage = getattr(source, "salvage", None)
    if salvage is None or meter is None or meter.recorded:
        return
    for chunk in salvage(SALVAGE_SECONDS):
        meter.feed(chunk)


async def _asalvage(source: Any, meter: StreamMeter | None, owner: asyncio.Task[Any] | None) -> None:
    salvage = getattr(source, "salvage", None)
    if salvage is None or meter is None or meter.recorded:
        return
    if asyncio.current_task() is not owner:
        # Closed by the event loop's finaliser, not by the code that read it (langchain-core does not
        # close the model's stream): that task may be cancelled at any await, and asyncio.run then
        # closes every async generator at once, ours among them. Reading on would race it: the
        # estimate stands.
        return
    for chunk in await salvage(SALVAGE_SECONDS):
        meter.feed(chunk)


def _close(source: Any) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


class AsyncEngineStream:
    """Async :class:`EngineStream`."""

    def __init__(self, engine: Engine, call: Call) -> None:
        self.engine = engine
        self.call = call
        self.route = call.route
        self._loop = _Loop(engine, call)
        self.report: FallbackReport | None = self._loop.report if engine.plan.managed else None
        self.served: Target | None = None
        self.request_id: str | None = None
        self._iterator = self._run()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        await self._iterator.aclose()

    async def _plain(self, target: ModelTarget) -> AsyncIterator[Any]:
        owner = asyncio.current_task()  # the task reading the stream (see _asalvage)
        attempt = _Attempt(target, 0, None, 0.0, 0, 0.0, self.engine.attempt_request(self.call, target, None))
        self.engine.before_send(target, attempt.request)  # type: ignore[arg-type]
        with _credits_watch(target, self.engine.plan.config):
            source = await self.engine._aopen(attempt, self.call, None)
        self.request_id = getattr(source, "request_id", None)
        self.served = target
        meter = StreamMeter(target.model, attempt.request, self.engine.plan.budget, self.engine.settler(attempt))
        try:
            async for chunk in source:
                meter.feed(chunk)
                yield chunk
        except GeneratorExit:
            await _asalvage(source, meter, owner)
            raise
        except Exception:
            meter.recorded = True  # a failed answer: the gateway's billing of it is unknown, so no guess
            raise
        finally:
            meter.finish()  # before any await here: a cancelled close must not lose the count
            await _aclose(source)

    async def _run(self) -> AsyncIterator[Any]:
        plain = self.engine._plain_target(self.call)
        if plain is not None:
            async for chunk in self._plain(plain):
                yield chunk
            return
        owner = asyncio.current_task()  # the task reading the stream (see _asalvage)
        loop, engine, call = self._loop, self.engine, self.call
        while True:
            attempt = loop.next()
            if attempt is None:
                raise loop.exhausted()
            self.served = attempt.target
            gate = _Gate(attempt.target, loop.emitted, attempt.request, engine.plan.budget, engine.settler(attempt))
            source: Any = None
            try:
                source = await engine._aopen(attempt, call, loop.prefill)
                self.request_id = getattr(source, "request_id", None)
                async for item in source:
                    for ready in gate.feed(item):
                        yield _wrap(ready, attempt.target)
                for ready in gate.flush():
                    yield _wrap(ready, attempt.target)
            except Exception as exc:
                await _aclose(source)
                wait = loop.attempt_failed(attempt, exc, gate)
                if wait:
                    engine._waiting(attempt, exc, wait)
                    await engine.asleep(wait)
                continue
            except BaseException as exc:  # cancellation, GeneratorExit
                try:
                    if isinstance(exc, GeneratorExit):
                        await _asalvage(source, gate.meter, owner)
                finally:  # counted and released before any other await: a cancel must not lose either
                    if gate.meter is not None and source is not None:
                        gate.meter.finish()  # the gateway bills what it sent: counted, as an estimate
                    if attempt.permit is not None:
                        attempt.permit.release()
                    await _aclose(source)
                raise
            if gate.meter is not None:
                gate.meter.finish()
            loop.succeeded(attempt, gate.cost)
            return


async def _aclose(source: Any) -> None:
    for name in ("aclose", "close"):
        close = getattr(source, name, None)
        if close is not None:
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                pass
            return
