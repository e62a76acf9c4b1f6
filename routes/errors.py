"""The one error handler: every error becomes `{"error": message, "status": code}` (plus `resetAt` on 429)."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from utils.clock import iso
from utils.errors import GatewayError
from utils.limits import limiter

log = logging.getLogger("gateway")

# Our own wording for werkzeug's errors; anything else keeps werkzeug's name for the status.
HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Content-Type must be application/json",
}


def error_response(status: int, message: str, **extra):
    response = jsonify({"error": message, "status": status, **extra})
    response.status_code = status
    return response


def handle_gateway_error(error: GatewayError):
    return error_response(error.status, error.message)


def handle_rate_limit(error: RateLimitExceeded):
    current = limiter.current_limit
    extra = {"resetAt": iso(current.reset_at)} if current else {}
    return error_response(429, "Rate limit exceeded", **extra)


def handle_http_error(error: HTTPException):
    return error_response(error.code or 500, HTTP_MESSAGES.get(error.code, error.name))


def handle_unexpected(error: Exception):
    log.exception("unhandled error")
    return error_response(500, "Internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(GatewayError, handle_gateway_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
