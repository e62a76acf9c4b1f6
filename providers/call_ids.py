"""Tool call ids that carry what Gemini needs back. The gateway keeps no state between requests, so
Gemini's thought signature (and its own call id) travel inside the tool call id handed to the client,
which clients send back verbatim (on the assistant message and on the tool result):

    call_<12 hex>[_g_<Gemini's functionCall.id>][_ts_<the signature, base64url without padding>]

Only [A-Za-z0-9_-], which OpenAI SDKs, LangChain and pydantic-ai keep as it is (and which Anthropic's id
check accepts too). The id is the signature's length plus at most 88 characters.
"""
from __future__ import annotations

import re
import secrets

# A longer signature is not carried (real ones are a few KB at most): the call then goes back with the
# documented stand-in signature, so the next turn still validates and only loses the earlier reasoning.
MAX_SIGNATURE_CHARS = 16_384
_CALL_ID = re.compile(r"(call_[0-9a-f]{12})(?:_g_([A-Za-z0-9-]{1,64}))?(?:_ts_([A-Za-z0-9_-]+))?")
_GEMINI_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def call_id(gemini_id: str | None, signature: str | None) -> str:
    """A new tool call id carrying what the next turn must send back (see the module's docstring). An id
    of Gemini's of another shape than letters, digits and dashes is dropped: it is optional."""
    call = f"call_{secrets.token_hex(6)}"
    if gemini_id and _GEMINI_ID.fullmatch(gemini_id):
        call += f"_g_{gemini_id}"
    if signature:
        packed = signature.rstrip("=").replace("+", "-").replace("/", "_")
        if len(packed) <= MAX_SIGNATURE_CHARS:
            call += f"_ts_{packed}"
    return call


def read_call_id(call: str) -> tuple[str | None, str | None]:
    """Gemini's functionCall id and the thought signature (standard base64, as Gemini sent it) a tool
    call id carries; (None, None) for any id this gateway did not make (another provider's, a client's)."""
    match = _CALL_ID.fullmatch(call)
    if not match:
        return None, None
    _, gemini_id, packed = match.groups()
    if packed is None or len(packed) % 4 == 1:  # not a length base64 can have
        return gemini_id, None
    signature = packed.replace("-", "+").replace("_", "/")
    return gemini_id, signature + "=" * (-len(signature) % 4)


def portable_call_id(call: str) -> str:
    """The id as other providers see it: Gemini's parts cut, so a conversation that moves from Gemini to
    another provider sends short plain ids (OpenAI's own are at most 40 characters)."""
    match = _CALL_ID.fullmatch(call)
    return match.group(1) if match else call
