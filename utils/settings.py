"""Settings: one frozen dataclass, built once from the environment by `load_settings`.

Nothing else in the project reads `os.environ`. Tests build `Settings(...)` directly. `make run` runs `check`.
"""
from __future__ import annotations

import math
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass, field

from dotenv import load_dotenv

from providers import PROVIDER_CLASSES
from providers.base import CAPABILITIES, ProviderSettings
from utils.env import Env, SettingsError


def default_providers() -> tuple[ProviderSettings, ...]:
    return tuple(cls.default_settings() for cls in PROVIDER_CLASSES)


@dataclass(frozen=True)
class Settings:
    providers: tuple[ProviderSettings, ...] = field(default_factory=default_providers)
    # gunicorn.conf.py binds HOST:PORT itself; read here too so `make check` can name a host it cannot listen on.
    host: str = "0.0.0.0"
    port: int = 3000
    debug: bool = False
    cors_origins: tuple[str, ...] = ("*",)
    require_auth: bool = True
    master_api_key: str | None = None
    public_api_keys: tuple[str, ...] = ()
    rate_limit_enabled: bool = True
    rate_limit_max: int = 10
    rate_limit_window_ms: int = 60_000
    database_url: str = "sqlite:///data/gateway.db"
    redis_url: str | None = None
    # With Redis unreachable: false answers 503; true serves on per-process state (limits per worker).
    redis_fail_open: bool = False
    # Seconds to open a TCP/TLS connection to a provider.
    connect_timeout: float = 5.0
    # Seconds to wait for the provider's first byte, then between two reads of its stream.
    first_token_timeout: float = 30.0
    idle_timeout: float = 30.0
    # Failover: how many providers one request may try (0 = every configured provider once).
    max_attempts: int = 0
    # Seconds between checks that each provider still offers its configured model (0 = never). A served
    # gateway checks hourly (load_settings); Settings built in code (tests) start no thread unless asked.
    model_check_interval: float = 0.0
    # Consecutive failures that open a provider's circuit, and the first back-off in seconds (it doubles).
    failure_threshold: int = 3
    failure_cooldown: float = 30.0
    # Largest request body: 50 messages x 10,000 characters, each escaped as a JSON surrogate pair (12
    # bytes, as json.dumps writes an emoji by default) is 6 MB; with room to spare.
    max_content_length: int = 8 * 1024 * 1024
    # Seconds a client gets to send its whole request body: a body trickled a byte at a time is cut.
    body_timeout: float = 10.0
    # Bytes one answer may read from its provider, and seconds it may last: a provider that streams
    # forever is that provider's failure, not a worker's lost memory or time.
    max_answer_bytes: int = 32 * 1024 * 1024
    answer_timeout: float = 600.0
    # Days of per-key daily usage (/admin/usage) kept in the key database.
    usage_retention_days: int = 400
    # true: /metrics and /metrics/prometheus need the master key.
    metrics_require_key: bool = False
    # Proxies in front (nginx: 1) whose X-Forwarded-For/-Proto are believed; 0 believes no client header.
    trusted_proxies: int = 0
    # gunicorn reads WEB_CONCURRENCY itself; read here too so a wrong value is named before it starts.
    workers: int = 1
    # Seconds one webhook delivery attempt may take, and before the first retry (doubling up to an hour, for a day).
    webhook_timeout: float = 5.0
    webhook_retry_delay: float = 10.0
    # The response cache (utils/response_cache.py): seconds an answer is kept (0 = off), which requests may
    # use it (safe | opt-in | all), per key or shared by all, its bounds (entries, bytes, one entry's bytes;
    # in process and in Redis), and whether a hit counts against the rate limit.
    cache_ttl: int = 0
    cache_mode: str = "safe"
    cache_scope: str = "key"
    cache_max_entries: int = 1000
    cache_max_bytes: int = 64 * 1024 * 1024
    cache_max_entry_bytes: int = 1024 * 1024
    cache_hits_rate_limited: bool = True
    # Signs the admin panel's session cookie; unset: one is made on first start and kept in a file (routes/panel.py).
    secret_key: str | None = None

    @property
    def rate_limit(self) -> str:
        """The limit in Flask-Limiter's notation; limits counts whole seconds, so the window is rounded up."""
        seconds = max(1, math.ceil(self.rate_limit_window_ms / 1000))
        return f"{self.rate_limit_max} per {seconds} second"

    def provider(self, provider_id: str) -> ProviderSettings:
        return next(p for p in self.providers if p.id == provider_id)

    @property
    def cors_patterns(self) -> list[str | re.Pattern]:
        """CORS_ORIGINS for flask-cors, which would read any entry holding `*` as an unanchored regex
        (`https://*.example.com` would allow `https://xexample.com.evil.net`): `*` alone allows every
        origin, and in an entry it stands for one or more whole DNS labels, anchored at both ends."""
        if "*" in self.cors_origins:
            return ["*"]
        return [re.compile("^" + re.escape(origin).replace(r"\*", _DNS_LABELS) + "$", re.IGNORECASE)
                for origin in self.cors_origins]


_DNS_LABELS = r"[a-z0-9-]+(?:\.[a-z0-9-]+)*"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = Env(os.environ if environ is None else environ)
    providers = tuple(
        ProviderSettings(
            id=cls.id,
            api_key=(env.list(cls.key_setting) or (None,))[0],
            api_keys=env.list(cls.key_setting),
            base_url=env.url(f"{cls.env_prefix}_BASE_URL", cls.default_base_url),
            model=env.str(f"{cls.env_prefix}_MODEL") or cls.default_model,
            max_tokens=env.int(f"{cls.env_prefix}_MAX_TOKENS", 0),
            capabilities=frozenset(need for need in CAPABILITIES
                                   if env.bool(f"{cls.env_prefix}_{need.upper()}", need in cls.capabilities)),
            embedding_model=env.str(f"{cls.env_prefix}_EMBEDDING_MODEL"),
        )
        for cls in PROVIDER_CLASSES
    )
    return Settings(
        providers=providers,
        host=env.str("HOST") or "0.0.0.0",
        port=env.int("PORT", 3000, low=1, high=65535),
        debug=env.bool("DEBUG", False),
        cors_origins=env.origins("CORS_ORIGINS"),
        require_auth=env.bool("REQUIRE_AUTH", True),
        master_api_key=env.str("MASTER_API_KEY"),
        public_api_keys=env.list("PUBLIC_API_KEYS"),
        rate_limit_enabled=env.bool("RATE_LIMIT_ENABLED", True),
        rate_limit_max=env.int("RATE_LIMIT_MAX", 10, low=1),
        rate_limit_window_ms=env.int("RATE_LIMIT_WINDOW_MS", 60_000, low=1),
        database_url=env.database_url("DATABASE_URL", Settings.database_url),
        redis_url=env.url("REDIS_URL", None, schemes=("redis", "rediss", "unix")),
        redis_fail_open=env.bool("REDIS_FAIL_OPEN", False),
        connect_timeout=env.float("CONNECT_TIMEOUT", 5.0),
        first_token_timeout=env.float("FIRST_TOKEN_TIMEOUT", 30.0),
        idle_timeout=env.float("IDLE_TIMEOUT", 30.0),
        max_attempts=env.int("MAX_ATTEMPTS", 0, low=0),
        model_check_interval=env.int("MODEL_CHECK_INTERVAL", 3600, low=0),
        failure_threshold=env.int("FAILURE_THRESHOLD", 3, low=1),
        failure_cooldown=env.float("FAILURE_COOLDOWN", 30.0),
        body_timeout=env.float("BODY_TIMEOUT", 10.0),
        max_answer_bytes=env.int("MAX_ANSWER_BYTES", 32 * 1024 * 1024, low=1024),
        answer_timeout=env.float("ANSWER_TIMEOUT", 600.0),
        usage_retention_days=env.int("USAGE_RETENTION_DAYS", 400, low=1),
        metrics_require_key=env.bool("METRICS_REQUIRE_KEY", False),
        trusted_proxies=env.int("TRUSTED_PROXIES", 0, low=0),
        workers=env.int("WEB_CONCURRENCY", 1, low=1),
        webhook_timeout=env.float("WEBHOOK_TIMEOUT", 5.0),
        webhook_retry_delay=env.float("WEBHOOK_RETRY_DELAY", 10.0),
        cache_ttl=env.int("CACHE_TTL", 0, low=0, high=365 * 86400),
        cache_mode=env.choice("CACHE_MODE", "safe", ("safe", "opt-in", "all")),
        cache_scope=env.choice("CACHE_SCOPE", "key", ("key", "global")),
        cache_max_entries=env.int("CACHE_MAX_ENTRIES", 1000, low=1),
        cache_max_bytes=env.int("CACHE_MAX_BYTES", 64 * 1024 * 1024, low=1024),
        cache_max_entry_bytes=env.int("CACHE_MAX_ENTRY_BYTES", 1024 * 1024, low=1024),
        cache_hits_rate_limited=env.bool("CACHE_HITS_RATE_LIMITED", True),
        secret_key=_secret_key(env.str("SECRET_KEY")),
    )


def _secret_key(value: str | None) -> str | None:
    if value is not None and len(value) < 32:  # the value itself is never echoed: it is a secret
        raise SettingsError("SECRET_KEY must be at least 32 characters (make one: python -c 'import secrets; "
                            "print(secrets.token_hex(32))'), or empty to have one made and kept")
    return value


def _check_serving(settings: Settings) -> None:
    """What gunicorn would refuse only when it starts: more workers than one without Redis, an unusable HOST."""
    if settings.workers > 1 and not settings.redis_url:
        raise SettingsError(f"WEB_CONCURRENCY={settings.workers} needs REDIS_URL: each worker would keep its own "
                            "rate limits, rotation and metrics. Set REDIS_URL or use one worker")
    try:
        socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"HOST must be an address this machine can listen on, got {settings.host!r} ({reason})") \
            from None


def check() -> None:
    """Settings as gunicorn will see them, and the key database: one line naming what is wrong, else advice."""
    from utils.keys import KeyStore  # here: the app's own settings need no database driver or Alembic
    from utils.tables import unopenable
    load_dotenv()  # as gunicorn.conf.py does: set variables win over .env
    try:
        settings = load_settings()
        _check_serving(settings)
        KeyStore(settings.database_url).close()
    except SettingsError as error:
        sys.exit(f"Configuration error: {error}")
    except Exception as exc:  # SQLAlchemy's, the driver's or the file system's: all mean it cannot be opened
        sys.exit(f"Configuration error: {unopenable(exc)}")
    if not any(p.configured for p in settings.providers):
        print("No provider key is set, so /chat answers 503 and /health says down: set one or more of "
              f"{', '.join(cls.key_setting for cls in PROVIDER_CLASSES)} in .env, then start again.")
    if not settings.master_api_key:
        print("MASTER_API_KEY is empty, so /admin/keys is closed. A strong one, generated just now (or make one: "
              "python -c 'import secrets; print(secrets.token_urlsafe(32))'):\n"
              f"    MASTER_API_KEY={secrets.token_urlsafe(32)}")


if __name__ == "__main__" and sys.argv[1:] == ["--check"]:
    check()
