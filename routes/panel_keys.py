"""The admin panel's Keys page: the list (masked) with each key's use against its budgets, creating a key
(shown once), editing its policy, enabling and disabling it, revoking it after a confirmation. Every change
goes through the admin API's own functions (routes/admin.py), so the page and the API never disagree."""
from __future__ import annotations

import secrets

from flask import current_app, flash, redirect, render_template, request, session, url_for

from routes.admin import change_key, new_key
from routes.panel_base import blueprint
from routes.panel_forms import LIMIT_LABELS, explained, form_values, policy_from_form, posted_values
from utils.errors import NotFound, ValidationError

bp = blueprint("panel_keys", __name__)

# A key just made, kept for the page the browser is sent to next (so reloading that page cannot post the form
# again): split between a one-time pad in the state store and the key masked by it in the session cookie.
NEW_KEY, NEW_KEY_SECONDS = "panel-new-key:", 60


def listed(key_id: str) -> dict:
    found = next((k for k in current_app.extensions["keys"].list() if k["id"] == key_id), None)
    if found is None:
        raise NotFound("API key not found (it may have been revoked)")
    return found


def keys_page(status: int = 200, **shown):
    keys = current_app.extensions["keys"].list()
    return render_template("admin/keys.html", keys=keys, labels=LIMIT_LABELS, **shown), status


@bp.get("/panel/keys")
def keys():
    handed = take_new_key()
    if handed is None:
        return keys_page()
    key, key_id = handed
    # Shown in this answer alone (it is no-store): the list shows it masked from now on.
    return keys_page(new_key=key, new_key_name=listed(key_id)["name"])


@bp.post("/panel/keys")
def create_key():
    name = request.form.get("name", "")
    try:
        key, key_id = new_key({"name": name})
    except ValidationError as error:
        return keys_page(400, error=explained(error), name=name)
    hand_new_key(key, key_id)
    return redirect(url_for("panel_keys.keys"), 303)


def hand_new_key(key: str, key_id: str) -> None:
    pad = secrets.token_bytes(len(key))
    current_app.extensions["store"].add_many([(NEW_KEY + session["sid"], {}, {"pad": pad.hex(), "id": key_id},
                                               NEW_KEY_SECONDS)])
    session["new_key"] = _xor(key.encode(), pad).hex()


def take_new_key() -> tuple[str, str] | None:
    """The key hand_new_key kept, once: the pad is gone after this (or after a minute)."""
    masked, kept = session.pop("new_key", None), {}
    if not isinstance(masked, str):
        return None
    current_app.extensions["store"].clear(NEW_KEY + session["sid"], kept.update)
    if "pad" not in kept:
        return None
    return _xor(bytes.fromhex(masked), bytes.fromhex(kept["pad"])).decode(), kept["id"]


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


@bp.get("/panel/keys/<key_id>/edit")
def edit_key(key_id: str):
    key = listed(key_id)
    return render_template("admin/key_edit.html", key=key, form=form_values(key), providers=providers())


@bp.post("/panel/keys/<key_id>/edit")
def save_key(key_id: str):
    key = listed(key_id)
    try:
        saved = change_key(key_id, policy_from_form(request.form))
    except ValidationError as error:
        return render_template("admin/key_edit.html", key=key, form=posted_values(request.form),
                               providers=providers(), error=explained(error)), 400
    flash(f"Saved key '{saved['name']}'.")
    return redirect(url_for("panel_keys.keys"), 303)


@bp.post("/panel/keys/<key_id>/enabled")
def set_enabled(key_id: str):
    # Anything but the form's own two values is refused, not read as "disable".
    enabled = {"true": True, "false": False}.get(request.form.get("enabled", ""))
    if enabled is None:
        raise ValidationError("enabled must be true or false", param="enabled")
    saved = change_key(key_id, {"enabled": enabled})
    flash(f"Key '{saved['name']}' is {'enabled' if enabled else 'disabled'}.")
    return redirect(url_for("panel_keys.keys"), 303)


@bp.get("/panel/keys/<key_id>/revoke")
def confirm_revoke(key_id: str):
    return render_template("admin/key_revoke.html", key=listed(key_id))


@bp.post("/panel/keys/<key_id>/revoke")
def revoke_key(key_id: str):
    name, ext = listed(key_id)["name"], current_app.extensions
    if not ext["events"].revoke_key(ext["keys"], key_id=key_id):  # as DELETE /admin/keys does, telling webhooks
        raise NotFound("API key not found (it may have been revoked)")
    flash(f"Revoked key '{name}': requests with it are refused from now on.")
    return redirect(url_for("panel_keys.keys"), 303)


def providers() -> list:
    return list(current_app.extensions["router"].providers)
