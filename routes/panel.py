"""The admin panel's door and overview: GET /admin/ (the sign-in page until signed in), signing in and out,
the overview's live figures, and taking a provider back into the rotation. The panel's other pages are in
routes/panel_keys.py and routes/panel_reports.py; what they share is in routes/panel_base.py."""
from __future__ import annotations

import logging

from flask import Flask, current_app, flash, jsonify, redirect, render_template, request, url_for

from routes import panel_keys, panel_reports
from routes.admin import health_entry
from routes.panel_base import blueprint
from routes.panel_overview import overview
from utils import panel_auth
from utils.errors import NotFound
from utils.settings import Settings

log = logging.getLogger("gateway")

# The panel's style sheet, script and icon (static/admin/) are served at /admin/panel/static/.
bp = blueprint("panel", __name__, static_folder="../static/admin", static_url_path="/panel/static")


# The panel's blueprints: pages for a browser, not API operations (routes/openapi.json leaves them out).
BLUEPRINTS = (bp, panel_keys.bp, panel_reports.bp)


def init_panel(app: Flask, settings: Settings) -> None:
    panel_auth.init_sessions(app, settings)
    for part in BLUEPRINTS:
        app.register_blueprint(part)


@bp.get("/")
def home():
    if not panel_auth.signed_in():
        return sign_in_page()
    return render_template("admin/overview.html", data=overview())


def sign_in_page(error: str | None = None, status: int = 200):
    closed = not current_app.extensions["settings"].master_api_key
    return render_template("admin/signin.html", error=error, closed=closed), status


@bp.post("/panel/sign-in")
def sign_in():
    throttle, client = current_app.extensions["panel_throttle"], request.remote_addr or "unknown"
    if not throttle.take_try(client):
        log.warning("admin panel sign-in refused: too many wrong master keys", extra={"client": client})
        seconds = throttle.seconds_left(client)
        return sign_in_page(f"Too many wrong master keys from your address: try again in {seconds} seconds.", 429)
    if not current_app.extensions["settings"].master_api_key:
        return sign_in_page(status=403)
    if not panel_auth.right_master_key(request.form.get("master_key", "")):
        log.warning("admin panel sign-in failed: wrong master key", extra={"client": client})
        return sign_in_page("Wrong master key.", 401)
    throttle.forget(client)
    panel_auth.sign_in()
    log.info("admin panel sign-in", extra={"client": client})
    return redirect(url_for("panel.home"), 303)


@bp.post("/panel/sign-out")
def sign_out():
    panel_auth.sign_out()
    return redirect(url_for("panel.home"), 303)


@bp.get("/panel/live")
def live():
    """The overview's figures, for its script to refresh the page with."""
    return jsonify(overview())


@bp.post("/panel/providers/<provider_id>/reset")
def reset_provider(provider_id: str):
    """As POST /admin/providers/<id>/reset does (see Router.reset)."""
    router = current_app.extensions["router"]
    provider = router.by_id(provider_id)
    if provider is None:
        raise NotFound(f"Unknown provider '{provider_id}'")
    router.reset(provider)
    flash(f"{provider.name} is back in the rotation (it is now {health_entry(router, provider)['state']}).")
    return redirect(url_for("panel.home"), 303)
