"""The application factory; `app` at the bottom is what gunicorn serves."""
from __future__ import annotations

import atexit
import sys
from functools import partial

import click
import sqlalchemy as sa
from dotenv import load_dotenv
from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from providers import build_providers
from routes import admin, chat, commands, embeddings, health, metrics, openai_api, openapi, webhooks
from routes.errors import register_error_handlers
from routes.panel import init_panel
from utils.keys import KeyStore
from utils.tables import unopenable
from utils.limits import init_limits
from utils.logs import configure_logging
from utils.metrics import Metrics
from utils.model_watch import ModelWatcher
from utils.notifier import Notifier
from utils.relay import Relay
from utils.requestlog import init_request_log
from utils.response_cache import init_cache
from utils.router import Router
from utils.settings import Settings, SettingsError, load_settings
from utils.state import build_store
from utils.validation import read_body
from utils.webhook_delivery import Deliverer
from utils.webhooks import WebhookStore

# Response headers a browser front end may read.
EXPOSED_HEADERS = ["X-Provider", "X-Attempts", "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset", "Retry-After", "X-Cache", "X-Cache-Age"]


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    log = configure_logging(settings.debug)
    app = Flask(__name__, static_folder=None)  # the admin panel serves its own files (routes/panel.py)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json.sort_keys = False  # keep the contract's field order

    providers = build_providers(settings)
    store = build_store(settings.redis_url, settings.redis_fail_open)
    keys = KeyStore(settings.database_url, retention_days=settings.usage_retention_days)
    hooks = WebhookStore(keys.engine)
    deliverer = Deliverer(hooks, timeout=settings.webhook_timeout, retry_delay=settings.webhook_retry_delay)
    events = Notifier(providers, store, hooks, queued=deliverer.wake)  # what changes webhooks are told of
    router = Router(providers, store, failure_threshold=settings.failure_threshold,
                    failure_cooldown=settings.failure_cooldown,
                    probe_seconds=settings.connect_timeout + settings.first_token_timeout, events=events)
    metrics_ = Metrics([p.name for p in router.configured], store)
    watcher = ModelWatcher(router, settings.model_check_interval)
    app.extensions.update(settings=settings, store=store, router=router, metrics=metrics_, keys=keys,
                          relay=Relay(router, metrics_, keys), model_watcher=watcher, events=events,
                          webhooks=hooks, deliverer=deliverer)
    watcher.start()
    # Else it starts with the first webhook or event; an operator command (a click context) sends nothing itself.
    if hooks.any() and click.get_current_context(silent=True) is None:
        deliverer.start()
    atexit.register(watcher.stop)
    atexit.register(keys.close)  # writes the last key usage on a clean shutdown
    atexit.register(deliverer.stop)  # first (atexit runs in reverse): its last attempt is recorded

    CORS(app, origins=settings.cors_patterns, expose_headers=EXPOSED_HEADERS)
    init_request_log(app)
    app.before_request(partial(read_body, settings.body_timeout))
    app.after_request(add_security_headers)
    register_error_handlers(app)
    for module in (chat, openai_api, embeddings, health, metrics, admin, webhooks, openapi):
        app.register_blueprint(module.bp)
    init_panel(app, settings)  # the admin panel's pages under /admin/, with their sessions
    init_limits(app, settings)  # after the blueprints: it limits the views they declare limited
    init_cache(app, settings)
    if settings.trusted_proxies:
        # Behind nginx the peer is nginx: believe the last N X-Forwarded-For hops (the ones our proxies wrote, not
        # what a client sent), so per-IP limits and logs see the real client.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    for group in commands.GROUPS:  # `flask --app app keys|db|providers ...`
        app.cli.add_command(group)

    log.info("gateway ready", extra={
        "providers": [p.name for p in router.configured] or "none: /chat answers 503",
        "authEnabled": settings.require_auth, "rateLimitEnabled": settings.rate_limit_enabled,
        "adminEnabled": bool(settings.master_api_key)})
    return app


def add_security_headers(response):
    # Every answer says what it is (JSON, an event stream, text, the panel's pages): no browser may guess otherwise.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def __getattr__(name: str) -> Flask:
    """`app`, built on first access (`gunicorn app:app`), so importing `create_app` in tests builds nothing."""
    if name != "app":
        raise AttributeError(name)
    load_dotenv()
    try:
        application = create_app()
    except (SettingsError, sa.exc.SQLAlchemyError, OSError) as exc:
        reason = exc if isinstance(exc, SettingsError) else unopenable(exc)
        print(f"Configuration error: {reason}", file=sys.stderr)
        # 3 is gunicorn's "worker failed to boot": the master stops instead of restarting workers forever.
        sys.exit(3)
    globals()["app"] = application
    return application
