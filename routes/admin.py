"""/admin: create, list and revoke API keys; bring a provider back. Master key only. The operator commands
(routes/commands.py) call the same functions."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from providers.base import Provider
from utils import keyfields, response_cache, usage
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



@bp.post("/keys")
def create_key():
    key, key_id = new_key(read_json_object(request))
    # The key is shown this once: no cache along the way may keep a copy.
    return jsonify({"success": True, "apiKey": key, "id": key_id}), {"Cache-Control": "no-store"}


def new_key(body: dict) -> tuple[str, str]:
    """A key from a body of `name` and policy fields: the key and its listed id (the admin panel's too)."""
    name = check_name(body.get("name"))
    key = current_app.extensions["keys"].create(name, keyfields.parse(body, provider_ids()))
    current_app.extensions["events"].key_created(key_hash := hash_key(key), name)
    return key, key_hash[:ID_CHARS]


@bp.patch("/keys/<key_id>")
def update_key(key_id: str):
    return jsonify({"success": True, "key": change_key(key_id, read_json_object(request))})


def change_key(key_id: str, body: dict) -> dict:
    """Change a key's name or policy; a field set to null clears it, a field left out stays. The key as
    the list shows it (the admin panel's edits come here too)."""
    store = current_app.extensions["keys"]
    values = keyfields.parse(body, provider_ids())
    if "name" in body:
        values["name"] = check_name(body["name"])
    key_hash = store.find(key_id)
    if key_hash is None or not store.update(key_hash, values):
        raise NotFound("API key not found")
    return next(k for k in store.list() if k["id"] == key_id)


@bp.get("/usage")
def usage_report():
    """Daily usage per key and provider, from `from` to `to` (inclusive, UTC days; the last 30 by default)."""
    _, _, rows = usage.query(current_app.extensions["keys"], request.args)
    if "text/csv" in request.headers.get("Accept", ""):
        return Response(usage.to_csv(rows), mimetype="text/csv")
    return jsonify({"success": True, "usage": rows})


def provider_ids() -> set[str]:
    return {p.id for p in current_app.extensions["router"].providers}


@bp.get("/keys")
def list_keys():
    return jsonify({"success": True, "keys": current_app.extensions["keys"].list()})


@bp.delete("/keys")
def revoke_key():
    """Revoke by the key itself, or by the `id` the list shows (the plaintext is not kept)."""
    body = read_json_object(request)
    store, events = current_app.extensions["keys"], current_app.extensions["events"]
    key, key_id = body.get("key"), body.get("id")
    if isinstance(key, str) and key:
        found = events.revoke_key(store, key=key)  # the store's revoke_key, telling webhooks
    elif isinstance(key_id, str) and key_id:
        found = events.revoke_key(store, key_id=key_id)
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


@bp.delete("/cache")
def clear_cache():
    """Empty the response cache: every worker's and machine's when it is in Redis."""
    return jsonify({"success": True, "removed": response_cache.clear()})


def health_entry(router: Router, provider: Provider) -> dict:
    """The provider as GET /health lists it."""
    state = router.status()[provider.id] if provider.configured else {"state": "not_configured"}
    return {"id": provider.id, "name": provider.name, "model": provider.model, "configured": provider.configured,
            **state}
