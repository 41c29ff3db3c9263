"""The reference client's model listing and A/B comparison, on the shared client."""

from __future__ import annotations

import contextvars
import html
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from .catalog import ModelCatalog, ModelInfo, default_catalog
from .chat import stream_chat
from .client import get_client
from .config import ClientConfig
from .errors import AIsaError, map_openai_error
from .usage import Usage, parse_usage

__all__ = ["Comparison", "ComparisonResult", "compare_models", "compare_streams", "list_models"]


def list_models(
    config: ClientConfig | None = None, *, family: str | None = None, catalog: ModelCatalog | None = None
) -> list[ModelInfo]:
    """``GET /models`` merged with the catalog: what the gateway serves, with what we know of each.

    Ids the catalog lacks come back with ``known=False`` and unknown capabilities.
    """
    config = config or ClientConfig.resolve()
    catalog = catalog or default_catalog()
    try:
        server_ids = [m.id for m in get_client(config).models.list()]
    except Exception as exc:
        raise map_openai_error(exc, secrets=(config.api_key.get_secret_value(),)) from exc
    infos = [catalog.info(model_id) for model_id in dict.fromkeys(server_ids)]
    if family:
        infos = [i for i in infos if i.family == family]
    return sorted(infos, key=lambda i: (i.family, i.id))


@dataclass
class ComparisonResult:
    """One model's answer to the shared prompt, or its error."""

    model: str
    response: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Comparison(dict[str, ComparisonResult]):
    """``compare_models`` results: a dict of model -> :class:`ComparisonResult`, in the given order.

    A plain dict in every way (indexing, iteration, ``len``, ``items()``, ``repr``, equality); in
    Jupyter it also renders as a table (model, latency, first token, tokens, cost, error).
    """

    def _repr_html_(self) -> str:
        def seconds(value: float | None) -> str:
            return f"{value:.2f} s" if value is not None else "—"

        rows = []
        for name, r in self.items():
            error = f"{r.error_type}: {r.error}" if r.error_type else (r.error or "")
            cells = [
                name,
                seconds(r.latency_s),
                seconds(r.ttft_s),
                str(r.total_tokens) if r.total_tokens is not None else "—",
                f"${r.cost:.6f}" if r.cost is not None else ("not reported" if r.ok else "—"),
                error,
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("model", "latency", "first token", "tokens", "cost", "error"))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


#: A stream of (text delta, usage or None) for one model; what compare_streams measures.
DeltaStream = Callable[[], Iterator[tuple[str, Usage | None]]]


def _measure(model: str, open_stream: DeltaStream) -> ComparisonResult:
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    usage: Usage | None = None
    try:
        for text, chunk_usage in open_stream():
            if text:
                if first is None:
                    first = time.perf_counter()
                parts.append(text)
            if chunk_usage is not None:
                usage = chunk_usage
    except AIsaError as exc:
        return ComparisonResult(
            model=model, latency_s=time.perf_counter() - started, error=str(exc), error_type=type(exc).__name__
        )
    done = time.perf_counter()
    return ComparisonResult(
        model=model,
        response="".join(parts),
        latency_s=done - started,
        ttft_s=(first - started) if first is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        cost=usage.cost if usage else None,
    )


def compare_streams(
    streams: Sequence[tuple[str, DeltaStream]],
    *,
    on_done: Callable[[ComparisonResult], None] | None = None,
) -> Comparison:
    """Run every stream concurrently and measure each; results keep the given order."""
    results = Comparison()
    with ThreadPoolExecutor(max_workers=max(1, len(streams)), thread_name_prefix="aisa-compare") as pool:
        # Each thread runs in a copy of the caller's context, so cost tracking blocks count these calls.
        futures = {
            name: pool.submit(contextvars.copy_context().run, _measure, name, opener) for name, opener in streams
        }
        for name, future in futures.items():
            result = future.result()
            results[name] = result
            if on_done is not None:
                on_done(result)
    return results


def compare_models(
    models: Iterable[str],
    message: str,
    *,
    system: str | None = None,
    config: ClientConfig | None = None,
    on_done: Callable[[ComparisonResult], None] | None = None,
    **params: Any,
) -> Comparison:
    """The same prompt on several models at once; per model the reply, latency, time to first token,
    tokens and cost, or the error. Runs concurrently, so the wall time is about the slowest model's.

    >>> from aisa_integrations.testing import AIsaSimulator
    >>> with AIsaSimulator() as sim:
    ...     config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url)
    ...     results = compare_models(["gpt-4.1", "nope"], "What is 2+2?", config=config)
    ...     (results["gpt-4.1"].ok, results["nope"].error_type)
    (True, 'ModelNotFoundError')
    """
    config = config or ClientConfig.resolve()
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]

    def opener(model: str) -> DeltaStream:
        def deltas() -> Iterator[tuple[str, Usage | None]]:
            request = {"model": model, "messages": messages, **params}
            for chunk in stream_chat(config, request):
                text = "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or ())
                yield text, parse_usage(chunk["usage"]) if chunk.get("usage") is not None else None

        return deltas

    return compare_streams([(m, opener(m)) for m in dict.fromkeys(models)], on_done=on_done)
