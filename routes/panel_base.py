"""What every part of the admin panel shares: a blueprint under /admin that asks for a session (and checks
every form's token), answers with the panel's security headers, and shows errors as pages."""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from utils import panel_auth
from utils.errors import GatewayError

# No inline script or style anywhere: the panel's own files and nothing else.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cross-Origin-Opener-Policy": "same-origin"}
# Open without a session: the sign-in page (what /admin/ shows then), signing in, the style and script.
OPEN = {"panel.home", "panel.sign_in", "panel.static"}
# The navigation: (label, endpoint).
NAV = (("Overview", "panel.home"), ("Keys", "panel_keys.keys"), ("Usage", "panel_reports.usage"),
       ("Requests", "panel_reports.requests"))


def blueprint(name: str, import_name: str, **options) -> Blueprint:
    bp = Blueprint(name, import_name, url_prefix="/admin", **options)
    bp.before_request(require_session)
    bp.after_request(add_headers)
    bp.register_error_handler(GatewayError, error_page)
    bp.context_processor(lambda: {"csrf_token": panel_auth.csrf_token, "nav": NAV})
    return bp


def require_session():
    if request.method == "POST":  # every form, signing in included, carries the session's token
        panel_auth.check_csrf()
    if request.endpoint in OPEN or panel_auth.signed_in():
        return None
    if request.endpoint == "panel.live":  # the overview's refresh: it reads JSON
        return jsonify({"error": "Sign in to the admin panel first", "status": 401}), 401
    return redirect(url_for("panel.home"), 303)


def add_headers(response):
    response.headers.update(HEADERS)
    if request.endpoint != "panel.static":  # pages hold keys' names and usage: no cache keeps them
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(error: GatewayError):
    return render_template("admin/error.html", message=error.message, status=error.status), error.status
