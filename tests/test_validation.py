"""utils/validation.py: chat request bodies become typed data or a 400 with a specific message."""
import pytest
from flask import Flask

from utils.chat import ChatRequest, Message
from utils.errors import GatewayError, ValidationError
from utils.validation import parse_chat_request, parse_messages, read_json_object


def user(content="hi"):
    return {"role": "user", "content": content}


def refusal(body) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400
    return caught.value


def test_a_valid_body_becomes_a_chat_request_of_messages():
    body = {"messages": [{"role": "system", "content": "be brief"}, user("hi"),
                         {"role": "assistant", "content": "hello"}]}
    assert parse_chat_request(body) == ChatRequest(messages=(
        Message("system", "be brief"), Message("user", "hi"), Message("assistant", "hello")))


@pytest.mark.parametrize("body", [{}, {"messages": {"role": "user", "content": "hi"}}, {"messages": "hi"},
                                  {"messages": None}, {"messages": 3}, {"messages": True}],
                         ids=["missing", "object", "string", "null", "number", "bool"])
def test_messages_that_are_not_an_array_get_the_exact_message(body):
    assert refusal(body).message == "messages must be an array"


def test_an_empty_array_is_refused():
    assert refusal({"messages": []}).message == "messages must not be empty"


def test_fifty_messages_are_accepted():
    assert len(parse_chat_request({"messages": [user()] * 50}).messages) == 50


def test_fifty_one_messages_are_refused():
    assert refusal({"messages": [user()] * 51}).message == "messages must contain at most 50 items"


@pytest.mark.parametrize("role", ["user", "assistant", "system"])
def test_each_allowed_role_is_accepted(role):
    assert parse_messages([{"role": role, "content": "x"}]) == (Message(role, "x"),)


@pytest.mark.parametrize("role", ["tool", "User", "developer", "", None, 1, ["user"], {"role": "user"}],
                         ids=["tool", "capitalised", "developer", "empty", "null", "number", "array", "object"])
def test_any_other_role_is_refused_naming_the_message(role):
    error = refusal({"messages": [user(), {"role": role, "content": "x"}]})
    assert error.message == "messages[1].role must be one of user, assistant, system"


def test_a_missing_role_is_refused():
    assert refusal({"messages": [{"content": "x"}]}).message == "messages[0].role must be one of user, assistant, system"


@pytest.mark.parametrize("content", [None, 42, ["hi"], {"text": "hi"}, [{"type": "text", "text": "hi"}]])
def test_content_that_is_not_a_string_is_refused(content):
    assert refusal({"messages": [{"role": "user", "content": content}]}).message == "messages[0].content must be a string"


def test_a_missing_content_is_refused():
    assert refusal({"messages": [{"role": "user"}]}).message == "messages[0].content must be a string"


def test_an_empty_string_is_valid_content():
    assert parse_messages([user("")]) == (Message("user", ""),)


def test_content_of_exactly_ten_thousand_characters_is_accepted():
    assert parse_messages([user("x" * 10_000)])[0].content == "x" * 10_000


def test_content_over_ten_thousand_characters_is_refused():
    error = refusal({"messages": [user(), user("x" * 10_001)]})
    assert error.message == "messages[1].content must be at most 10000 characters"


def test_the_content_limit_counts_characters_not_bytes():
    assert parse_messages([user("é" * 10_000)])[0].content == "é" * 10_000  # 20,000 bytes in UTF-8


@pytest.mark.parametrize("item", ["hi", None, 5, ["user", "hi"]])
def test_a_message_that_is_not_an_object_is_refused(item):
    error = refusal({"messages": [user(), item]})
    assert error.message == "messages[1] must be an object with role and content"


def test_the_first_bad_message_is_the_one_reported():
    error = refusal({"messages": [user(), {"role": "bot", "content": "x"}, {"role": "user", "content": 1}]})
    assert error.message == "messages[1].role must be one of user, assistant, system"


# --- read_json_object: the body before the messages are looked at ---

APP = Flask(__name__)


def read(**request_args):
    with APP.test_request_context("/chat", method="POST", **request_args):
        from flask import request
        return read_json_object(request)


def test_a_json_object_body_is_returned():
    assert read(json={"messages": []}) == {"messages": []}


def test_a_body_not_declared_as_json_gets_415():
    with pytest.raises(GatewayError) as caught:
        read(data='{"messages": []}', content_type="text/plain")
    assert (caught.value.status, caught.value.message) == (415, "Content-Type must be application/json")


def test_a_body_that_does_not_parse_gets_400():
    with pytest.raises(ValidationError) as caught:
        read(data="{not json", content_type="application/json")
    assert caught.value.message == "Request body must be valid JSON"


@pytest.mark.parametrize("body", [[{"role": "user", "content": "hi"}], "messages", 3])
def test_a_json_body_that_is_not_an_object_gets_400(body):
    with pytest.raises(ValidationError) as caught:
        read(json=body)
    assert caught.value.message == "Request body must be a JSON object"
