"""GET /metrics: request figures per provider."""
from flask import Blueprint, current_app, jsonify

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    return jsonify(current_app.extensions["metrics"].snapshot())
