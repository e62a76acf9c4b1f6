"""OpenAI tools, tool results, images and JSON output in Gemini's native format, and Gemini's function
calls back as OpenAI tool call deltas: what `providers/gemini.py` translates beyond plain text.

Gemini 3 puts a `thoughtSignature` on the first functionCall part of each step and refuses (400) the next
turn unless it comes back on that part: https://ai.google.dev/gemini-api/docs/thought-signatures. The
gateway keeps no state between requests, so the signature travels inside the tool call id handed to the
client (providers/call_ids.py).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import replace

from providers.call_ids import call_id, read_call_id
from utils import wire
from utils.chat import Chunk, Image, Message, ToolCall, ToolCallDelta
from utils.errors import ValidationError

# The documented stand-in for a function call Gemini did not make itself (another provider's turn, or a
# signature too long to carry): https://ai.google.dev/gemini-api/docs/thought-signatures#faqs
SKIP_SIGNATURE = "skip_thought_signature_validator"
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")  # Google's JSON bytes: standard base64, URL-safe accepted
_DATA_URL = re.compile(r"data:(image/[a-z0-9.+-]+);base64,(.*)", re.IGNORECASE | re.DOTALL)
# Image types Gemini reads, by extension; any other is sent as JPEG, the commonest on the web:
# https://ai.google.dev/gemini-api/docs/image-understanding#supported-formats
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
               "heic": "image/heic", "heif": "image/heif"}
TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_NOT_JSON: dict = {}  # json.loads calls parse_constant for NaN and Infinity: none is found here
# Gemini 2.5 and later refuse penalties, 0 included, with a 400 ("Penalty is not enabled for
# models/gemini-2.5-flash"; https://github.com/BerriAI/litellm/pull/16907 for Gemini 3), though
# https://ai.google.dev/api/generate-content#generationconfig documents them.
PENALTIES = ("presence_penalty", "frequency_penalty")
_NO_PENALTIES = re.compile(r"gemini-(?:2\.5|[3-9]|flash|pro)")


def unsupported(options: dict, model: str) -> str | None:
    """An option Gemini cannot carry as asked, named with why; None when it carries them all."""
    if options.get("parallel_tool_calls") is False and options.get("tools"):
        return "parallel_tool_calls: false (Gemini's API cannot keep the model from calling functions in parallel)"
    penalty = next((name for name in PENALTIES if options.get(name)), None)
    if penalty and _NO_PENALTIES.search(model):
        return f"{penalty} (the model {model} refuses penalties)"
    return None


def contents(messages: Iterable[Message]) -> list[dict]:
    """The conversation (without system messages) as Gemini `contents`. The tool messages that answer
    one assistant turn become one `user` content: Gemini wants the responses to parallel calls together,
    in order, as many as there were calls. https://ai.google.dev/gemini-api/docs/function-calling"""
    body: list[dict] = []
    names: dict[str, str] = {}  # tool call id -> function name, from the assistant turns read so far
    results: list[dict] | None = None  # the parts of the tool results being gathered, if any
    for at, message in enumerate(messages):
        if message.role == "tool":
            if results is None:
                results = []
                body.append({"role": "user", "parts": results})
            results.append({"functionResponse": function_response(at, message, names)})
            continue
        if message.role == "system":
            continue
        results = None
        if message.role == "assistant":
            names.update((call.id, call.name) for call in message.tool_calls)
            parts = [{"text": message.content}] if message.content or not message.tool_calls else []
            parts += [function_call(call, first=n == 0) for n, call in enumerate(message.tool_calls)]
            body.append({"role": "model", "parts": parts})
        else:
            parts = [content_part(part) for part in message.parts] if message.parts else [{"text": message.content}]
            body.append({"role": "user", "parts": parts})
    return body


def function_call(call: ToolCall, *, first: bool) -> dict:
    """An earlier call, its thought signature restored from the id. The first call of a turn without one
    gets SKIP_SIGNATURE; the other calls of a parallel batch carry none, as Gemini sent them."""
    gemini_id, signature = read_call_id(call.id)
    function: dict = {"name": call.name, "args": arguments(call.arguments)}
    if gemini_id:
        function["id"] = gemini_id
    part: dict = {"functionCall": function}
    if signature or first:
        part["thoughtSignature"] = signature or SKIP_SIGNATURE
    return part


def arguments(text: str) -> dict:
    """A call's arguments as the object `args` must be; empty text is none. Text that is not a JSON object
    (a model behind another provider can emit broken JSON, which the client hands back as it was) is
    wrapped as {"arguments": text}: refusing would fail every later turn of the conversation over an old
    one the client cannot change, while wrapped, the model still sees what it sent."""
    if not text.strip():
        return {}
    value = _json(text)
    return value if isinstance(value, dict) else {"arguments": text}


def function_response(at: int, message: Message, names: dict[str, str]) -> dict:
    """A tool result. Gemini names the function it answers (the OpenAI message only names the call), so
    the name comes from the earlier call with this id, else from the message's own `name`. The response
    must be an object: a JSON object result is passed as it is, anything else as {"result": text}."""
    name = names.get(message.tool_call_id or "") or message.name
    if not name:  # OpenAI refuses such a message too
        raise ValidationError(f"messages[{at}] answers a tool call no earlier assistant message made, and "
                              "has no `name`", param=f"messages[{at}].tool_call_id")
    value = _json(message.content)
    response = {"name": name, "response": value if isinstance(value, dict) else {"result": message.content}}
    gemini_id, _ = read_call_id(message.tool_call_id or "")
    return {**response, "id": gemini_id} if gemini_id else response


def content_part(part: str | Image) -> dict:
    """A text, or an image: a data URL inline, an http(s) URL as `fileData.fileUri`, which Gemini fetches
    itself (public or signed URLs, up to 100 MB): https://ai.google.dev/gemini-api/docs/file-input-methods.
    OpenAI's `detail` has no per-image equivalent in v1beta and is dropped."""
    if isinstance(part, str):
        return {"text": part}
    if data_url := _DATA_URL.fullmatch(part.url):  # whitespace in the base64 (wrapped lines) taken out
        return {"inlineData": {"mimeType": data_url.group(1).lower(), "data": "".join(data_url.group(2).split())}}
    path = part.url.split("?", 1)[0].split("#", 1)[0]
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return {"fileData": {"mimeType": IMAGE_TYPES.get(extension, "image/jpeg"), "fileUri": part.url}}


def tool_fields(options: dict) -> dict:
    """`tools` and `toolConfig` for OpenAI's tools and tool_choice. `parametersJsonSchema` takes JSON
    Schema as written (`parameters` takes Gemini's OpenAPI subset); `strict` has no equivalent.
    https://ai.google.dev/api/caching#FunctionDeclaration, #FunctionCallingConfig"""
    tools = options.get("tools")
    if not tools:
        return {}
    declarations = []
    for tool in tools:
        function = tool["function"]
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    fields: dict = {"tools": [{"functionDeclarations": declarations}]}
    choice = options.get("tool_choice")
    if choice is not None:
        config = ({"mode": TOOL_CHOICE_MODES[choice]} if isinstance(choice, str)
                  else {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]})
        fields["toolConfig"] = {"functionCallingConfig": config}
    return fields


def output_format(options: dict) -> dict:
    """generationConfig fields for `response_format`. `responseJsonSchema` takes JSON Schema as written and
    is always enforced (no `strict`). https://ai.google.dev/gemini-api/docs/structured-output"""
    response_format = options.get("response_format") or {}
    if response_format.get("type") == "json_object":
        return {"responseMimeType": "application/json"}
    if response_format.get("type") == "json_schema":
        return {"responseMimeType": "application/json",
                "responseJsonSchema": response_format["json_schema"]["schema"]}
    return {}


def function_calls(parts: list[dict]) -> tuple[ToolCallDelta, ...]:
    """One event's functionCall parts, each a whole call, as one delta each: index (from 0 in each event;
    `number_calls` counts on across events), id, name and all the arguments. The thought signature is a
    sibling of `functionCall` in its part."""
    deltas = []
    for index, part in enumerate(parts):
        call = wire.obj(part.get("functionCall"), "a functionCall")
        name = wire.text(call.get("name"), "a functionCall's name")
        if not name:
            raise wire.malformed("a functionCall", "has no name")
        try:
            args = json.dumps(wire.obj(call.get("args"), "a functionCall's args"), ensure_ascii=False,
                              allow_nan=False)
        except (ValueError, RecursionError):
            raise wire.malformed("a functionCall's args", "cannot be written as JSON") from None
        deltas.append(ToolCallDelta(index, call_id(wire.optional_text(call.get("id"), "a functionCall's id"),
                                                   _signature(part.get("thoughtSignature"))),
                                    name, wire.text(args, "a functionCall's args")))
    return tuple(deltas)


def number_calls(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """One answer's chunks, tool call indices running across it: Gemini 3 can send parallel calls in
    separate events, and OpenAI clients join pieces by index, which would glue the second call onto the first."""
    seen = 0
    with closing(chunks):  # closing the answer closes the provider's stream, and its connection
        for chunk in chunks:
            if chunk.tool_calls:
                chunk = replace(chunk, tool_calls=tuple(replace(delta, index=seen + delta.index)
                                                        for delta in chunk.tool_calls))
                seen += len(chunk.tool_calls)
            yield chunk


def _signature(value) -> str | None:
    signature = wire.optional_text(value, "a thoughtSignature")
    if not signature:
        return None
    if not _BASE64.fullmatch(signature) or len(signature.rstrip("=")) % 4 == 1:
        raise wire.malformed("a thoughtSignature", "is not base64")
    return signature


def _json(text: str):
    """The JSON value of a text, or None when it is not JSON (NaN and Infinity are not JSON either)."""
    try:
        return json.loads(text, parse_constant=_NOT_JSON.__getitem__)
    except (ValueError, KeyError, RecursionError):
        return None
