"""/admin: create, list and revoke API keys; bring a provider back. Master key only. The operator commands
(routes/commands.py) call the same functions."""
from __future__ import annotations

import csv
import io
import time

from flask import Blueprint, Response, current_app, jsonify, request

from providers.base import Provider
from utils import keyfields, usage
from utils.auth import require_master
from utils.errors import NotFound, ValidationError
from utils.keys import ID_CHARS, check_name, hash_key
from utils.router import Router
from utils.validation import read_json_object

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def master_only():
    if request.method == "OPTIONS":  # a browser's CORS preflight carries no key and must get a 2xx
        return
    require_master(request, current_app.extensions["settings"])


USAGE_COLUMNS = ("date", "keyId", "keyName", "provider", "requests", "promptTokens", "completionTokens", "errors")


@bp.post("/keys")
def create_key():
    body = read_json_object(request)
    name = check_name(body.get("name"))
    key = current_app.extensions["keys"].create(name, keyfields.parse(body, provider_ids()))
    # The key is shown this once: no cache along the way may keep a copy.
    return (jsonify({"success": True, "apiKey": key, "id": hash_key(key)[:ID_CHARS]}),
            {"Cache-Control": "no-store"})


@bp.patch("/keys/<key_id>")
def update_key(key_id: str):
    """Change a key's name or policy; a field set to null clears it, a field left out stays."""
    body = read_json_object(request)
    store = current_app.extensions["keys"]
    values = keyfields.parse(body, provider_ids())
    if "name" in body:
        values["name"] = check_name(body["name"])
    key_hash = store.find(key_id)
    if key_hash is None or not store.update(key_hash, values):
        raise NotFound("API key not found")
    shown = next(k for k in store.list() if k["id"] == key_id)
    return jsonify({"success": True, "key": shown})


@bp.get("/usage")
def usage_report():
    """Daily usage per key and provider, from `from` to `to` (inclusive, UTC days; the last 30 by default)."""
    first, last = usage.default_range(time.time())
    start = usage.parse_day(request.args.get("from"), "from", first)
    end = usage.parse_day(request.args.get("to"), "to", last)
    if start > end:
        raise ValidationError("from must not be after to", param="from")
    store = current_app.extensions["keys"]
    key_hash = None
    if request.args.get("key"):
        key_hash = store.find(request.args["key"])
        if key_hash is None:
            raise NotFound("API key not found")
    rows = store.usage_report(start, end, key_hash, (request.args.get("provider") or "").strip().lower() or None)
    if "text/csv" in request.headers.get("Accept", ""):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=USAGE_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({**row, "keyName": _cell(row["keyName"])} for row in rows)
        return Response(out.getvalue(), mimetype="text/csv")
    return jsonify({"success": True, "usage": rows})


def _cell(text: str | None) -> str | None:
    """A name as a CSV cell a spreadsheet will not run as a formula."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def provider_ids() -> set[str]:
    return {p.id for p in current_app.extensions["router"].providers}


@bp.get("/keys")
def list_keys():
    return jsonify({"success": True, "keys": current_app.extensions["keys"].list()})


@bp.delete("/keys")
def revoke_key():
    """Revoke by the key itself, or by the `id` the list shows (the plaintext is not kept)."""
    body = read_json_object(request)
    store = current_app.extensions["keys"]
    key, key_id = body.get("key"), body.get("id")
    if isinstance(key, str) and key:
        found = store.revoke_key(key=key)
    elif isinstance(key_id, str) and key_id:
        found = store.revoke_key(key_id=key_id)
    else:
        raise ValidationError("key (or id) must be a non-empty string")
    if not found:
        raise NotFound("API key not found")
    return jsonify({"success": True})


@bp.post("/providers/<provider_id>/reset")
def reset_provider(provider_id: str):
    """Take a provider back into the rotation now, without a restart (see Router.reset)."""
    router = current_app.extensions["router"]
    provider = router.by_id(provider_id.strip().lower())  # as /chat matches a provider id
    if provider is None:
        raise NotFound(f"Unknown provider '{provider_id}'")
    router.reset(provider)
    return jsonify({"success": True, "provider": health_entry(router, provider)})


def health_entry(router: Router, provider: Provider) -> dict:
    """The provider as GET /health lists it."""
    state = router.status()[provider.id] if provider.configured else {"state": "not_configured"}
    return {"id": provider.id, "name": provider.name, "model": provider.model, "configured": provider.configured,
            **state}
