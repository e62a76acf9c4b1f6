"""Typed readers of untrusted provider JSON.

A provider can send valid JSON of any shape. Each reader returns the documented type or raises
`ProviderError(kind="malformed")`, so a wrong shape is that provider's failure (another may answer)
instead of a crash (a 500) or a wrong value passed on to the client. `None` (null or a missing key)
reads as empty, because the formats allow null where a value can be absent (`content: null`,
`usage: null`).
"""
from __future__ import annotations

import reprlib

from utils.errors import ProviderError

# The most tokens one answer may report (larger counts are clamped). This is ten times the largest
# context window on offer (1M), and small enough that usage totals summed over years stay exact
# integers in SQLite and finite floats in /metrics.
MAX_REPORTED_TOKENS = 10_000_000
# An error message as logs and clients see it, and a machine-readable error code.
MAX_MESSAGE_CHARS = 300
MAX_CODE_CHARS = 100

_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}

# A non-string error message is shown as a bounded repr: reprlib stops at a few levels and items,
# so a huge or deeply nested value costs next to nothing.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 3, 8, 8, 120, 120


def malformed(what: str, problem: str) -> ProviderError:
    # The message names our own label for the field, never the provider's value, which may be huge.
    return ProviderError(f"the provider sent a malformed answer: {what} {problem}", kind="malformed")


def obj(value, what: str) -> dict:
    """A JSON object; null reads as {}."""
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    raise malformed(what, f"is {_json_type(value)}, not an object")


def seq(value, what: str) -> list:
    """A JSON list; null reads as []."""
    if isinstance(value, list):
        return value
    if value is None:
        return []
    raise malformed(what, f"is {_json_type(value)}, not a list")


def text(value, what: str) -> str:
    """A string that can be encoded as UTF-8; null reads as "".

    JSON can carry a lone surrogate (`"\\ud800"`). Such a string cannot be sent to a client as UTF-8, so
    it is refused here rather than failing later when the answer is written."""
    if isinstance(value, str):
        if not value.isascii():  # the common case checks nothing more, and copies nothing
            try:
                value.encode()
            except UnicodeEncodeError:
                raise malformed(what, "is not valid Unicode") from None
        return value
    if value is None:
        return ""
    raise malformed(what, f"is {_json_type(value)}, not a string")


def optional_text(value, what: str) -> str | None:
    """A string, or None for null."""
    return None if value is None else text(value, what)


def hint_text(value) -> str:
    """A string from an advisory field, such as a quota hint in an error body; "" when it is of any other
    type. A wrong type there only loses the hint: the error stays what its status says."""
    return value if isinstance(value, str) else ""


def token_count(value, what: str) -> int:
    """A token count: a whole number, 0 for null, clamped to MAX_REPORTED_TOKENS.

    Python's json gives ints of any size and floats up to inf or nan (`1e999`, `NaN`). A float with a
    whole value (`5.0`, `1e308`) is accepted because some serializers write counts that way."""
    if isinstance(value, bool):  # a bool is an int in Python, but not a count in JSON
        raise malformed(what, "is a boolean, not a token count")
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):  # inf and nan are not
        if value < 0:
            raise malformed(what, "is negative")
        return int(min(value, MAX_REPORTED_TOKENS))
    if value is None:
        return 0
    raise malformed(what, f"is {_json_type(value)}, not a whole number")


def error_message(body) -> tuple[str, str | None]:
    """The message and code of any provider's error body. Never raises.

    Handles `{"error": {...}}`, `{"error": "..."}`, a bare `{"message": ...}` (Cerebras 4xx) and plain text
    (Groq's Envoy 503). Any other JSON still gives a short printable message and a string code or None."""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None:
        error = body
    if isinstance(error, dict):
        message = error.get("message") or error.get("status") or "unknown error"
        return _short(message), _code(error.get("code"))
    return _short(error or "no details"), None


def _short(value) -> str:
    message = value if isinstance(value, str) else _REPR.repr(value)
    # A lone surrogate becomes "?", so the message is always valid UTF-8 for logs and clients.
    return message[:MAX_MESSAGE_CHARS].encode(errors="replace").decode()


def _code(value) -> str | None:
    # OpenRouter's codes are numbers (the HTTP status) and the others' are strings. An empty code or any
    # other JSON type means no code.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) < 10 ** MAX_CODE_CHARS else None
    if isinstance(value, str) and value:
        return value[:MAX_CODE_CHARS].encode(errors="replace").decode()
    return None


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)
