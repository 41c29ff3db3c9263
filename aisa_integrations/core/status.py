"""What the shared state holds now: breakers, budgets and rate limits (``aisa status``).

>>> from aisa_integrations.core.state import MemoryStore
>>> status(MemoryStore())["breakers"]
{}
"""

from __future__ import annotations

from typing import Any

from .breakers import BreakerRegistry
from .ratelimit import bucket_levels
from .state import StateStore, current_store

__all__ = ["format_status", "status"]


def status(store: StateStore | None = None) -> dict[str, Any]:
    """Breakers, budgets (spent against their cap) and limiter levels in ``store`` (the configured one)."""
    store = store if store is not None else current_store()
    budgets = {}
    for key in store.keys("budget"):
        totals = store.counters(key)
        spent = totals.get("cost", 0.0) + totals.get("estimated_cost", 0.0)
        cap = totals.get("max_cost")
        budgets[key.removeprefix("budget:")] = {
            "spent": spent,
            "max_cost": cap,
            "remaining": None if cap is None else max(0.0, cap - spent),
            "estimated_part": totals.get("estimated_cost", 0.0),
            "requests": int(totals.get("requests", 0)),
            "total_tokens": int(totals.get("total_tokens", 0)),
        }
    return {
        "store": store.description,
        "reachable": getattr(store, "available", True),
        "breakers": BreakerRegistry(store=store).state(),
        "budgets": budgets,
        "rate_limits": {key.removeprefix("limit:"): bucket_levels(store, key) for key in store.keys("limit")},
    }


def format_status(report: dict[str, Any]) -> str:
    """``status()`` as the lines ``aisa status`` prints."""
    lines = [f"State store: {report['store']}" + ("" if report["reachable"] else " — UNREACHABLE, showing local state")]
    lines.append("Circuit breakers:" if report["breakers"] else "Circuit breakers: none has seen a failure")
    for key, breaker in sorted(report["breakers"].items()):
        detail = f"{breaker['consecutive_failures']} consecutive failures"
        if breaker["state"] != "closed":
            detail = f"reopens in {breaker['reopens_in']:.1f} s, cooldown {breaker['cooldown']:g} s"
        lines.append(f"  {key}: {breaker['state']} ({detail}; opened {breaker['times_opened']}x)")
    lines.append("Budgets:" if report["budgets"] else "Budgets: none")
    for name, budget in sorted(report["budgets"].items()):
        cap = (
            "no cap" if budget["max_cost"] is None else f"of ${budget['max_cost']:.6f}, ${budget['remaining']:.6f} left"
        )
        estimated = f" (${budget['estimated_part']:.6f} estimated)" if budget["estimated_part"] else ""
        lines.append(
            f"  {name}: ${budget['spent']:.6f} spent{estimated} {cap}; "
            f"{budget['requests']} requests, {budget['total_tokens']} tokens"
        )
    lines.append("Rate limits:" if report["rate_limits"] else "Rate limits: none")
    for name, buckets in sorted(report["rate_limits"].items()):
        parts = [
            f"{label} {bucket['available']:.1f} of {bucket['capacity']:.1f} available ({bucket['per_minute']:g}/min)"
            for label, bucket in buckets.items()
        ]
        lines.append(f"  {name}: " + "; ".join(parts))
    if report["store"].startswith("memory"):
        lines.append("(This is this process's own memory store: set AISA_STATE_URL=redis://... or pass --store to see")
        lines.append(" the state every worker shares.)")
    return "\n".join(lines)
