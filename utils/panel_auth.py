"""Who may use the admin panel (/admin/): the master key, given once at sign-in, opens a session. The browser
holds Flask's signed cookie (HttpOnly, SameSite=Strict, Secure over https) with the session's id and its form
token, never the key; the session itself (its expiry, which master key opened it) lives in the state store, so
signing out ends it everywhere and a changed MASTER_API_KEY ends them all. Every form carries the token.
Sign-in tries are counted per client address, and a right key forgets them: the fifth try within a minute
of four wrong ones is refused unchecked."""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, request, session
from flask.sessions import SecureCookieSessionInterface
from limits import parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from utils import secretfile
from utils.errors import GatewayError
from utils.limits import storage_uri
from utils.settings import Settings

log = logging.getLogger("gateway")

SESSION_SECONDS = 12 * 3600
SESSION = "panel-session:"
# Master keys a client may try in a minute (a right one starts the count again); one more is refused unchecked.
WRONG_KEYS = "4 per minute"


class CsrfRefused(GatewayError):
    status = 403
    message = ("This form's security token is missing or out of date, so it was refused: reload the page and "
               "send the form again")


class PanelSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over https (as ProxyFix reports it
    behind TRUSTED_PROXIES), so a deployment behind TLS never sends it in the clear."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def open_session(self, app: Flask, request):
        # Only /admin, where the cookie is sent, has a session: the API's requests skip the signer's set-up.
        if not request.path.startswith("/admin"):
            return self.null_session_class()
        return super().open_session(app, request)


class Throttle:
    """Wrong master keys per client address, in a moving minute: shared by every worker through Redis
    (REDIS_URL), counted in this process while Redis is away, so the door never opens wider than that."""

    def __init__(self, redis_url: str | None):
        self.limit = parse(WRONG_KEYS)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = MovingWindowRateLimiter(storage_from_string(
            storage_uri(redis_url), wrap_exceptions=True, socket_timeout=2, socket_connect_timeout=2)) \
            if redis_url else None

    def _run(self, method: str, client: str):
        if self._shared is not None:
            try:
                return getattr(self._shared, method)(self.limit, "panel-sign-in", client)
            except StorageError:
                log.error("redis is unreachable: wrong master keys are counted in this process")
        return getattr(self._local, method)(self.limit, "panel-sign-in", client)

    def take_try(self, client: str) -> bool:
        """Count a try before its key is checked, in one step (a test, then a hit once the key proved
        wrong, would let a burst of tries all pass the test before any was counted)."""
        return self._run("hit", client)

    def forget(self, client: str) -> None:
        self._run("clear", client)

    def seconds_left(self, client: str) -> int:
        return max(1, int(self._run("get_window_stats", client).reset_time - time.time()) + 1)


def init_sessions(app: Flask, settings: Settings) -> None:
    app.secret_key = settings.secret_key or kept_secret(settings.database_url)
    app.config.update(SESSION_COOKIE_NAME="gateway_admin", SESSION_COOKIE_PATH="/admin",
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.session_interface = PanelSessions()
    app.extensions["panel_throttle"] = Throttle(settings.redis_url)


def secret_path(database_url: str) -> Path | None:
    """Where an unset SECRET_KEY is kept: next to a SQLite key database, in data/ with PostgreSQL; nowhere
    for an in-memory database (nothing outlives that process anyway)."""
    url = sa.make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return Path("data") / "secret_key"
    if url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).parent / "secret_key"


def kept_secret(database_url: str) -> str:
    path = secret_path(database_url)
    return secretfile.load_or_create(path) if path else secrets.token_hex(32)


def _fingerprint() -> str:
    """Which master key opened a session: a keyed hash, so not even the server's store holds the key."""
    master = current_app.extensions["settings"].master_api_key or ""
    return hmac.new(current_app.secret_key.encode(), master.encode(), hashlib.sha256).hexdigest()


def sign_in() -> None:
    sid = secrets.token_urlsafe(32)
    current_app.extensions["store"].add_many([(SESSION + sid, {}, {"until": time.time() + SESSION_SECONDS,
                                                                   "key": _fingerprint()}, SESSION_SECONDS)])
    session.clear()  # a token from before signing in is not carried over
    session.update(sid=sid, csrf=secrets.token_urlsafe(32))


def sign_out() -> None:
    sid = session.get("sid")
    if isinstance(sid, str):
        current_app.extensions["store"].add_many([(SESSION + sid, {}, {"until": 0}, 60)])
    session.clear()


def signed_in() -> bool:
    sid = session.get("sid")
    if not isinstance(sid, str) or not current_app.extensions["settings"].master_api_key:
        return False
    record = current_app.extensions["store"].read([SESSION + sid])[0]
    return float(record.get("until", 0)) > time.time() and hmac.compare_digest(record.get("key", ""), _fingerprint())


def csrf_token() -> str:
    """The form token of this browser's session (made on first use, e.g. by the sign-in page)."""
    if not isinstance(session.get("csrf"), str):
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent, kept = request.form.get("csrf_token", ""), session.get("csrf")
    if not isinstance(kept, str) or not hmac.compare_digest(sent.encode(), kept.encode()):
        log.warning("admin panel form refused: missing or wrong CSRF token",
                    extra={"path": request.path, "client": request.remote_addr})
        raise CsrfRefused()


def right_master_key(given: str) -> bool:
    master = current_app.extensions["settings"].master_api_key
    return bool(master) and hmac.compare_digest(given.encode(), master.encode())
