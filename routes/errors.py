"""The one error handler: every error becomes `{"error": message, "status": code}` (plus `resetAt` on 429),
or, on the OpenAI-compatible routes (`/v1/...`), OpenAI's `{"error": {"message", "type", "param", "code"}}`."""
from __future__ import annotations

import logging
import math

from flask import Flask, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from utils.clock import iso
from utils.errors import GatewayError
from utils.limits import current_limit

log = logging.getLogger("gateway")

# Our own wording for werkzeug's errors; anything else keeps werkzeug's name for the status.
HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Content-Type must be application/json",
}

# A /v1 path the gateway does not serve names the API it does: OpenAI's own clients may default to another one
# (the Vercel AI SDK's `openai(model)` posts to the Responses API), and "Not found" alone says nothing of where to go.
V1_NOT_FOUND = ("Not found: this gateway's OpenAI-compatible API is POST /v1/chat/completions, POST /v1/embeddings "
                "and GET /v1/models; OpenAI's Responses API (/v1/responses) is not offered (with the Vercel AI SDK, "
                "use openai.chat(model) or @ai-sdk/openai-compatible)")

# OpenAI's error `type` and default `code` per status. The SDKs pick the exception class by status alone
# (429 -> RateLimitError whatever the type); the 429 type is OpenAI's own, the kind of limit hit.
# https://platform.openai.com/docs/guides/error-codes
OPENAI_ERRORS = {
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("requests", "rate_limit_exceeded"),
    502: ("server_error", "provider_error"),
    503: ("server_error", "service_unavailable"),
}
# OpenAI answers an unknown key with 401, and its SDKs raise AuthenticationError on it; /chat keeps the
# contract's 403 for the same key.
OPENAI_STATUS = {"invalid_api_key": 401}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None, **extra):
    if request.path.startswith("/v1/"):
        return openai_error_response(status, message, param=param, code=code)
    response = jsonify({"error": message, "status": status, **extra})
    response.status_code = status
    return response


def openai_error_response(status: int, message: str, *, param: str | None, code: str | None):
    status = OPENAI_STATUS.get(code, status)
    kind, default_code = OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                    None))
    response = jsonify({"error": {"message": message, "type": kind, "param": param, "code": code or default_code}})
    response.status_code = status
    return response


def handle_gateway_error(error: GatewayError):
    response = error_response(error.status, error.message, param=error.param, code=error.code)
    # Only 503 and 429 give Retry-After a meaning (RFC 9110 10.2.3); a provider's own ask on a 400 is not ours.
    if error.retry_after is not None and response.status_code in (429, 503):
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response


def handle_rate_limit(error: RateLimitExceeded):
    current = current_limit()
    extra = {"resetAt": iso(current.reset_at)} if current else {}
    return error_response(429, "Rate limit exceeded", **extra)


def handle_http_error(error: HTTPException):
    message = HTTP_MESSAGES.get(error.code, error.name)
    if error.code == 404 and request.path.startswith("/v1/"):
        message = V1_NOT_FOUND
    response = error_response(error.code or 500, message)
    if getattr(error, "valid_methods", None):  # a 405 says which methods the path does take (RFC 9110)
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def handle_unexpected(error: Exception):
    log.exception("unhandled error")
    return error_response(500, "Internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(GatewayError, handle_gateway_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
