"""OpenAI's `chat.completions` request body as typed data: messages with images, tool calls and tool
results, tools, tool_choice, response_format and the sampling options. Unknown fields are ignored as
OpenAI-compatible servers do and null means absent; a field the gateway cannot honour (n > 1, logprobs,
logit_bias, audio...) is refused by name, never silently dropped."""
from __future__ import annotations

import re
from dataclasses import dataclass

from utils.chat import ChatRequest, Image, Message, ToolCall
from utils.errors import ValidationError
from utils.validation import (MAX_CONTENT_CHARS, integer, message_list, model_id, number_between, optional,
                              positive_int)

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system", "tool": "tool"}
MAX_STOP_SEQUENCES = 4  # OpenAI's own limit
MAX_TOOLS = 128  # OpenAI's own limit
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI's rule for function names
IMAGE_URL = re.compile(r"(https?://\S+|data:image/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]+)", re.IGNORECASE)
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
# Fields OpenAI defines that no provider here can honour as asked: refused by name.
REFUSED = {"logprobs": "logprobs", "top_logprobs": "logprobs", "logit_bias": "logit_bias", "audio": "audio output",
           "prediction": "predicted outputs", "web_search_options": "web search", "verbosity": "verbosity"}
# OpenAI's reasoning efforts: passed to the OpenAI-compatible providers as they are, and to Gemini as a thinking level.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True)
class CompletionRequest:
    """An OpenAI `chat.completions` request: the chat itself, plus what only the /v1 layer acts on."""
    chat: ChatRequest
    model: str | None  # as the client named it; None = auto
    stream: bool
    include_usage: bool


def parse_completion_request(body: dict) -> CompletionRequest:
    """`max_completion_tokens` (OpenAI's newer name) wins over `max_tokens`; both reach providers as
    `max_tokens`."""
    refuse_unsupported(body)
    model = model_id(optional(body, "model", str, "a string"))
    stream_options = optional(body, "stream_options", dict, "an object") or {}
    max_tokens = positive_int(body, "max_tokens")
    tools = parse_tools(body.get("tools"))
    options = {
        "temperature": number_between(body, "temperature", 0, 2),
        "top_p": number_between(body, "top_p", 0, 1),
        "max_tokens": positive_int(body, "max_completion_tokens") or max_tokens,
        "stop": stop_sequences(body),
        "seed": integer(body, "seed", "an integer"),
        "user": optional(body, "user", str, "a string"),
        "presence_penalty": number_between(body, "presence_penalty", -2, 2),
        "frequency_penalty": number_between(body, "frequency_penalty", -2, 2),
        "tools": tools or None,
        "tool_choice": parse_tool_choice(body.get("tool_choice"), tools),
        "parallel_tool_calls": optional(body, "parallel_tool_calls", bool, "a boolean"),
        "response_format": parse_response_format(body.get("response_format")),
        "reasoning_effort": reasoning_effort(body),
    }
    return CompletionRequest(
        chat=ChatRequest(parse_messages(body.get("messages")),
                         options={k: v for k, v in options.items() if v is not None}),
        model=model,
        stream=bool(optional(body, "stream", bool, "a boolean")),
        include_usage=bool(optional(stream_options, "include_usage", bool, "a boolean",
                                    param="stream_options.include_usage")),
    )


def reasoning_effort(body: dict) -> str | None:
    effort = optional(body, "reasoning_effort", str, "a string")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise ValidationError(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}",
                              param="reasoning_effort")
    return effort


def refuse_unsupported(body: dict) -> None:
    n = integer(body, "n", "a positive integer")
    if n is not None and n != 1:
        raise ValidationError("n must be 1: this gateway returns one choice per request", param="n")
    modalities = body.get("modalities")
    if modalities not in (None, ["text"]):
        raise ValidationError("modalities must be [\"text\"]: this gateway answers with text only", param="modalities")
    for name, feature in REFUSED.items():
        if body.get(name) not in (None, False, {}, 0):
            raise ValidationError(f"{name} is not supported: no provider behind this gateway offers {feature}",
                                  param=name)


def parse_messages(messages) -> tuple[Message, ...]:
    return tuple(parse_message(f"messages[{i}]", m) for i, m in enumerate(message_list(messages)))


def parse_message(at: str, message) -> Message:
    if not isinstance(message, dict):
        raise ValidationError(f"{at} must be an object with role and content", param=at)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise ValidationError(f"{at}.role must be one of {', '.join(ROLES)}", param=f"{at}.role")
    tool_calls = parse_tool_calls(f"{at}.tool_calls", message.get("tool_calls")) if role == "assistant" else ()
    content = message.get("content")
    if content is None and tool_calls:  # an assistant turn that only called tools
        return Message("assistant", "", tool_calls=tool_calls)
    text, parts = parse_content(f"{at}.content", content, images=role == "user")
    if role != "tool":
        return Message(ROLES[role], text, parts, tool_calls)
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ValidationError(f"{at}.tool_call_id must be the id of the tool call this message answers",
                              param=f"{at}.tool_call_id")
    name = optional(message, "name", str, "a string", param=f"{at}.name")
    return Message("tool", text, tool_call_id=call_id, name=name)


def parse_content(at: str, content, *, images: bool) -> tuple[str, tuple[str | Image, ...]]:
    """A string, or a list of text parts (and, in a user message, image parts): the joined text, and the
    parts in order when there is an image among them."""
    if isinstance(content, str):
        return check_length(at, content), ()
    if not isinstance(content, list) or not content:
        raise ValidationError(f"{at} must be a string or a list of content parts", param=at)
    parts: list[str | Image] = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "image_url" and images:
            parts.append(parse_image(f"{at}[{n}].image_url", part.get("image_url")))
        else:
            allowed = "text or image_url" if images else "text"
            raise ValidationError(f"{at}[{n}] must be a {allowed} part; {kind or 'this part'} is not supported here",
                                  param=f"{at}[{n}]")
    # Text parts are separate passages: keep them apart.
    text = check_length(at, "\n".join(p for p in parts if isinstance(p, str)))
    return text, tuple(parts) if any(isinstance(p, Image) for p in parts) else ()


def parse_image(at: str, image) -> Image:
    url, detail = (image, None) if isinstance(image, str) else (
        (image.get("url"), image.get("detail")) if isinstance(image, dict) else (None, None))
    if not isinstance(url, str) or not IMAGE_URL.fullmatch(url):
        raise ValidationError(f"{at}.url must be an http(s) URL or a data:image/...;base64 URL", param=f"{at}.url")
    if detail not in (None, "auto", "low", "high"):
        raise ValidationError(f"{at}.detail must be auto, low or high", param=f"{at}.detail")
    return Image(url, detail)


def check_length(at: str, text: str) -> str:
    if len(text) > MAX_CONTENT_CHARS:
        raise ValidationError(f"{at} must be at most {MAX_CONTENT_CHARS} characters", param=at)
    return text


def parse_tool_calls(at: str, calls) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise ValidationError(f"{at} must be a list", param=at)
    parsed = []
    for n, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(function, dict) and isinstance(call.get("id"), str) and call.get("type", "function")
                == "function" and isinstance(function.get("name"), str)
                and isinstance(function.get("arguments"), str)):
            raise ValidationError(f'{at}[{n}] must be {{"id", "type": "function", "function": {{"name", '
                                  '"arguments"}}}', param=f"{at}[{n}]")
        parsed.append(ToolCall(call["id"], function["name"], function["arguments"]))
    return tuple(parsed)


def parse_tools(tools) -> list[dict]:
    """Function tools, in OpenAI's shape as providers take them."""
    if tools is None:
        return []
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise ValidationError(f"tools must be a list of at most {MAX_TOOLS} function tools", param="tools")
    parsed = []
    for n, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise ValidationError(f'tools[{n}] must be a function tool ({{"type": "function", "function": {{...}}}}); '
                                  "other tool types are not supported", param=f"tools[{n}]")
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
            raise ValidationError(f"tools[{n}].function.name must be 1-64 letters, digits, _ or -",
                                  param=f"tools[{n}].function.name")
        clean = {"name": name}
        clean["description"] = optional(function, "description", str, "a string",
                                        param=f"tools[{n}].function.description")
        clean["parameters"] = optional(function, "parameters", dict, "a JSON schema object",
                                       param=f"tools[{n}].function.parameters")
        clean["strict"] = optional(function, "strict", bool, "a boolean", param=f"tools[{n}].function.strict")
        parsed.append({"type": "function", "function": {k: v for k, v in clean.items() if v is not None}})
    return parsed


def parse_tool_choice(choice, tools: list[dict]):
    if choice is None:
        return None
    names = {tool["function"]["name"] for tool in tools}
    if choice in ("auto", "none", "required"):
        return choice
    kind, function = (choice.get("type"), choice.get("function")) if isinstance(choice, dict) else (None, None)
    name = function.get("name") if isinstance(function, dict) else None
    if kind != "function" or not isinstance(name, str):
        raise ValidationError('tool_choice must be auto, none, required or {"type": "function", "function": '
                              '{"name": ...}}', param="tool_choice")
    if name not in names:
        raise ValidationError(f"tool_choice names the function {name!r}, which is not among tools",
                              param="tool_choice")
    return {"type": "function", "function": {"name": name}}


def parse_response_format(value) -> dict | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in RESPONSE_FORMATS:
        raise ValidationError(f"response_format.type must be one of {', '.join(RESPONSE_FORMATS)}",
                              param="response_format")
    if kind == "text":
        return None  # plain text is what every answer is anyway
    if kind == "json_object":
        return {"type": "json_object"}
    schema = value.get("json_schema")
    if not (isinstance(schema, dict) and isinstance(schema.get("name"), str) and isinstance(schema.get("schema"), dict)):
        raise ValidationError('response_format.json_schema must be {"name": ..., "schema": {...}, "strict"?: bool}',
                              param="response_format.json_schema")
    strict = optional(schema, "strict", bool, "a boolean", param="response_format.json_schema.strict")
    clean = {"name": schema["name"], "schema": schema["schema"]}
    if isinstance(schema.get("description"), str):
        clean["description"] = schema["description"]
    if strict is not None:
        clean["strict"] = strict
    return {"type": "json_schema", "json_schema": clean}


def stop_sequences(body: dict) -> str | list[str] | None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return stop or None
    if not isinstance(stop, list) or len(stop) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) for s in stop):
        raise ValidationError(f"stop must be a string or a list of up to {MAX_STOP_SEQUENCES} strings", param="stop")
    return stop or None
