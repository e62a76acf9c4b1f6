"""A key's policy as the admin API writes and shows it: `note`, `enabled`, `expiresAt`, `allowedProviders`,
`allowedModels`, `limits` and `cache`. `parse` checks a request body's fields (each wrong one is a 400 naming
it) and gives the columns to store; `public` gives them back from a stored row. Null clears a field."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from utils.clock import iso
from utils.errors import ValidationError

MAX_NOTE = 2000
MAX_ITEMS = 100
LIMIT_FIELDS = ("requestsPerDay", "tokensPerDay", "tokensPerMonth", "maxConcurrent")
FIELDS = ("note", "enabled", "expiresAt", "allowedProviders", "allowedModels", "limits", "cache")


@dataclass(frozen=True)
class Policy:
    """What a key may do, read once per request."""
    key_hash: str
    enabled: bool = True
    expires_at: float | None = None
    allowed_providers: frozenset[str] | None = None
    allowed_models: frozenset[str] | None = None
    limits: dict = field(default_factory=dict)
    # The response cache for this key's requests: True always (when CACHE_TTL is set), False never, None as
    # CACHE_MODE says.
    cache: bool | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def policy_of(row) -> Policy:
    providers, models = _loads(row["allowed_providers"]), _loads(row["allowed_models"])
    return Policy(row["key_hash"], bool(row["enabled"]), row["expires_at"],
                  frozenset(providers) if providers is not None else None,
                  frozenset(models) if models is not None else None, _loads(row["limits"]) or {},
                  None if row["cache"] is None else bool(row["cache"]))


def public(row, now: float) -> dict:
    return {
        "note": row["note"],
        "expiresAt": iso(row["expires_at"]) if row["expires_at"] is not None else None,
        "expired": row["expires_at"] is not None and now >= row["expires_at"],
        "allowedProviders": _loads(row["allowed_providers"]),
        "allowedModels": _loads(row["allowed_models"]),
        "limits": _loads(row["limits"]),
        "cache": None if row["cache"] is None else bool(row["cache"]),
    }


def parse(body: dict, provider_ids: set[str]) -> dict:
    """The columns to write for the policy fields present in `body` (a key's `name` aside). A field a key does
    not have is refused by name, not dropped."""
    unknown = sorted(set(body) - set(FIELDS) - {"name"})
    if unknown:
        raise ValidationError(f"Unknown field '{unknown[0][:100]}'; a key has only: name, {', '.join(FIELDS)}",
                              param=unknown[0][:100])
    values = {}
    if "note" in body:
        values["note"] = _note(body["note"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ValidationError("enabled must be true or false", param="enabled")
        values["enabled"] = body["enabled"]
    if "expiresAt" in body:
        values["expires_at"] = _when(body["expiresAt"])
    if "allowedProviders" in body:
        values["allowed_providers"] = _list(body["allowedProviders"], "allowedProviders", provider_ids)
    if "allowedModels" in body:
        values["allowed_models"] = _list(body["allowedModels"], "allowedModels", provider_ids, models=True)
    if "limits" in body:
        values["limits"] = _limits(body["limits"])
    if "cache" in body:
        if body["cache"] is not None and not isinstance(body["cache"], bool):
            raise ValidationError("cache must be true, false or null", param="cache")
        values["cache"] = body["cache"]
    return values


def _note(note):
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise ValidationError(f"note must be a string of at most {MAX_NOTE} characters", param="note")
    if "\x00" in note:
        raise ValidationError("note must not contain NUL characters", param="note")
    return note


def _when(value):
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("expiresAt must be an ISO 8601 date-time string", param="expiresAt")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError("expiresAt must be an ISO 8601 date-time string, e.g. 2027-01-01T00:00:00Z",
                              param="expiresAt") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _list(value, name: str, provider_ids: set[str], models: bool = False):
    if value is None:
        return None
    what = "'<provider id>/<model>' strings" if models else "provider ids"
    if not isinstance(value, list) or len(value) > MAX_ITEMS or not all(
            isinstance(item, str) and item.strip() and len(item) <= 300 and item.isprintable() for item in value):
        raise ValidationError(f"{name} must be an array of at most {MAX_ITEMS} {what}", param=name)
    items = []
    for item in value:
        item = item.strip()
        provider = item.partition("/")[0].lower() if models else item.lower()
        if models and "/" not in item:
            raise ValidationError(f"{name}: '{item[:100]}' must be '<provider id>/<model>'", param=name)
        if provider not in provider_ids:
            raise ValidationError(f"{name}: unknown provider '{provider[:100]}' (valid: "
                                  f"{', '.join(sorted(provider_ids))})", param=name)
        items.append(f"{provider}/{item.partition('/')[2]}" if models else provider)
    return json.dumps(sorted(set(items)))


def _count(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**15:
        raise ValidationError(f"{name} must be a positive integer or null", param=name)
    return value


def _limits(value):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("limits must be an object", param="limits")
    unknown = set(value) - set(LIMIT_FIELDS) - {"rateLimit"}
    if unknown:
        raise ValidationError(f"limits: unknown field '{min(unknown)[:100]}' (valid: "
                              f"{', '.join(LIMIT_FIELDS + ('rateLimit',))})", param="limits")
    limits = {name: _count(value.get(name), f"limits.{name}") for name in LIMIT_FIELDS}
    rate = value.get("rateLimit")
    if rate is not None:
        if not isinstance(rate, dict) or set(rate) != {"max", "windowMs"}:
            raise ValidationError("limits.rateLimit must be an object with max and windowMs",
                                  param="limits.rateLimit")
        limits["rateLimit"] = {"max": _count(rate["max"], "limits.rateLimit.max"),
                               "windowMs": _count(rate["windowMs"], "limits.rateLimit.windowMs")}
    limits = {name: v for name, v in limits.items() if v is not None}
    return json.dumps(limits) if limits else None


def _loads(text):
    return json.loads(text) if text else None
