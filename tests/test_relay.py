"""The relay on its own: trying the planned providers until one answers, and recording every attempt once,
in /metrics, in the router's circuits and against the caller's key. Providers are scripted fakes; the
router, metrics and key store are the real ones, on the fake clock and a SQLite file of the test's own."""
from __future__ import annotations

import pytest

from utils.chat import ChatRequest, Chunk, Message, Usage
from utils.disconnect import ClientGone
from utils.errors import ProviderError, UpstreamFailed
from utils.keys import KeyStore, hash_key
from utils.metrics import Metrics
from utils.quota import Quota
from utils.relay import Relay

HI = ChatRequest(messages=(Message("user", "hi"),))


# Fresh errors for each script: an exception raised carries its traceback along from then on.
def broken() -> ProviderError:
    return ProviderError("connection reset", kind="broken")


def refused() -> ProviderError:
    return ProviderError("bad request", upstream_status=400, retryable=False, kind="bad_request")


class FakeProvider:
    """A provider that plays back what the test enqueued, one script per request: a list of chunks to
    yield, where an exception is raised when its turn comes and a Quota is reported to `observe`;
    or a lone exception, raised before any chunk."""

    configured = True

    def __init__(self, provider_id: str):
        self.id = provider_id
        self.name = provider_id.title()
        self.model = f"{provider_id}-model"
        self.env_prefix = provider_id.upper()
        self.requests = 0
        self.open_streams = 0  # answers started and not yet finished or closed: upstream connections held
        self._scripts: list = []

    def enqueue(self, *scripts) -> None:
        self._scripts.extend(scripts)

    def stream(self, request: ChatRequest, observe=None, key=1):
        assert self._scripts, f"{self.name} got a request the test did not enqueue an answer for"
        self.requests += 1
        script = self._scripts.pop(0)
        return self._play(script if isinstance(script, list) else [script], observe)

    def _play(self, script, observe):
        self.open_streams += 1
        try:
            for item in script:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Quota):
                    observe(item)
                else:
                    yield item
        finally:
            self.open_streams -= 1


@pytest.fixture
def providers():
    return [FakeProvider("a"), FakeProvider("b"), FakeProvider("c")]


@pytest.fixture
def router(make_router, providers):
    return make_router(providers, failure_threshold=3, failure_cooldown=30.0, probe_seconds=35.0)


@pytest.fixture
def metrics(router, providers):
    return Metrics([p.name for p in providers], router.store)


@pytest.fixture
def keys(tmp_path):
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    yield store
    store.close()


@pytest.fixture
def relay(router, metrics, keys):
    return Relay(router, metrics, keys)


def ask(relay, **options):
    return relay.answer(HI, relay.router.plan(), **options)


def text(answer) -> str:
    return "".join(chunk.text for chunk in answer)


def recorded(metrics, provider) -> dict:
    """The provider's counters in /metrics that are not zero."""
    summary = metrics.snapshot()["services"][provider.name]
    counters = ("requests", "errors", "failovers", "timeouts", "midstreamFailures", "promptTokens",
                "completionTokens")
    return {name: summary[name] for name in counters if summary[name]}


def health(router, provider) -> str:
    return router.status()[provider.id]["state"]


def test_a_provider_failing_before_anything_visible_hands_the_request_to_the_next(relay, providers):
    a, b, _ = providers
    # Usage alone or an empty text is nothing the client could have seen: failing over is still possible.
    a.enqueue([Chunk(usage=Usage(3, 0)), Chunk(text=""), broken()])
    b.enqueue([Chunk("Hello"), Chunk(" there", finish_reason="stop")])
    answer = ask(relay)
    assert (answer.provider, answer.attempts) == (b, 2)
    assert text(answer) == "Hello there"
    assert a.open_streams == b.open_streams == 0


def test_reasoning_is_not_the_first_chunk_when_the_caller_counts_only_text(relay, providers):
    a, b, _ = providers
    a.enqueue([Chunk(reasoning="Let me think"), broken()])
    b.enqueue([Chunk("Hi")])
    answer = ask(relay, visible=lambda chunk: bool(chunk.text))  # /chat's rule: it shows no reasoning
    assert answer.provider == b


def test_a_provider_that_finishes_without_a_visible_chunk_has_still_answered(relay, providers):
    a, b, _ = providers
    a.enqueue([Chunk(finish_reason="stop")])
    answer = ask(relay)
    assert (answer.provider, text(answer), answer.outcome) == (a, "", "ok")
    assert b.requests == 0


def test_an_answer_without_a_visible_chunk_keeps_its_usage_and_finish_reason(relay, providers, metrics):
    a, _, _ = providers
    a.enqueue([Chunk(finish_reason="content_filter", usage=Usage(10, 0))])
    answer = ask(relay)
    list(answer)
    assert (answer.usage, answer.finish_reason) == (Usage(10, 0), "content_filter")


def test_a_request_the_provider_refuses_as_the_clients_fault_is_raised_without_trying_others(
        relay, providers, metrics, router):
    a, b, _ = providers
    error = refused()
    a.enqueue(error)
    with pytest.raises(ProviderError) as raised:
        ask(relay)
    assert raised.value is error
    assert b.requests == 0
    # A call, not an error: the provider did its job.
    assert recorded(metrics, a) == {"requests": 1}
    assert health(router, a) == "ok"


def test_when_every_provider_fails_the_request_fails_and_each_attempt_is_recorded_once(
        relay, providers, metrics, router):
    a, b, c = providers
    a.enqueue(broken())
    b.enqueue(broken())
    c.enqueue(ProviderError("no first token in time", kind="timeout"))
    with pytest.raises(UpstreamFailed, match=r"All providers failed \(3 tried\)"):
        ask(relay)
    assert metrics.snapshot()["totalRequests"] == 1
    assert recorded(metrics, a) == recorded(metrics, b) == {"requests": 1, "errors": 1, "failovers": 1}
    # The last attempt handed the request to nobody.
    assert recorded(metrics, c) == {"requests": 1, "errors": 1, "timeouts": 1}
    assert [router.status()[p.id].get("failures") for p in providers] == [1, 1, 1]


def test_an_answer_is_recorded_when_it_ends_not_when_it_starts(relay, providers, metrics):
    a, _, _ = providers
    a.enqueue([Chunk("Hi"), Chunk(finish_reason="stop", usage=Usage(10, 5))])
    answer = ask(relay)
    assert recorded(metrics, a) == {}
    text(answer)
    assert answer.outcome == "ok"
    assert recorded(metrics, a) == {"requests": 1, "promptTokens": 10, "completionTokens": 5}


def test_a_finished_answer_closes_the_providers_circuit(relay, providers, router):
    a, _, _ = providers
    router.failed(a, broken())
    router.failed(a, broken())
    a.enqueue([Chunk("Hi")])
    text(ask(relay))
    assert health(router, a) == "ok"


def test_an_answer_from_a_failover_moves_the_rotation_past_it(relay, providers, router):
    a, b, _ = providers
    a.enqueue(broken())
    b.enqueue([Chunk("Hi")])
    text(ask(relay))
    # Without the move, b would come first again and c would lose its turn.
    assert [p.id for p in router.plan()] == ["c", "a", "b"]


def test_a_failure_after_the_first_visible_chunk_breaks_the_answer(relay, providers, metrics, router):
    a, b, _ = providers
    a.enqueue([Chunk("Hel"), broken()])
    answer = ask(relay)
    received = []
    with pytest.raises(ProviderError, match="connection reset"):
        for chunk in answer:
            received.append(chunk.text)
    assert (received, answer.outcome) == (["Hel"], "midstream")
    assert b.requests == 0  # the client has part of a's answer: nobody else can take over
    assert recorded(metrics, a) == {"requests": 1, "errors": 1, "midstreamFailures": 1}
    assert router.status()[a.id]["failures"] == 1


def open_and_wait_out(router, clock, provider) -> None:
    """Open the provider's circuit and let its back-off pass, so that its next request is the probe."""
    for _ in range(router.threshold):
        router.failed(provider, broken())
    clock.advance(router.cooldown)


def test_an_answer_the_client_abandons_is_recorded_as_closed_and_frees_the_probe(
        relay, providers, metrics, router, clock):
    _, b, _ = providers
    open_and_wait_out(router, clock, b)
    b.enqueue([Chunk("Hel"), Chunk("lo")])
    answer = relay.answer(HI, router.plan_named("b", fallback=True))
    assert b not in router.plan()  # the probe holds b while it runs
    chunks = iter(answer)
    next(chunks)
    chunks.close()  # what the server does when the client goes away
    assert answer.outcome == "client_closed"
    assert b.open_streams == 0
    assert recorded(metrics, b) == {"requests": 1}
    assert b in router.plan()


def test_a_client_leaving_before_the_first_chunk_frees_the_provider(relay, providers, router, clock):
    _, b, _ = providers
    open_and_wait_out(router, clock, b)
    b.enqueue(ClientGone())
    with pytest.raises(ClientGone):
        relay.answer(HI, router.plan_named("b", fallback=True))
    assert b.open_streams == 0
    assert b in router.plan()


def test_the_key_is_charged_once_per_answer_with_the_answers_usage(relay, providers, keys):
    a, b, _ = providers
    key_hash = hash_key(keys.create("alice"))
    a.enqueue(broken())
    b.enqueue([Chunk("Hi"), Chunk(finish_reason="stop", usage=Usage(10, 5))])
    text(ask(relay, key_hash=key_hash))
    [entry] = keys.list()
    assert (entry["requestCount"], entry["promptTokens"], entry["completionTokens"]) == (1, 10, 5)


def test_what_an_answer_says_about_the_providers_quota_reaches_the_router(relay, providers, router, clock):
    a, _, _ = providers
    a.enqueue([Quota(remaining_requests=0, requests_reset=clock() + 60), Chunk("Hi")])
    text(ask(relay))
    assert a not in router.plan()
