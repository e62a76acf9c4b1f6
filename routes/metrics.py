"""GET /metrics (JSON, the seed's shape) and GET /metrics/prometheus (text exposition)."""
from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from utils import prometheus

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """The seed's figures, each provider's with its state and last reported quota (as /health shows)."""
    ext = current_app.extensions
    snapshot, states = ext["metrics"].snapshot(), ext["router"].status()
    for provider in ext["router"].configured:
        snapshot["services"][provider.name]["health"] = states[provider.id]
    return jsonify(snapshot)


@bp.get("/metrics/prometheus")
def metrics_prometheus():
    return Response(prometheus.render(current_app.extensions["metrics"]), content_type=CONTENT_TYPE_LATEST)
