"""What a provider's error answer means: its body read within bounds, its message made fit for a
client, and the one policy for failover by status."""
from __future__ import annotations

import json
import re
import time

import requests

from utils.errors import ProviderError
from utils.quota import Quota, parse_reset, seconds_until
from utils.upstream import read_prefix

# An error answer is read this far (bytes) and for this long (seconds): enough for any real error body.
MAX_ERROR_BODY = 64 * 1024
ERROR_BODY_SECONDS = 5.0
# What a provider's message may show a client: short, plain, no markup, no credential-like strings.
PUBLIC_MESSAGE_CHARS = 200
_MARKUP = re.compile(r"<[a-zA-Z!/][^>]*>")
_CREDENTIAL = re.compile(r"\b(?:sk|gsk|csk|hf|sk-or-v1|AIza)[-_A-Za-z0-9]{12,}|\bBearer\s+\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def status_error(status: int, message: str, *, retry_after: float | None = None,
                 code: str | None = None, quota: Quota | None = None) -> ProviderError:
    """The one policy for what an upstream HTTP error means for failover.

    A 400/413/422 is the request's fault (another provider would refuse it too) unless it names the
    model, which is the operator's configuration; everything else (401/403 bad provider key, 404 model
    gone, 402 out of credit, 408, 429, 5xx) is this provider's problem, so another may answer.
    """
    # OpenRouter's 404 "No endpoints found that support image input" (or "... tool use") is about one
    # request's needs: another provider may serve it, and it says nothing of this one's health or model.
    unsupported = status == 404 and "No endpoints found that support" in message
    model_gone = not unsupported and (
        status == 404 or code in ("model_not_found", "model_decommissioned", "model_not_supported")
        or "not a valid model" in message)  # OpenRouter's 400 for an unknown model id
    client_fault = status in (400, 413, 422) and not model_gone
    kind = "unsupported" if unsupported else "rate_limited" if status == 429 else f"http_{status}"
    return ProviderError(f"upstream answered {status}: {message}"[:300], upstream_status=status,
                         retryable=not client_fault, retry_after=retry_after, kind=kind, model_gone=model_gone,
                         quota=quota)


def read_error_body(response: requests.Response):
    """An error answer's body, parsed when it is JSON, else its start as text; never more than
    MAX_ERROR_BODY bytes read, however much the provider sends."""
    data, _ = read_prefix(response, MAX_ERROR_BODY, ERROR_BODY_SECONDS)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data[:PUBLIC_MESSAGE_CHARS].decode(errors="replace")


def public_message(message: str, *secrets: str | None) -> str:
    """A provider's error message as a client may see it: the provider key it was sent (a provider can
    echo it) and anything shaped like a credential redacted, markup and control characters gone, short."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    message = _CREDENTIAL.sub("[redacted]", message)
    message = _MARKUP.sub(" ", message)
    message = "".join(ch if ch.isprintable() else " " for ch in message)
    message = _SPACE.sub(" ", message).strip()
    return message[:PUBLIC_MESSAGE_CHARS] or "no details"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` (seconds or an HTTP date) as seconds from now; garbage or a past date counts as absent."""
    now = time.time() if now is None else now
    return seconds_until(parse_reset(value, now), now)
