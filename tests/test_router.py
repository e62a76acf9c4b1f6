"""The router on its own: which provider a request goes to, and how each provider's health steers that.
Time is the fake clock of `make_router`, so every back-off and reset is exact and nothing sleeps."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from utils.errors import NoProviders, ProviderError, ValidationError
from utils.outcomes import MAX_BACKOFF
from utils.quota import Quota
from utils.state import LocalStore


@dataclass(frozen=True)
class StandIn:
    """What the router reads of a provider; it never calls one."""
    id: str
    configured: bool = True

    @property
    def name(self) -> str:
        return self.id.title()

    @property
    def model(self) -> str:
        return f"{self.id}-model"

    @property
    def env_prefix(self) -> str:
        return self.id.upper()


A, B, C = StandIn("a"), StandIn("b"), StandIn("c")
BROKEN = ProviderError("connection reset", kind="broken")
REFUSED = ProviderError("bad request", upstream_status=400, retryable=False, kind="bad_request")


def busy(retry_after: float | None = None) -> ProviderError:
    return ProviderError("rate limited", upstream_status=429, retry_after=retry_after, kind="rate_limited")


@pytest.fixture
def router(make_router):
    return make_router([A, B, C], failure_threshold=3, failure_cooldown=30.0, probe_seconds=35.0)


def ids(plan) -> str:
    return "".join(p.id for p in plan)


def takes_requests(router, provider) -> bool:
    return provider in router.plan()


def resting_for(router, clock, provider) -> float:
    """Seconds the provider still rests, as /health shows it."""
    until = router.status()[provider.id]["until"]
    return datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() - clock()


def open_circuit(router) -> None:
    for _ in range(router.threshold):
        router.failed(B, BROKEN)


def start_probe(router, clock) -> None:
    """Wait out B's back-off and send it the one request that tests it."""
    clock.advance(resting_for(router, clock, B))
    assert takes_requests(router, B)
    router.attempting(B)


def test_requests_take_turns_over_the_providers_in_order(router):
    assert [ids(router.plan()) for _ in range(4)] == ["abc", "bca", "cab", "abc"]


def test_max_attempts_shortens_each_plan_but_not_the_rotation(router):
    assert [ids(router.plan(max_attempts=2)) for _ in range(3)] == ["ab", "bc", "ca"]


def test_a_provider_cooling_down_is_skipped_and_rejoins_the_rotation_after(router, clock):
    router.failed(B, busy(retry_after=10))
    assert [ids(router.plan()) for _ in range(3)] == ["ac", "ca", "ac"]
    clock.advance(10)
    assert ids(router.plan()) == "bca"  # the turn after a, as if b had never left


def test_a_429_rests_the_provider_exactly_as_long_as_it_asked(router, clock):
    router.failed(B, busy(retry_after=7))
    clock.advance(6)
    assert not takes_requests(router, B)
    clock.advance(1)
    assert takes_requests(router, B)


def test_a_429_without_retry_after_rests_the_provider_for_the_failure_cooldown(router, clock):
    router.failed(B, busy())
    assert resting_for(router, clock, B) == 30


def test_429s_are_not_failures_so_they_never_open_the_circuit(router, clock):
    for _ in range(5):
        router.failed(B, busy(retry_after=1))
        clock.advance(1)
    assert router.status()[B.id]["state"] == "ok"


def test_failures_below_the_threshold_leave_the_provider_in_the_rotation(router):
    router.failed(B, BROKEN)
    router.failed(B, BROKEN)
    state = router.status()[B.id]
    assert (state["state"], state["failures"]) == ("failing", 2)
    assert takes_requests(router, B)


def test_threshold_failures_in_a_row_open_the_circuit_for_the_failure_cooldown(router, clock):
    open_circuit(router)
    assert router.status()[B.id]["state"] == "cooling_down"
    assert resting_for(router, clock, B) == 30


def test_each_opening_doubles_the_back_off_up_to_the_maximum(router, clock):
    open_circuit(router)
    back_offs = [resting_for(router, clock, B)]
    for _ in range(6):
        start_probe(router, clock)
        router.failed(B, BROKEN)
        back_offs.append(resting_for(router, clock, B))
    assert back_offs == [30, 60, 120, 240, 480, MAX_BACKOFF, MAX_BACKOFF]


def test_after_the_back_off_one_probe_goes_through_and_other_requests_skip_the_provider(router, clock):
    open_circuit(router)
    start_probe(router, clock)
    assert [ids(router.plan()) for _ in range(2)] == ["ca", "ac"]
    # The probe's hold lasts as long as a request may take to show its first token, then frees itself.
    clock.advance(35)
    assert takes_requests(router, B)


def test_a_successful_probe_closes_the_circuit_and_forgets_the_back_off(router, clock):
    open_circuit(router)
    start_probe(router, clock)
    router.succeeded(B)
    assert router.status()[B.id]["state"] == "ok"
    open_circuit(router)
    assert resting_for(router, clock, B) == 30


def test_a_failed_probe_reopens_the_circuit_at_once_with_a_doubled_back_off(router, clock):
    open_circuit(router)
    start_probe(router, clock)
    router.failed(B, BROKEN)
    assert resting_for(router, clock, B) == 60


def test_a_probe_whose_client_left_frees_the_provider_for_the_next_request(router, clock):
    open_circuit(router)
    start_probe(router, clock)
    router.released(B)
    assert takes_requests(router, B)


def test_releasing_a_provider_that_was_not_probed_changes_nothing(router):
    router.released(B)
    assert router.status()[B.id]["state"] == "ok"


def test_a_request_naming_a_provider_in_back_off_does_not_shorten_the_back_off(router, clock):
    open_circuit(router)
    start_probe(router, clock)
    router.failed(B, BROKEN)  # second opening: 60 s
    [named] = router.plan_named(B.id, fallback=False)
    router.attempting(named)
    assert resting_for(router, clock, B) == 60


def test_a_success_closes_a_circuit_another_worker_opened_meanwhile(router, make_router):
    other_worker = make_router([A, B, C], store=router.store)
    router.plan()  # this worker sees b healthy and sends it a request
    for _ in range(other_worker.threshold):
        other_worker.failed(B, BROKEN)
    router.succeeded(B)  # b answered after all
    assert other_worker.status()[B.id]["state"] == "ok"


def test_an_error_that_is_the_requests_fault_leaves_the_providers_health_alone(router):
    for _ in range(5):
        router.failed(B, REFUSED)
    assert router.status()[B.id]["state"] == "ok"
    assert takes_requests(router, B)


def test_a_provider_out_of_requests_is_skipped_until_its_quota_resets(router, clock):
    router.observe(B, Quota(remaining_requests=0, requests_reset=clock() + 20))
    assert router.status()[B.id]["state"] == "cooling_down"
    clock.advance(19)
    assert not takes_requests(router, B)
    clock.advance(1)
    assert takes_requests(router, B)


def test_a_provider_with_tokens_left_takes_only_prompts_that_fit(router, clock):
    router.observe(B, Quota(remaining_tokens=100, tokens_reset=clock() + 60))
    assert B in router.plan(tokens=100)
    assert B not in router.plan(tokens=101)
    clock.advance(60)
    assert B in router.plan(tokens=101)


def test_a_quota_that_says_nothing_about_what_remains_is_not_kept(router, clock):
    router.observe(B, Quota(retry_at=clock() + 60))
    assert router.status()[B.id]["quota"]["remainingRequests"] is None
    assert takes_requests(router, B)


def test_an_error_naming_when_to_retry_rests_the_provider_until_then(router, clock):
    router.failed(B, ProviderError("daily quota", upstream_status=429, kind="rate_limited",
                                   quota=Quota(retry_at=clock() + 3600, reason="requests_per_day")))
    assert router.status()[B.id]["reason"] == "requests_per_day"
    assert resting_for(router, clock, B) == 3600


def test_a_quota_no_retry_can_fix_takes_the_provider_out_until_restart(router, clock):
    router.failed(B, ProviderError("credits gone", upstream_status=402, kind="payment_required",
                                   quota=Quota(out_until_restart=True, reason="credits_exhausted")))
    clock.advance(10 * MAX_BACKOFF)
    assert not takes_requests(router, B)
    state = router.status()[B.id]
    assert (state["state"], state["until"], state["reason"]) == ("cooling_down", None, "credits_exhausted")


def test_a_missing_model_takes_the_provider_out_and_names_the_setting_to_change(router, clock):
    router.model_missing(B, ["b-model-2"])
    clock.advance(10 * MAX_BACKOFF)
    assert not takes_requests(router, B)
    state = router.status()[B.id]
    assert (state["until"], state["reason"]) == (None, "model_not_found")
    assert "B_MODEL" in state["detail"] and "b-model-2" in state["detail"]


def test_a_model_gone_error_takes_the_provider_out_like_a_missing_model(router, clock):
    router.failed(B, ProviderError("no such model", upstream_status=404, kind="model_not_found", model_gone=True))
    clock.advance(10 * MAX_BACKOFF)
    assert not takes_requests(router, B)


def test_the_model_offered_again_brings_the_provider_back(router):
    router.model_missing(B, [])
    router.model_offered(B)
    assert router.status()[B.id]["state"] == "ok"
    assert takes_requests(router, B)


def test_the_model_offered_does_not_lift_a_rest_for_another_reason(router):
    router.failed(B, busy(retry_after=60))
    router.model_offered(B)
    assert not takes_requests(router, B)


def test_a_named_provider_is_used_alone_even_while_it_cools_down(router):
    open_circuit(router)
    assert ids(router.plan_named("b", fallback=False)) == "b"


def test_a_named_provider_with_fallback_goes_first_then_the_rotation_after_it(router):
    assert ids(router.plan_named("b", fallback=True)) == "bca"
    assert ids(router.plan_named("b", fallback=True, max_attempts=2)) == "bc"


def test_a_named_provider_with_fallback_is_passed_over_while_it_cools_down(router):
    open_circuit(router)
    assert ids(router.plan_named("b", fallback=True)) == "ca"


def test_naming_a_provider_does_not_move_the_rotation(router):
    router.plan_named("c", fallback=True)
    assert ids(router.plan()) == "abc"


def test_an_unknown_provider_name_is_refused_listing_the_valid_ones(router):
    with pytest.raises(ValidationError, match="Unknown provider 'z'. Valid providers: a, b, c"):
        router.plan_named("z", fallback=False)


def test_a_provider_without_a_key_cannot_be_named(make_router):
    router = make_router([A, StandIn("off", configured=False)])
    with pytest.raises(ValidationError, match="not configured"):
        router.plan_named("off", fallback=True)
    assert ids(router.plan()) == "a"


def test_no_configured_provider_means_no_plan(make_router):
    with pytest.raises(NoProviders, match="No AI provider is configured"):
        make_router([StandIn("off", configured=False)]).plan()


def test_every_provider_cooling_down_means_no_plan(router):
    for provider in (A, B, C):
        router.failed(provider, busy())
    with pytest.raises(NoProviders, match="All providers are cooling down"):
        router.plan()
    with pytest.raises(NoProviders):
        router.plan_named("b", fallback=True)


def test_a_failover_that_answered_moves_the_rotation_past_it(router):
    router.plan()  # a's turn; say a failed and b answered instead
    router.answered_instead(B)
    assert ids(router.plan()) == "cab"


def test_a_rotation_step_taken_on_what_this_worker_last_saw_is_taken_again_when_another_worker_saw_more(
        make_router):
    """The rotation steps in the round trip that reads the state afresh, over the providers this worker last saw
    able; a provider another worker has since seen fail is stepped over again, not planned first."""
    shared = LocalStore()
    serving, other = (make_router([A, B, C], store=shared, failure_threshold=1) for _ in range(2))
    assert ids(serving.plan()) == "abc"  # serving has seen all three able; the cursor is on a
    other.failed(B, BROKEN)  # b's circuit opens, as only the other worker knows
    assert ids(serving.plan()) == "ca"  # the step landed on b, which the fresh state has out: stepped again
    assert ids(serving.plan()) == "ac"
