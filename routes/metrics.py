"""GET /metrics (JSON, the seed's shape) and GET /metrics/prometheus (text exposition)."""
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from utils import prometheus, response_cache
from utils.auth import require_master

bp = Blueprint("metrics", __name__)


@bp.before_request
def master_only_if_asked():
    """Public by default (they hold no secrets); METRICS_REQUIRE_KEY=true closes them to all but the master key."""
    settings = current_app.extensions["settings"]
    if settings.metrics_require_key and request.method != "OPTIONS":
        require_master(request, settings)


@bp.get("/metrics")
def metrics():
    """The seed's figures, each provider's with its state and last reported quota (as /health shows)."""
    ext = current_app.extensions
    snapshot, states = ext["metrics"].snapshot(), ext["router"].status()
    for provider in ext["router"].configured:
        snapshot["services"][provider.name]["health"] = states[provider.id]
    snapshot["cache"] = response_cache.figures()
    return jsonify(snapshot)


@bp.get("/metrics/prometheus")
def metrics_prometheus():
    ext = current_app.extensions
    return Response(prometheus.render(ext["metrics"], ext["router"].configured, response_cache.figures()),
                    content_type=CONTENT_TYPE_LATEST)
