"""/admin/webhooks: register, list and remove webhook receivers, send one a test event, see its deliveries.
Master key only. utils/webhooks.py keeps them; utils/webhook_delivery.py sends."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from routes.admin import master_only
from utils.errors import NotFound, ValidationError
from utils.events import TEST
from utils.validation import read_json_object
from utils.webhooks import check_events, check_url

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")
bp.before_request(master_only)  # as the rest of /admin
FIELDS = ("url", "events")


@bp.post("")
def create_webhook():
    body = read_json_object(request)
    unknown = [name for name in body if name not in FIELDS]
    if unknown:
        raise ValidationError(f"Unknown field '{unknown[0][:100]}'; a webhook has only: {', '.join(FIELDS)}",
                              param=unknown[0][:100])
    url, events = check_url(body.get("url")), check_events(body.get("events"))
    ext = current_app.extensions
    webhook, secret = ext["webhooks"].create(url, events, ext["events"].clock())
    ext["deliverer"].start()
    # The secret is shown this once: no cache along the way may keep a copy.
    return jsonify({"success": True, "webhook": webhook, "secret": secret}), {"Cache-Control": "no-store"}


@bp.get("")
def list_webhooks():
    return jsonify({"success": True, "webhooks": current_app.extensions["webhooks"].list()})


@bp.delete("/<webhook_id>")
def delete_webhook(webhook_id: str):
    if not current_app.extensions["webhooks"].delete(webhook_id):
        raise NotFound("Webhook not found")
    return jsonify({"success": True})


@bp.post("/<webhook_id>/test")
def test_webhook(webhook_id: str):
    """Queue a `webhook.test` event for this webhook alone; GET .../deliveries shows how it went."""
    ext = current_app.extensions
    queued = ext["webhooks"].enqueue(TEST, {"webhookId": webhook_id}, ext["events"].clock(), webhook_id=webhook_id)
    if not queued:
        raise NotFound("Webhook not found")
    ext["deliverer"].wake()
    return jsonify({"success": True, "deliveryId": queued[0]})


@bp.get("/<webhook_id>/deliveries")
def list_deliveries(webhook_id: str):
    deliveries = current_app.extensions["webhooks"].deliveries(webhook_id)
    if deliveries is None:
        raise NotFound("Webhook not found")
    return jsonify({"success": True, "deliveries": deliveries})
