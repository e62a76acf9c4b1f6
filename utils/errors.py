"""The one exception tree. Views, the router and providers raise; `routes/errors.py` renders.

    GatewayError                 status + client-safe message
    +-- ValidationError          400, the body is malformed
    +-- AuthRequired             401, no key sent
    +-- InvalidKey               403, unknown or revoked key
    +-- NotFound                 404
    +-- NoProviders              503, nothing is configured (or everything is cooling down: `retry_after` says how long)
    +-- UpstreamFailed           502, every provider tried has failed
    +-- StateUnavailable         503, Redis or the key database is unreachable
    +-- ProviderError            one provider's failure; carries whether another provider may take over
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from utils.quota import Quota


class GatewayError(Exception):
    status = 500
    message = "Internal server error"
    # For OpenAI-shaped errors on /v1: the request field at fault, and a machine-readable code.
    param: str | None = None
    code: str | None = None
    # Seconds until a retry can succeed; the handler sends it as Retry-After on a 503 or 429.
    retry_after: float | None = None

    def __init__(self, message: str | None = None, status: int | None = None, *, param: str | None = None,
                 code: str | None = None, retry_after: float | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        if status is not None:
            self.status = status
        self.param = param or self.param
        self.code = code or self.code
        self.retry_after = retry_after


class ValidationError(GatewayError):
    status = 400


class AuthRequired(GatewayError):
    status = 401
    message = "API key required. Use Authorization: Bearer YOUR_KEY or X-API-Key header"


class InvalidKey(GatewayError):
    status = 403
    message = "Invalid or disabled API key"
    code = "invalid_api_key"


class NotFound(GatewayError):
    status = 404
    message = "Not found"


class NoProviders(GatewayError):
    status = 503
    message = "No AI provider is configured"


class UpstreamFailed(GatewayError):
    status = 502
    message = "All providers failed"


class ClientClosed(GatewayError):
    """The client left before its answer began (nginx's 499): nothing reaches it, the log line says so."""
    status = 499
    message = "The client closed the connection"


class StateUnavailable(GatewayError):
    status = 503
    message = "The gateway's shared state (Redis) is unavailable; try again shortly"


class ProviderError(GatewayError):
    """A provider failed. `retryable` says another provider may take over (the client is not at fault);
    `retry_after` is how long (seconds) the provider asked us to wait; `status` is the upstream HTTP status
    (0 when no answer came: refused, reset, timed out). `kind` is a short label for logs and metrics;
    `quota` is what the error answer said about the provider's quota, when it said anything."""

    status = 502

    def __init__(self, message: str, *, upstream_status: int = 0, retryable: bool = True,
                 retry_after: float | None = None, kind: str = "error", model_gone: bool = False,
                 quota: Quota | None = None, status: int | None = None, code: str | None = None,
                 param: str | None = None):
        super().__init__(message, code=code, param=param)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind
        # The configured model does not exist upstream (retired or misspelt): an operator must change it.
        self.model_gone = model_gone
        self.quota = quota
        if status is not None:
            self.status = status
        elif not retryable and 400 <= upstream_status < 500:
            # The request itself was refused upstream: the client sees the 4xx.
            self.status = 400
