"""Turning request bodies into typed data, or a ValidationError with a specific message."""
from __future__ import annotations

from flask import Request

from providers.base import ChatRequest, Message
from utils.errors import GatewayError, ValidationError

MAX_MESSAGES = 50
MAX_CONTENT_CHARS = 10_000
ROLES = ("user", "assistant", "system")


def read_json_object(request: Request) -> dict:
    """The body as a JSON object: 415 when it is not declared JSON, 400 when it does not parse."""
    if not request.is_json:
        raise GatewayError("Content-Type must be application/json", status=415)
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationError("Request body must be valid JSON")
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    return body


def parse_messages(messages) -> tuple[Message, ...]:
    if not isinstance(messages, list):
        raise ValidationError("messages must be an array")
    if not messages:
        raise ValidationError("messages must not be empty")
    if len(messages) > MAX_MESSAGES:
        raise ValidationError(f"messages must contain at most {MAX_MESSAGES} items")
    return tuple(parse_message(i, m) for i, m in enumerate(messages))


def parse_message(index: int, message) -> Message:
    if not isinstance(message, dict):
        raise ValidationError(f"messages[{index}] must be an object with role and content")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ValidationError(f"messages[{index}].role must be one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise ValidationError(f"messages[{index}].content must be a string")
    if len(content) > MAX_CONTENT_CHARS:
        raise ValidationError(f"messages[{index}].content must be at most {MAX_CONTENT_CHARS} characters")
    return Message(role, content)


def parse_chat_request(body: dict) -> ChatRequest:
    return ChatRequest(messages=parse_messages(body.get("messages")))
