"""Turning request bodies into typed data, or a ValidationError with a specific message (and, for the
OpenAI-compatible API, the `param` at fault)."""
from __future__ import annotations

import json
import re

import gevent
from flask import Request
from flask import request as current_request
from werkzeug.exceptions import BadRequest

from utils.chat import ChatRequest, Message
from utils.errors import GatewayError, ValidationError

MAX_MESSAGES = 50
# Levels of objects and lists a body may nest (a tool's JSON schema is the deepest part of a real one, a dozen
# levels). Deeper bodies parse, but encoding one for a provider, further down the stack, could run out of it.
MAX_DEPTH = 100
TOO_DEEP = f"Request body is nested too deeply (more than {MAX_DEPTH} levels)"
MAX_CONTENT_CHARS = 10_000
ROLES = ("user", "assistant", "system")
# Model ids a client may name: letters, digits and . _ : / @ + -, at most 200 characters, and no `.` or
# `..` path segment. They are data: a provider that puts the id in its URL gets it as one escaped segment.
MODEL_ID = re.compile(r"(?!(?:.*/)?\.{1,2}(?:/|$))[A-Za-z0-9._:/@+-]{1,200}")
# Lone UTF-16 surrogates: JSON allows them as escapes (`"\ud800"`), but they are not text. Passed on,
# they fail at a provider (and count against it) or in the database.
_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyTimeout(GatewayError):
    status = 408
    message = "The request body was not received in time"


def read_body(seconds: float) -> None:
    """Read the whole request body within `seconds` (an app-wide `before_request`), so a client that
    trickles its body a byte at a time is cut with 408 instead of holding a connection forever. Later
    reads (`get_json`) use the body read here."""
    if current_request.content_length or current_request.headers.get("Transfer-Encoding"):
        with gevent.Timeout(seconds, BodyTimeout):
            current_request.get_data(cache=True)


def read_json_object(request: Request) -> dict:
    """The body as a JSON object: 415 when it is not declared JSON, 400 when it does not parse or holds
    a string that is not text (a lone surrogate)."""
    if not request.is_json:
        raise GatewayError("Content-Type must be application/json", status=415)
    try:
        body = request.get_json()
    except BadRequest:
        raise ValidationError("Request body must be valid JSON") from None
    except RecursionError:  # the json module's answer to thousands of nested brackets
        raise ValidationError(TOO_DEEP) from None
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    if _deeper_than(body, MAX_DEPTH):
        raise ValidationError(TOO_DEEP)
    try:
        json.dumps(body, ensure_ascii=False).encode()  # one pass in C finds any lone surrogate
    except UnicodeEncodeError:
        path = _surrogate_path(body)
        raise ValidationError(f"{path or 'the request body'} holds invalid Unicode (a lone surrogate)",
                              param=path) from None
    return body


def _deeper_than(body: dict, limit: int) -> bool:
    """Whether objects and lists nest more than `limit` levels (without recursion: any depth is measured)."""
    level, containers = 1, [body]
    while containers:
        if level > limit:
            return True
        inner = []
        for container in containers:
            items = container.values() if isinstance(container, dict) else container
            inner.extend(item for item in items if isinstance(item, (dict, list)))
        level, containers = level + 1, inner
    return False


def _surrogate_path(value, path: str = "") -> str | None:
    """Where in a JSON value the first lone surrogate is, as a param path (`messages[0].content`)."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                return path or None
            found = _surrogate_path(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def model_id(value: str | None, param: str = "model") -> str | None:
    if value is not None and not MODEL_ID.fullmatch(value):
        raise ValidationError(f"{param} must be a model id of letters, digits and . _ : / @ + - (at most 200 "
                              "characters, no . or .. path segments)", param=param)
    return value


def message_list(messages) -> list:
    """`messages` as the contract bounds it: an array of 1 to MAX_MESSAGES items (/chat and /v1 alike)."""
    if not isinstance(messages, list):
        raise ValidationError("messages must be an array", param="messages")
    if not messages:
        raise ValidationError("messages must not be empty", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise ValidationError(f"messages must contain at most {MAX_MESSAGES} items", param="messages")
    return messages


def parse_messages(messages) -> tuple[Message, ...]:
    """The contract's messages (/chat); the OpenAI API's richer ones are read by utils/openai_request.py."""
    return tuple(parse_message(i, m) for i, m in enumerate(message_list(messages)))


def parse_message(index: int, message) -> Message:
    if not isinstance(message, dict):
        raise ValidationError(f"messages[{index}] must be an object with role and content", param=f"messages[{index}]")
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or role not in ROLES:  # a list or object cannot even be looked up
        raise ValidationError(f"messages[{index}].role must be one of {', '.join(ROLES)}",
                              param=f"messages[{index}].role")
    if not isinstance(content, str):
        raise ValidationError(f"messages[{index}].content must be a string", param=f"messages[{index}].content")
    if len(content) > MAX_CONTENT_CHARS:
        raise ValidationError(f"messages[{index}].content must be at most {MAX_CONTENT_CHARS} characters",
                              param=f"messages[{index}].content")
    return Message(role, content)


def parse_chat_request(body: dict) -> ChatRequest:
    """/chat's messages, and the two options that make an answer repeatable (and so cacheable by default)."""
    options = {"temperature": number_between(body, "temperature", 0, 2), "seed": integer(body, "seed", "an integer")}
    return ChatRequest(messages=parse_messages(body.get("messages")),
                       options={name: value for name, value in options.items() if value is not None})


def optional(body: dict, name: str, kind: type | tuple[type, ...], described: str, *, param: str | None = None):
    value = body.get(name)
    # bool is an int in Python, but `true` is not a number in JSON.
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise ValidationError(f"{param or name} must be {described}", param=param or name)
    return value


def number_between(body: dict, name: str, low: float, high: float) -> float | None:
    value = optional(body, name, (int, float), f"a number between {low} and {high}")
    if value is not None and not low <= value <= high:
        raise ValidationError(f"{name} must be a number between {low} and {high}", param=name)
    return value


def integer(body: dict, name: str, described: str) -> int | None:
    """A whole number; JSON does not tell 5 from 5.0 (JSON Schema counts both as integers), so neither do we."""
    value = optional(body, name, (int, float), described)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValidationError(f"{name} must be {described}", param=name)
        value = int(value)
    return value


def positive_int(body: dict, name: str) -> int | None:
    value = integer(body, name, "a positive integer")
    if value is not None and value < 1:
        raise ValidationError(f"{name} must be a positive integer", param=name)
    return value
