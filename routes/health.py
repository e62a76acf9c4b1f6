"""GET /health: what is configured and how each provider is doing, and whether the gateway can answer at all.
Never calls a provider.

The top-level status is the one word a monitor reads: `ok` when every configured provider can serve, `degraded`
(still 200: requests are served) when some cannot, `down` (503) when none can or none is configured."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from utils.clock import iso

bp = Blueprint("health", __name__)

# States in which a provider takes requests: `failing` has had recent failures but is still in the rotation.
SERVING = ("ok", "failing")
# What /health/ready says when a check fails.
WHY = {
    "keyStore": "the key database does not answer",
    "redis": "Redis does not answer",
    "providers": "no provider can serve: every one is cooling down, out of quota or lacks its model (see /health)",
    "unconfigured": "no provider is configured: set a provider key",
}


def overall(states: dict[str, dict], configured: list[str]) -> str:
    serving = sum(states[pid]["state"] in SERVING for pid in configured)
    if not serving:
        return "down"
    return "ok" if serving == len(configured) else "degraded"


@bp.get("/health")
def health():
    ext = current_app.extensions
    settings, router = ext["settings"], ext["router"]
    states = router.status()
    status = overall(states, [p.id for p in router.configured])
    return jsonify({
        "status": status,
        "services": [p.name for p in router.configured],
        "authEnabled": settings.require_auth,
        "rateLimitEnabled": settings.rate_limit_enabled,
        "timestamp": iso(time.time()),
        "providers": [
            {"id": p.id, "name": p.name, "model": p.model, "configured": p.configured,
             **(states[p.id] if p.configured else {"state": "not_configured"})}
            for p in router.providers
        ],
    }), 503 if status == "down" else 200


@bp.get("/health/live")
def live():
    """The process is up and serving."""
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
def ready():
    """Ready for traffic: some provider can serve, the key store answers and, when set, Redis does. A 503 says
    which check failed and why, so whoever reads the load balancer's log knows what to fix."""
    ext = current_app.extensions
    router = ext["router"]
    checks = {"keyStore": ext["keys"].ping()}
    if ext["settings"].redis_url:
        checks["redis"] = ext["store"].ping()
    why = [WHY[name] for name, ok in checks.items() if not ok]
    # Provider state lives in Redis when it is set: with Redis away there is nothing to read it from.
    if checks.get("redis", True):
        checks["providers"] = overall(router.status(), [p.id for p in router.configured]) != "down"
        if not checks["providers"]:
            why.append(WHY["providers" if router.configured else "unconfigured"])
    body = {"status": "unavailable" if why else "ok", "checks": checks}
    if why:
        body["reason"] = "; ".join(why)
    return jsonify(body), 503 if why else 200

