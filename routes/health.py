"""GET /health: what is configured and how each provider is doing. Never calls a provider."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from utils.clock import iso

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    ext = current_app.extensions
    settings, router = ext["settings"], ext["router"]
    states = router.status()
    return jsonify({
        "status": "ok",
        "services": [p.name for p in router.configured],
        "authEnabled": settings.require_auth,
        "rateLimitEnabled": settings.rate_limit_enabled,
        "timestamp": iso(time.time()),
        "providers": [
            {"id": p.id, "name": p.name, "model": p.model, "configured": p.configured,
             **(states[p.id] if p.configured else {"state": "not_configured"})}
            for p in router.providers
        ],
    })


@bp.get("/health/live")
def live():
    """The process is up and serving."""
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
def ready():
    """Ready for traffic: the key store answers and, when set, Redis does."""
    ext = current_app.extensions
    checks = {"keyStore": ext["keys"].ping()}
    if ext["settings"].redis_url:
        checks["redis"] = ext["store"].ping()
    ok = all(checks.values())
    return jsonify({"status": "ok" if ok else "unavailable", "checks": checks}), 200 if ok else 503
