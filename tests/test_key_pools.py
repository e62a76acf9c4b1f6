"""Provider key pools (`GROQ_API_KEY=k1,k2`): each key its own account, used in turn, taken out or rested alone;
the provider rests only when all its keys do. In process on a fake clock, then through a gateway on the fake."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import requests

from providers.base import ProviderSettings
from tests.fakeprovider import Reply
from tests.gateway import health_state
from utils.errors import ProviderError
from utils.metrics import Metrics
from utils.settings import load_settings
from utils.state import LocalStore

# Not shaped like a provider key, so only the gateway's knowledge of its pool can hide them.
FIRST, SECOND = "team-alpha-account-0001", "team-beta-account-0002"
REFUSED_KEY = ProviderError("invalid api key", upstream_status=401, kind="http_401")
NO_CREDIT = ProviderError("out of credit", upstream_status=402, kind="http_402")


def busy(retry_after: float) -> ProviderError:
    return ProviderError("rate limited", upstream_status=429, retry_after=retry_after, kind="rate_limited")


@dataclass(frozen=True)
class Pooled:
    """What the router reads of a provider with a pool of keys."""
    id: str
    keys: tuple[str, ...] = ("k1", "k2")
    configured: bool = True
    name: str = "Pooled"
    model: str = "pooled-model"
    env_prefix: str = "POOLED"
    key_setting: str = "POOLED_API_KEY"
    settings: ProviderSettings = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "settings", ProviderSettings(self.id, self.keys[0], "", self.model,
                                                              api_keys=self.keys))


P, Q = Pooled("p"), Pooled("q", keys=("single",))


def test_settings_read_a_comma_separated_key_list():
    settings = load_settings({"GROQ_API_KEY": f" {FIRST}, ,{SECOND} ", "GEMINI_API_KEY": "one"})
    groq, gemini = settings.provider("groq"), settings.provider("gemini")
    assert (groq.api_key, groq.keys, groq.key(2)) == (FIRST, (FIRST, SECOND), SECOND)
    assert (gemini.api_key, gemini.keys) == ("one", ("one",))
    assert settings.provider("cerebras").keys == () and not settings.provider("cerebras").configured


def test_the_keys_of_a_pool_are_used_in_turn(make_router):
    router = make_router([P, Q])
    assert [router.attempting(P) for _ in range(5)] == [1, 2, 1, 2, 1]
    assert [router.attempting(Q) for _ in range(2)] == [1, 1]


def test_a_plan_tries_each_serving_key_of_a_pool(make_router):
    router = make_router([P, Q])
    assert router.plan() == [P, P, Q] and router.plan() == [Q, P, P]
    assert router.plan(max_attempts=2) == [P, P]
    assert router.plan_named("p", fallback=False) == [P, P]
    router.failed(P, REFUSED_KEY, key=2)
    assert router.plan() == [Q, P] and router.plan_named("p", fallback=False) == [P]


def test_a_refused_key_is_taken_out_alone_and_named_never_shown(make_router, clock, gateway_log):
    router = make_router([P, Q])
    router.failed(P, REFUSED_KEY, key=1)
    written = list(gateway_log.records)
    assert [router.attempting(P) for _ in range(3)] == [2, 2, 2]
    status = router.status()["p"]
    assert status["state"] == "ok" and P in router.plan()
    assert status["keys"][0] == {"index": 1, "state": "cooling_down", "until": None, "reason": "http_401",
                                 "detail": status["keys"][0]["detail"]}
    assert "POOLED_API_KEY #1" in status["keys"][0]["detail"] and status["keys"][1] == {"index": 2, "state": "ok"}
    named = [r for r in written if getattr(r, "key", None) == "POOLED_API_KEY #1"]
    assert named and all("k1" not in str(vars(r).values()) for r in written)
    # Still out much later (until an operator acts), and the other key's out of credit takes all of it out.
    clock.advance(86_400)
    assert router.status()["p"]["keys"][0]["state"] == "cooling_down"
    router.failed(P, NO_CREDIT, key=2)
    assert router.status()["p"]["state"] == "cooling_down" and P not in router.plan()
    router.reset(P)
    assert [k["state"] for k in router.status()["p"]["keys"]] == ["ok", "ok"] and P in router.plan()


def test_the_provider_rests_only_when_all_its_keys_do(make_router, clock):
    router = make_router([P, Q])
    router.failed(P, busy(10), key=1)
    assert router.status()["p"]["state"] == "ok" and P in router.plan()
    assert router.attempting(P) == 2
    router.failed(P, busy(20), key=2)
    status = router.status()["p"]
    assert status["state"] == "cooling_down" and [k["state"] for k in status["keys"]] == ["cooling_down"] * 2
    assert P not in router.plan()
    clock.advance(11)  # key 1's rest is over, by itself
    assert router.status()["p"]["state"] == "ok" and P in router.plan()
    assert [router.attempting(P) for _ in range(2)] == [1, 1]
    clock.advance(10)
    assert [k["state"] for k in router.status()["p"]["keys"]] == ["ok", "ok"]


def test_failures_count_per_key(make_router):
    router = make_router([P, Q], failure_threshold=2)
    broken = ProviderError("connection reset", kind="broken")
    router.failed(P, broken, key=1)
    router.failed(P, broken, key=2)
    assert [k["state"] for k in router.status()["p"]["keys"]] == ["failing", "failing"]
    router.failed(P, broken, key=1)  # key 1's second in a row: its circuit opens, key 2 carries on
    assert [k["state"] for k in router.status()["p"]["keys"]] == ["cooling_down", "failing"]
    assert router.status()["p"]["state"] == "failing" and P in router.plan()
    router.succeeded(P, key=2)
    assert router.status()["p"]["state"] == "ok"


def test_a_single_key_keeps_the_provider_circuit(make_router):
    router = make_router([P, Q])
    router.failed(Q, busy(10))
    assert router.store.read(["circuit:q"])[0]["reason"] == "rate_limited"
    assert router.status()["q"]["keys"] == [{"index": 1, **{k: v for k, v in router.status()["q"].items()
                                                           if k not in ("quota", "keys")}}]


def test_metrics_count_per_key_index():
    metrics = Metrics(["Groq"], LocalStore())
    metrics.record_attempt("Groq", ok=True, duration_ms=5, prompt_tokens=3, completion_tokens=2, key=2)
    metrics.record_attempt("Groq", ok=False, duration_ms=5, failure="broken", key=1)
    keys = metrics.snapshot()["services"]["Groq"]["keys"]
    assert keys == {"1": {"requests": 1, "errors": 1, "promptTokens": 0, "completionTokens": 0},
                    "2": {"requests": 1, "errors": 0, "promptTokens": 3, "completionTokens": 2}}


def test_a_gateway_alternates_keys_takes_a_refused_one_out_and_rests_on_429s(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], GROQ_API_KEY=f"{FIRST},{SECOND}", RATE_LIMIT_MAX=100)
    assert [gateway.post_chat().status_code for _ in range(4)] == [200] * 4
    assert [r.headers["authorization"] for r in fake.chat_requests("groq")] == [
        f"Bearer {FIRST}", f"Bearer {SECOND}", f"Bearer {FIRST}", f"Bearer {SECOND}"]
    assert health_state(gateway, "groq")["keys"] == [{"index": 1, "state": "ok"}, {"index": 2, "state": "ok"}]

    fake.enqueue("groq", Reply(status=401, body={"error": {"message": f"Invalid API Key {FIRST}"}}))
    refused = gateway.post_chat()  # key 1 refused: the same request goes on with key 2
    assert (refused.status_code, refused.text, refused.headers["X-Attempts"]) == (200, "Hello from groq", "2")
    assert [gateway.post_chat().text for _ in range(3)] == ["Hello from groq"] * 3
    assert [r.headers["authorization"] for r in fake.chat_requests("groq")[-5:]] == [
        f"Bearer {FIRST}", *[f"Bearer {SECOND}"] * 4]
    state = health_state(gateway, "groq")
    assert state["state"] == "ok" and [k["state"] for k in state["keys"]] == ["cooling_down", "ok"]
    assert "GROQ_API_KEY #1" in gateway.log() and FIRST not in gateway.log() and SECOND not in gateway.log()

    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).json()["services"]["Groq"]["keys"]
    assert (metrics["1"]["requests"], metrics["1"]["errors"], metrics["2"]["requests"]) == (3, 1, 6)
    prometheus = requests.get(f"{gateway.url}/metrics/prometheus", timeout=5).text
    assert re.search(r'^gateway_provider_key_requests_total\{(?=.*key="2")(?=.*provider="groq").*\} 6\.0$',
                     prometheus, re.MULTILINE), prometheus


def test_a_gateway_rests_groq_only_when_both_keys_rest(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], GROQ_API_KEY=f"{FIRST},{SECOND}", RATE_LIMIT_MAX=100)
    fake.enqueue("groq", Reply(status=429, headers={"retry-after": "60"}))
    assert gateway.post_chat().text == "Hello from groq"  # key 1 rests: the same request goes on with key 2
    assert health_state(gateway, "groq")["state"] == "ok"
    assert gateway.post_chat().text == "Hello from groq"
    fake.enqueue("groq", Reply(status=429, headers={"retry-after": "60"}))
    assert gateway.post_chat().status_code >= 400  # key 2 rests too, and no key is left for this request
    assert [r.headers["authorization"] for r in fake.chat_requests("groq")] == [
        f"Bearer {FIRST}", f"Bearer {SECOND}", f"Bearer {SECOND}", f"Bearer {SECOND}"]
    state = health_state(gateway, "groq")
    assert state["state"] == "cooling_down" and [k["state"] for k in state["keys"]] == ["cooling_down"] * 2
    assert all(k["until"] for k in state["keys"]), state
    assert requests.get(f"{gateway.url}/health", timeout=5).json()["status"] == "down"


def test_an_error_echoing_any_key_of_the_pool_reaches_the_client_without_it(start_gateway, fake):
    gateway = start_gateway(providers=["groq"], GROQ_API_KEY=f"{FIRST},{SECOND}", RATE_LIMIT_MAX=100)
    fake.enqueue("groq", Reply(status=400, echo_key=True, times=2))
    answers = [gateway.post_chat() for _ in range(2)]
    assert [r.headers["authorization"] for r in fake.chat_requests("groq")] == [f"Bearer {FIRST}", f"Bearer {SECOND}"]
    for response in answers:
        assert response.status_code == 400 and "[redacted]" in response.text, response.text
        assert FIRST not in response.text and SECOND not in response.text
    assert FIRST not in gateway.log() and SECOND not in gateway.log()
