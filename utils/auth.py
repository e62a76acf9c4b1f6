"""Who is asking: the key from `Authorization: Bearer` or `X-API-Key`, resolved to a caller."""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from flask import Request

from utils.errors import AuthRequired, InvalidKey
from utils.events import Events
from utils.keyfields import Policy
from utils.keys import KeyStore, hash_key
from utils.settings import Settings


@dataclass(frozen=True)
class Caller:
    # What rate limits and logs know the caller by: a hash prefix, never the key itself.
    id: str
    kind: str  # master | public | key | anonymous
    key_hash: str | None = None  # set for keys from the key store, whose usage is counted
    policy: Policy | None = None  # a stored key's scopes and limits


class KeyExpired(InvalidKey):
    """403 on /chat like an invalid key; 401 under /v1 (OpenAI's status for a key that is not accepted)."""
    message = "API key expired"


def presented_key(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def authenticate(request: Request, settings: Settings, store: KeyStore, events: Events | None = None) -> Caller:
    key = presented_key(request)
    if not settings.require_auth:
        return Caller(id=f"ip:{request.remote_addr}", kind="anonymous")
    if key is None:
        raise AuthRequired()
    digest = hash_key(key)
    caller_id = f"key:{digest[:16]}"
    if same(key, settings.master_api_key or ""):
        return Caller(caller_id, "master")
    # Every public key is compared, so the time taken does not say which one nearly matched.
    if sum(same(key, public) for public in settings.public_api_keys):
        return Caller(caller_id, "public")
    policy = store.policy(digest)
    if policy is None or not policy.enabled:
        raise InvalidKey()
    if policy.expired(time.time()):
        (events or Events()).key_expired(digest, policy.expires_at)
        raise KeyExpired()
    return Caller(caller_id, "key", key_hash=digest, policy=policy)


def require_master(request: Request, settings: Settings) -> None:
    key = presented_key(request)
    if key is None:
        raise AuthRequired()
    if not settings.master_api_key or not same(key, settings.master_api_key):
        raise InvalidKey()
