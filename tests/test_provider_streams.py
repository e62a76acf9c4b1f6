"""Each provider's stream read into chunks: text, reasoning, the finish and usage, keep-alive comments,
and an error event or a broken event after the text before it. Bodies are captures from PROVIDERS.md."""
from __future__ import annotations

import pytest

from tests.providers_helpers import (
    CEREBRAS_STREAM,
    CEREBRAS_STREAM_URL,
    GEMINI_STREAM,
    GEMINI_STREAM_URL,
    GROQ_STREAM_URL,
    GROQ_USAGE,
    HF_STREAM_URL,
    OPENROUTER_MIDSTREAM_ERROR,
    OPENROUTER_STREAM_URL,
    cerebras,
    gemini_event,
    gemini_provider,
    groq,
    groq_chunk,
    hf_chunk,
    huggingface,
    mocked,
    openrouter,
    openrouter_chunk,
    reasoning_delta,
    sse,
    stream_all,
    stream_until_error,
)
from utils.chat import Chunk, Usage

GROQ_STREAM = sse(
    groq_chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_01kh52m3qqem4sw141xf026ehx", "seed": 167346302}),
    groq_chunk({"content": "Int"}),
    groq_chunk({"content": "roduction"}),
    groq_chunk({}, "stop", x_groq={"id": "req_01kh52m3qqem4sw141xf026ehx", "usage": GROQ_USAGE}, usage=GROQ_USAGE),
    "[DONE]",
)
GROQ_STREAM_2024 = sse(  # older captures: usage only inside x_groq
    groq_chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_01j0"}),
    groq_chunk({"content": "Hi"}),
    groq_chunk({}, "stop", x_groq={"id": "req_01j0", "usage": GROQ_USAGE}),
    "[DONE]",
)
OPENROUTER_USAGE = {"prompt_tokens": 7007, "completion_tokens": 49, "total_tokens": 7056}


def openrouter_stream(usage_choices=None):
    return sse(
        ": OPENROUTER PROCESSING",
        ": OPENROUTER PROCESSING",
        openrouter_chunk({"content": "", "reasoning": None, "reasoning_details": []}),
        openrouter_chunk(reasoning_delta("Okay, the user")),
        openrouter_chunk(reasoning_delta(" says hi.")),
        ": OPENROUTER PROCESSING",
        openrouter_chunk({"content": "There", "reasoning": "", "reasoning_details": []}),
        openrouter_chunk({"content": " you are.", "reasoning": None, "reasoning_details": []}),
        openrouter_chunk({"content": "", "reasoning": None, "reasoning_details": []}, "stop"),
        openrouter_chunk({"content": ""}, choices=usage_choices, usage=OPENROUTER_USAGE),
        "[DONE]",
    )


HF_STREAM = sse(
    hf_chunk({"role": "assistant", "content": ""}),
    hf_chunk({"content": "Hello"}),
    hf_chunk({"content": "!"}),
    hf_chunk({}, "stop"),
    hf_chunk(None, choices=[], usage={"prompt_tokens": 36, "completion_tokens": 3, "total_tokens": 39}),
    "[DONE]",
)


def test_groq_stream_skips_the_role_only_chunk_and_reads_usage_from_the_last_chunk():
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=GROQ_STREAM, content_type="text/event-stream")
        chunks = stream_all(groq())
    assert chunks == [Chunk(text="Int"), Chunk(text="roduction"), Chunk(finish_reason="stop", usage=Usage(45, 607))]


def test_groq_stream_from_2024_has_usage_only_in_x_groq():
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=GROQ_STREAM_2024, content_type="text/event-stream")
        chunks = stream_all(groq())
    assert chunks == [Chunk(text="Hi"), Chunk(finish_reason="stop", usage=Usage(45, 607))]


def test_groq_error_event_under_200_is_raised_after_the_text_before_it():
    body = sse(groq_chunk({"role": "assistant", "content": ""}), groq_chunk({"content": "Calling"}),
               {"error": {"message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' "
                                     "for more details.", "type": "invalid_request_error", "code": "tool_use_failed",
                          "failed_generation": "<function=x>", "status_code": 400}})
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(groq())
    assert chunks == [Chunk(text="Calling")]
    assert error.kind == "error_event"
    assert error.message == ("provider reported an error mid-stream: Failed to call a function. Please adjust your "
                             "prompt. See 'failed_generation' for more details.")


def test_cerebras_reasoning_comes_first_and_is_kept_apart_from_the_answer():
    with mocked() as rsps:
        rsps.post(CEREBRAS_STREAM_URL, body=CEREBRAS_STREAM, content_type="text/event-stream")
        chunks = stream_all(cerebras())
    assert chunks == [
        Chunk(reasoning="The"), Chunk(reasoning=" user is asking about a \""),
        Chunk(text="Paris"), Chunk(text=" is the capital."),
        Chunk(finish_reason="stop", usage=Usage(322, 65)),
    ]


def test_openrouter_keep_alive_comments_are_skipped():
    body = sse(": OPENROUTER PROCESSING", ": OPENROUTER PROCESSING", openrouter_chunk({"content": "Hi"}), "[DONE]")
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=body, content_type="text/event-stream")
        assert stream_all(openrouter()) == [Chunk(text="Hi")]


def test_openrouter_reasoning_is_kept_out_of_the_answer_text():
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=openrouter_stream(), content_type="text/event-stream")
        chunks = stream_all(openrouter())
    assert "".join(c.text for c in chunks) == "There you are."
    assert "".join(c.reasoning for c in chunks) == "Okay, the user says hi."
    assert all(not (c.text and c.reasoning) for c in chunks)


@pytest.mark.parametrize("usage_choices", [None, []], ids=["choice-with-empty-delta", "no-choices"])
def test_openrouter_usage_chunk_after_the_finish_chunk_is_read(usage_choices):
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=openrouter_stream(usage_choices), content_type="text/event-stream")
        chunks = stream_all(openrouter())
    assert chunks[-2:] == [Chunk(finish_reason="stop"), Chunk(usage=Usage(7007, 49))]


def test_openrouter_midstream_error_event_is_raised_after_the_text_before_it():
    body = sse(": OPENROUTER PROCESSING", openrouter_chunk({"content": "Once upon"}),
               openrouter_chunk({"content": " a time"}), OPENROUTER_MIDSTREAM_ERROR)
    with mocked() as rsps:
        rsps.post(OPENROUTER_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(openrouter())
    assert chunks == [Chunk(text="Once upon"), Chunk(text=" a time")]
    assert (error.kind, error.retryable) == ("error_event", True)
    assert error.message == "provider reported an error mid-stream: Provider disconnected unexpectedly"


def test_gemini_crlf_stream_gives_thoughts_as_reasoning_then_text_then_the_finish():
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=GEMINI_STREAM, content_type="text/event-stream")
        chunks = stream_all(gemini_provider())
    assert chunks == [
        Chunk(reasoning="**Counting the letters**", usage=Usage(9, 111)),
        Chunk(text="There are **3** \"r\"s in strawberry.\n\n", usage=Usage(9, 315)),
        Chunk(finish_reason="stop", usage=Usage(9, 316)),
    ]


def test_gemini_stream_ends_without_done_and_the_last_usage_is_the_total():
    # Gemini sends no [DONE]: the answer is over when the body ends after its finish event.
    body = sse(gemini_event([{"text": "Hi"}], {"candidatesTokenCount": 1, "thoughtsTokenCount": 40,
                                                "totalTokenCount": 50}),
               gemini_event([{"text": "", "thoughtSignature": "Ep"}], {"candidatesTokenCount": 2,
                                                                       "thoughtsTokenCount": 40,
                                                                       "totalTokenCount": 51}, finish="STOP"),
               end="\r\n\r\n")
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=body, content_type="text/event-stream")
        chunks = stream_all(gemini_provider())
    # usageMetadata counts up in every event: each chunk carries the running total, the last one the whole.
    assert chunks == [Chunk(text="Hi", usage=Usage(9, 41)), Chunk(finish_reason="stop", usage=Usage(9, 42))]
    last = chunks[-1].usage
    assert last.prompt_tokens + last.completion_tokens == 51  # the last event's totalTokenCount


def test_gemini_midstream_error_event_is_raised_after_the_text_before_it():
    body = sse(gemini_event([{"text": "Partial"}], {"candidatesTokenCount": 1}),
               {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                          "status": "UNAVAILABLE"}}, end="\r\n\r\n")
    with mocked() as rsps:
        rsps.post(GEMINI_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(gemini_provider())
    assert chunks == [Chunk(text="Partial", usage=Usage(9, 1))]
    assert error.kind == "error_event"
    assert error.message == "provider reported an error mid-stream: The model is overloaded. Please try again later."


def test_huggingface_stream_reads_text_finish_and_the_usage_chunk_without_choices():
    with mocked() as rsps:
        rsps.post(HF_STREAM_URL, body=HF_STREAM, content_type="text/event-stream")
        chunks = stream_all(huggingface())
    assert chunks == [Chunk(text="Hello"), Chunk(text="!"), Chunk(finish_reason="stop"), Chunk(usage=Usage(36, 3))]


def test_the_done_marker_ends_the_answer_without_a_chunk_of_its_own():
    body = sse(groq_chunk({"content": "Hi"}), "[DONE]")
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=body)
        assert stream_all(groq()) == [Chunk(text="Hi")]


def test_a_malformed_event_in_the_stream_raises_malformed_after_the_text_before_it():
    body = sse(groq_chunk({"content": "Hi"})) + b'data: {"choices":[{"delta":{"content":\n\n'
    with mocked() as rsps:
        rsps.post(GROQ_STREAM_URL, body=body, content_type="text/event-stream")
        chunks, error = stream_until_error(groq())
    assert chunks == [Chunk(text="Hi")]
    assert error.kind == "malformed"
