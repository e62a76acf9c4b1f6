"""Getting an answer for one request: try the planned providers in order until one produces its first
chunk (failover is only possible while nothing has reached the client), then relay the rest.

Every attempt is recorded once, in metrics and in the router's circuit state; the answer that is
relayed records itself when it ends (finished, broken mid-stream, or abandoned by the client).
"""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from functools import partial

from providers.base import Provider
from providers.embeddings import Embeddings, embed
from utils.chat import ChatRequest, Chunk, Usage
from utils.disconnect import watch_client
from utils.errors import GatewayError, ProviderError, UpstreamFailed
from utils.keys import KeyStore
from utils.metrics import Metrics
from utils.router import Router

log = logging.getLogger("gateway")


class Answer:
    """A provider's answer, its first chunk already received. Iterate it once to relay the chunks."""

    def __init__(self, relay: Relay, provider: Provider, chunks: Iterator[Chunk], first: Chunk | None,
                 attempts: int, started: float, key_hash: str | None, client: socket.socket | None = None,
                 key: int = 1):
        self.ttft_ms = (time.monotonic() - started) * 1000
        self.relay = relay
        self.provider = provider
        self.attempts = attempts
        self.key = key  # the provider's key (of its pool) that answers
        self.outcome = "streaming"  # then: ok | midstream | client_closed
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._chunks = chunks
        self._first = first
        self._started = started
        self._key_hash = key_hash
        self._error: ProviderError | None = None
        self._client = client
        # Set when a failure partway can still go to another provider (nothing reached the client yet).
        self.can_fail_over = False
        # Called with the usage once the answer ends, however it ends (key budgets: tokens, concurrency).
        self.on_end: Callable[[Usage], None] | None = None

    def __iter__(self) -> Iterator[Chunk]:
        stop_watching = watch_client(self._client)
        try:
            if self._first is not None:
                yield self.track(self._first)
            for chunk in self._chunks:  # track(), inlined: this loop runs once per chunk relayed
                if chunk.usage:
                    self.usage = chunk.usage
                if chunk.finish_reason:
                    self.finish_reason = chunk.finish_reason
                yield chunk
            self.outcome = "ok"
        except ProviderError as exc:
            self.outcome = "midstream"
            self._error = exc
            log.warning("provider failed mid-stream", extra={"service": self.provider.name, "reason": exc.kind})
            raise
        finally:
            stop_watching()
            self._chunks.close()  # closes the upstream connection
            if self.outcome == "streaming":
                self.outcome = "client_closed"
            try:
                self._record()
            except GatewayError as exc:  # e.g. Redis went away: the answer itself was delivered
                log.error("could not record a finished answer", extra={"reason": exc.message})
            finally:
                if self.on_end is not None:
                    try:
                        self.on_end(self.usage or Usage())
                    except GatewayError as exc:
                        log.error("could not count a finished answer", extra={"reason": exc.message})

    def track(self, chunk: Chunk) -> Chunk:
        self.usage = chunk.usage or self.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason
        return chunk

    def _record(self) -> None:
        relay, usage = self.relay, self.usage or Usage()
        if self.outcome == "ok":
            relay.router.succeeded(self.provider, self.key)
        elif self.outcome == "client_closed":
            relay.router.released(self.provider, self.key)
        else:
            relay.router.failed(self.provider, self._error, self.key)
        relay.metrics.record_attempt(
            self.provider.name, ok=self.outcome != "midstream", duration_ms=(time.monotonic() - self._started) * 1000,
            failure=self._error.kind if self._error else None, midstream=self._error is not None,
            failed_over=self._error is not None and self.can_fail_over,
            ttft_ms=self.ttft_ms, key=self.key,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
        if self._key_hash and self._error is not None and self.can_fail_over:
            relay.keys.record_call(self._key_hash, self.provider.id)  # another provider takes the request
        elif self._key_hash:
            relay.keys.record_use(self._key_hash, usage.prompt_tokens, usage.completion_tokens,
                                  provider=self.provider.id, error=self._error is not None)


class Relay:
    def __init__(self, router: Router, metrics: Metrics, keys: KeyStore):
        self.router = router
        self.metrics = metrics
        self.keys = keys

    def answer(self, request: ChatRequest, plan: list[Provider], *, key_hash: str | None = None,
               client: socket.socket | None = None,
               visible: Callable[[Chunk], bool] = lambda chunk: bool(chunk.text or chunk.reasoning)) -> Answer:
        """Try `plan` in order; the first provider to produce a visible chunk (or finish) answers.
        Raises the provider's error when the request itself was refused, else UpstreamFailed."""
        self.metrics.count_request()
        return self._first_answer(request, plan, 0, key_hash, client, visible)

    def whole_answer(self, request: ChatRequest, plan: list[Provider], *, key_hash: str | None = None,
                     client: socket.socket | None = None,
                     visible: Callable[[Chunk], bool]) -> tuple[Answer, list[Chunk]]:
        """The whole answer, for a client that waits for all of it: since nothing reaches that client
        before the end, a provider failing partway is one more failure to fail over from."""
        self.metrics.count_request()
        tried = 0
        while True:
            answer = self._first_answer(request, plan[tried:], tried, key_hash, client, visible)
            tried = answer.attempts
            answer.can_fail_over = tried < len(plan)
            try:
                return answer, list(answer)
            except ProviderError as exc:
                if not (exc.retryable and answer.can_fail_over):
                    raise UpstreamFailed(f"{answer.provider.name} failed mid-answer", code="provider_error") from None

    def _first_answer(self, request: ChatRequest, plan: list[Provider], tried: int, key_hash: str | None,
                      client: socket.socket | None, visible: Callable[[Chunk], bool]) -> Answer:
        for attempt, provider in enumerate(plan, tried + 1):
            started = time.monotonic()
            log.debug("trying provider", extra={"service": provider.name, "attempt": attempt})
            key = self.router.attempting(provider)
            chunks = provider.stream(request, observe=partial(self.router.observe, provider, key=key), key=key)
            first, skipped = None, []  # chunks before the first visible one: their usage and finish count
            stop_watching = watch_client(client)  # a client leaving while the provider is silent frees it at once
            try:
                for chunk in chunks:
                    if visible(chunk):
                        first = chunk
                        break
                    skipped.append(chunk)
            except ProviderError as exc:
                chunks.close()
                last = attempt == tried + len(plan) or not exc.retryable
                self._failed(provider, exc, started, failed_over=not last, key=key)
                self._count_call(key_hash, provider, exc)
                if not exc.retryable:
                    raise
                continue
            except BaseException:  # the client left while we waited: free the provider
                chunks.close()
                self.router.released(provider, key)
                raise
            finally:
                stop_watching()
            if attempt > 1:
                self.router.answered_instead(provider)
            answer = Answer(self, provider, chunks, first, attempt, started, key_hash, client, key)
            for chunk in skipped:
                answer.track(chunk)
            return answer
        raise UpstreamFailed(f"All providers failed ({tried + len(plan)} tried)")

    def embeddings(self, texts: list[str], plan: list[Provider], *, model: str | None, dimensions: int | None,
                   key_hash: str | None = None) -> tuple[Provider, Embeddings, int]:
        """Embeddings from the first provider in `plan` that answers: the provider, its vectors, and how
        many providers were tried. Failover, metrics and key usage as for a chat answer."""
        self.metrics.count_request()
        for attempt, provider in enumerate(plan, 1):
            started = time.monotonic()
            key = self.router.attempting(provider)
            try:
                result = embed(provider, texts, model, dimensions, key)
            except ProviderError as exc:
                self._failed(provider, exc, started, failed_over=exc.retryable and attempt < len(plan), key=key)
                self._count_call(key_hash, provider, exc)
                if not exc.retryable:
                    raise
                continue
            except BaseException:  # the client left while we waited: free the provider
                self.router.released(provider, key)
                raise
            self.router.succeeded(provider, key)
            self.metrics.record_attempt(provider.name, ok=True, duration_ms=(time.monotonic() - started) * 1000,
                                        prompt_tokens=result.prompt_tokens, key=key)
            if key_hash:
                self.keys.record_use(key_hash, result.prompt_tokens, 0, provider=provider.id)
            return provider, result, attempt
        raise UpstreamFailed(f"All providers failed ({len(plan)} tried)")

    def _count_call(self, key_hash: str | None, provider: Provider, exc: ProviderError) -> None:
        """A failed call in the key's daily usage; a request the provider refused is a call, not an error."""
        if key_hash:
            self.keys.record_call(key_hash, provider.id, error=exc.retryable)

    def _failed(self, provider: Provider, exc: ProviderError, started: float, failed_over: bool,
                key: int = 1) -> None:
        """Record one failed attempt. A request the provider refused as the client's mistake is not the
        provider's failure: it counts as a call, not an error, and leaves its health alone."""
        if exc.retryable:
            log.warning("provider failed", extra={
                "service": provider.name, "reason": exc.kind, "upstreamStatus": exc.upstream_status,
                "failover": failed_over})
        else:
            log.info("provider refused the request", extra={
                "service": provider.name, "reason": exc.kind, "upstreamStatus": exc.upstream_status})
        self.router.failed(provider, exc, key)
        self.metrics.record_attempt(provider.name, key=key, ok=not exc.retryable,
                                    duration_ms=(time.monotonic() - started) * 1000,
                                    failure=exc.kind if exc.retryable else None, failed_over=failed_over)
