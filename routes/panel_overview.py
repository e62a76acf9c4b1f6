"""The admin panel's overview, from what /health and /metrics read (the router's state, the metrics'
figures), worded for a person: each provider's state, quota, figures and its last hour a minute at a time.
The page renders it and its script refreshes it from GET /admin/panel/live."""
from __future__ import annotations

import time

from flask import current_app

from providers.base import Provider
from routes.health import overall
from utils.clock import iso


def overview() -> dict:
    ext = current_app.extensions
    router, metrics = ext["router"], ext["metrics"]
    states, snapshot = router.status(), metrics.snapshot()
    start, series = metrics.series()
    now = time.time()
    return {
        "status": overall(states, [p.id for p in router.configured]),
        "totalRequests": snapshot["totalRequests"],
        "uptime": duration(snapshot["uptime"]),
        "updated": f"{iso(now)[11:19]} UTC",
        "seriesStart": start * 1000,
        "providers": [card(p, states[p.id], snapshot["services"][p.name], series[p.name], now)
                      for p in router.configured],
        "unconfigured": [f"{p.name} ({p.key_setting})" for p in router.providers if not p.configured],
    }


def card(provider: Provider, state: dict, figures: dict, series: dict, now: float) -> dict:
    return {
        "id": provider.id, "name": provider.name, "model": provider.model, "state": state["state"],
        "series": series,
        "show": {
            "stateText": describe(provider, state, now),
            "quota": quota_left(state.get("quota") or {}),
            "pool": pool(state.get("keys") or []),
            "requests": f"{figures['requests']:,}",
            "errors": f"{figures['errors']:,}",
            "successRate": figures["successRate"],
            "avgDuration": f"{figures['avgDuration']:,.0f} ms",
            "avgTtft": f"{figures['avgTtft']:,.0f} ms" if figures["avgTtft"] else "none yet",
        },
    }


def describe(provider: Provider, state: dict, now: float) -> str:
    """The provider's state as /health gives it, in words, with what an operator can do about it."""
    kind, reason = state["state"], state.get("reason") or ""
    if kind == "failing":
        return f"failing: {state['failures']} failure(s) in a row ({reason}), still in the rotation"
    if kind != "cooling_down":
        return kind
    if reason == "model_not_found":
        return f"model retired: set {provider.env_prefix}_MODEL (now '{provider.model}')"
    if state.get("until") is None:
        return f"out until reset or restart: {state.get('detail') or reason}"
    return f"cooling down until {when(state['until'], now)} ({reason})"


def when(stamp: str, now: float) -> str:
    """An ISO 8601 time from the state, as a clock time (with its day when that is not today), UTC."""
    day, clock = stamp[:10], stamp[11:19]
    return f"{clock} UTC" if day == iso(now)[:10] else f"{day} {clock} UTC"


def quota_left(quota: dict) -> str:
    parts = [f"{quota[field]:,} {unit}" for field, unit in (("remainingRequests", "requests"),
                                                             ("remainingTokens", "tokens"))
             if quota.get(field) is not None]
    return ", ".join(parts) + " left" if parts else "not reported"


def pool(keys: list[dict]) -> str:
    """A key pool's standing (nothing for a single key)."""
    if len(keys) < 2:
        return ""
    serving = sum(k["state"] in ("ok", "failing") for k in keys)
    return f"{serving} of {len(keys)} keys serving"


def duration(seconds: float) -> str:
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    if hours:
        return f"{hours} h {minutes % 60} min"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"
