"""/admin/keys: create, list and revoke API keys. Master key only."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from utils.auth import require_master
from utils.errors import NotFound, ValidationError
from utils.keys import hash_key
from utils.validation import read_json_object

bp = Blueprint("admin", __name__, url_prefix="/admin")

MAX_NAME = 200


@bp.before_request
def master_only():
    if request.method == "OPTIONS":  # a browser's CORS preflight carries no key and must get a 2xx
        return
    require_master(request, current_app.extensions["settings"])


@bp.post("/keys")
def create_key():
    name = read_json_object(request).get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name must be a non-empty string", param="name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"name must be at most {MAX_NAME} characters", param="name")
    if not name.isprintable():  # a NUL byte is refused by PostgreSQL; control characters garble logs and pages
        raise ValidationError("name must not contain control characters", param="name")
    key = current_app.extensions["keys"].create(name.strip())
    # The key is shown this once: no cache along the way may keep a copy.
    return jsonify({"success": True, "apiKey": key}), {"Cache-Control": "no-store"}


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
        key_hash = hash_key(key)
    elif isinstance(key_id, str) and key_id:
        key_hash = store.find(key_id)
    else:
        raise ValidationError("key (or id) must be a non-empty string")
    if not key_hash or not store.revoke(key_hash):
        raise NotFound("API key not found")
    return jsonify({"success": True})
