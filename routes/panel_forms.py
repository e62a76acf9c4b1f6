"""The admin panel's key form, read into the body the admin API takes (PATCH /admin/keys/<id>), so one
check (utils/keyfields.py) judges both. An empty field clears what it sets; every field is sent, since
the form shows the key's whole policy."""
from __future__ import annotations

import re

from utils.errors import ValidationError

# form field -> (the API's field in `limits`, the label the form shows)
LIMITS = {
    "requests_per_day": ("requestsPerDay", "Requests per day"),
    "tokens_per_day": ("tokensPerDay", "Tokens per day"),
    "tokens_per_month": ("tokensPerMonth", "Tokens per month"),
    "max_concurrent": ("maxConcurrent", "Max concurrent"),
}
LIMIT_LABELS = {api: label for api, label in LIMITS.values()}
# The API's parameter names as the form labels them, for its error messages.
LABELS = {**{f"limits.{api}": label for api, label in LIMITS.values()},
          "name": "Name", "note": "Note", "expiresAt": "Expires", "allowedProviders": "Allowed providers",
          "allowedModels": "Allowed models", "limits.rateLimit": "Rate limit",
          "limits.rateLimit.max": "Rate limit", "limits.rateLimit.windowMs": "Rate limit window"}
_WHOLE = re.compile(r"[0-9]{1,16}")


def policy_from_form(form) -> dict:
    limits = {api: _whole(form, field, label) for field, (api, label) in LIMITS.items()}
    rate = _whole(form, "rate_max", "Rate limit"), _whole(form, "rate_window", "Rate limit window")
    if (rate[0] is None) != (rate[1] is None):
        raise ValidationError("give both the requests and the window (milliseconds), or neither",
                              param="limits.rateLimit")
    if rate[0] is not None:
        limits["rateLimit"] = {"max": rate[0], "windowMs": rate[1]}
    limits = {name: value for name, value in limits.items() if value is not None}
    models = [line.strip() for line in form.get("models", "").splitlines() if line.strip()]
    return {"name": form.get("name", ""), "note": form.get("note", "").strip() or None,
            "expiresAt": form.get("expires", "").strip() or None,
            "allowedProviders": form.getlist("providers") or None, "allowedModels": models or None,
            "limits": limits or None}


def _whole(form, field: str, label: str) -> int | None:
    value = form.get(field, "").strip()
    if not value:
        return None
    if not _WHOLE.fullmatch(value):
        raise ValidationError(f"{label} must be a whole number, or empty for none", param=field)
    return int(value)


def explained(error: ValidationError) -> str:
    """The API's message, led by the label of the field it is about."""
    label = LABELS.get(error.param or "")
    return f"{label}: {error.message}" if label else error.message


def form_values(key: dict) -> dict:
    """A listed key (GET /admin/keys' shape) as the form's fields."""
    limits = key.get("limits") or {}
    rate = limits.get("rateLimit") or {}
    return {
        "name": key["name"], "note": key["note"] or "", "expires": key["expiresAt"] or "",
        **{field: limits.get(api, "") for field, (api, _) in LIMITS.items()},
        "rate_max": rate.get("max", ""), "rate_window": rate.get("windowMs", ""),
        "providers": key["allowedProviders"] or [], "models": "\n".join(key["allowedModels"] or []),
    }


def posted_values(form) -> dict:
    """A posted form as the form's fields, to show it again with what was typed."""
    return {**form.to_dict(), "providers": form.getlist("providers")}
