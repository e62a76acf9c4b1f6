"""/admin: create, list and revoke API keys; bring a provider back. Master key only. The operator commands
(routes/commands.py) call the same functions."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from providers.base import Provider
from utils.auth import require_master
from utils.errors import NotFound, ValidationError
from utils.keys import check_name
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
    key = current_app.extensions["keys"].create(check_name(read_json_object(request).get("name")))
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
