"""The response cache on the request path (CACHE_TTL turns it on): whether a request may be answered from it,
a hit relayed as a live answer is, and a live answer stored once it has ended complete. The views and their
encoders never know which of the two they relay.

A request is cacheable when the key's own `cache` setting says so (`false`: never), else by CACHE_MODE: `safe`
(`temperature` 0, a `seed`, or `X-Cache: use` on the request), `opt-in` (only `X-Cache: use`) or `all`.
`Cache-Control: no-cache` skips the lookup and `no-store` the storing. Only an answer that ended by itself
(finish reason stop or tool calls) with something in it is stored: never a failed, cut, truncated (`length`),
filtered or abandoned one. A hit calls no provider and spends none of the key's budgets; it counts against the
rate limit unless CACHE_HITS_RATE_LIMITED=false gives the request back.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request

from providers.base import Provider
from utils.cache import build_cache
from utils.cache_entry import Entry, Pieces, Source, request_key
from utils.chat import ChatRequest, Chunk
from utils.errors import ValidationError
from utils.limits import give_back
from utils.settings import Settings

EXTENSION = "response_cache"
COMPLETE = frozenset({"stop", "tool_calls", "function_call"})  # finish reasons (lowercased) of a whole answer
OPT_IN = "use"  # the one value of the request's X-Cache header
CLOCK_SKEW = 60  # seconds machines sharing a Redis may disagree on the time


def init_cache(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = build_cache(
        settings.redis_url, settings.cache_ttl, settings.cache_max_entries, settings.cache_max_bytes,
        settings.cache_max_entry_bytes) if settings.cache_ttl else None
    app.after_request(add_cache_headers)


class Replay:
    """A cached answer, with what the views and the request log read of a live one."""
    attempts = 0  # no provider was tried
    outcome = "cache_hit"

    def __init__(self, entry: Entry, age: float):
        self.provider, self.usage, self.finish_reason = entry.source, entry.usage, entry.finish_reason
        self.age = age
        self._entry = entry

    def __iter__(self):
        return iter(self._entry.chunks())


@dataclass
class Lookup:
    """A cacheable request: its key, whether its answer may be stored, and the hit if there is one."""
    key: str
    store: bool
    model: str | None  # the model the request named (None: the provider's own)
    whole_reasoning: bool  # the endpoint relays all of an answer's reasoning
    hit: Replay | None = None


def consult(chat_request: ChatRequest, named: str | None, fallback: bool, *, visible: Callable[[Chunk], bool],
            allowed: Callable[[Provider], bool]) -> Lookup | None:
    """None when the request is not cacheable; else its lookup, with the hit when the cache holds an answer
    that a provider still configured the same way gave, and that the caller's key may still use."""
    ext = current_app.extensions
    cache, settings = ext.get(EXTENSION), ext["settings"]
    if cache is None or not cacheable(chat_request, settings):
        return None
    directives = {part.split("=")[0].strip().lower() for part in request.headers.get("Cache-Control", "").split(",")}
    scope = g.caller.id if settings.cache_scope == "key" else ""
    # An endpoint whose `visible` counts reasoning relays all of it (/v1); /chat drops what precedes the text.
    found = g.cache_lookup = Lookup(request_key(scope, named, fallback, chat_request), "no-store" not in directives,
                                    chat_request.model, visible(Chunk(reasoning=".")))
    if "no-cache" not in directives:
        found.hit = _replay(Entry.decode(cache.get(found.key), found.key), found, allowed)
    ext["metrics"].count_cache(hit=found.hit is not None)
    if found.hit is not None:
        if g.caller.key_hash:
            ext["keys"].record_use(g.caller.key_hash)  # a request of the key's, but no provider's call
        if not settings.cache_hits_rate_limited:
            give_back()
    return found


def cacheable(chat_request: ChatRequest, settings: Settings) -> bool:
    opted = request.headers.get("X-Cache", "").strip().lower() or None
    if opted is not None and opted != OPT_IN:
        raise ValidationError(f"X-Cache must be '{OPT_IN}' (answer from the response cache when it can)",
                              param="X-Cache")
    policy = g.caller.policy
    if policy is not None and policy.cache is not None:
        return policy.cache
    if opted is not None or settings.cache_mode == "all":
        return True
    options = chat_request.options
    return settings.cache_mode == "safe" and (options.get("temperature") == 0 or "seed" in options)


def _replay(entry: Entry | None, found: Lookup, allowed: Callable[[Provider], bool]) -> Replay | None:
    if entry is None or (found.whole_reasoning and not entry.whole_reasoning):
        return None
    ext = current_app.extensions
    age = ext[EXTENSION].clock() - entry.stored_at
    provider = ext["router"].by_id(entry.source.id)
    if not -CLOCK_SKEW <= age < ext["settings"].cache_ttl:
        return None  # from another time (CACHE_TTL was longer, or a clock is wrong)
    if not (provider and provider.configured and allowed(provider)):
        return None  # the provider is gone, or out of the key's scope
    if found.model is None and entry.source.model != provider.model:
        return None  # the operator has changed the provider's model since
    return Replay(entry, max(0.0, age))


class Recording:
    """A live answer relayed unchanged; once it has ended complete, what it said is stored. Reads anything
    else (provider, usage, outcome...) from the answer itself. A stream is read after its request's context
    is gone: the cache is taken along."""

    def __init__(self, answer, found: Lookup, cache):
        self._answer, self._found, self._cache = answer, found, cache

    def __getattr__(self, name: str):
        return getattr(self._answer, name)

    def __iter__(self):
        pieces: Pieces | None = Pieces()
        relayed = iter(self._answer)
        try:
            for chunk in relayed:
                if pieces is not None:
                    pieces.add(chunk)
                    if pieces.size > self._cache.max_entry_bytes:
                        pieces = None  # too big to store: stop keeping it
                yield chunk
        finally:
            relayed.close()
        if pieces is not None:
            keep(self._found, self._answer, pieces, self._cache)


def recording(answer, found: Lookup | None):
    """The answer to relay: recorded when its request is cacheable and may be stored."""
    if found is None or not found.store:
        return answer
    return Recording(answer, found, current_app.extensions[EXTENSION])


def keep_whole(found: Lookup | None, answer, chunks: list[Chunk]) -> None:
    """Store an answer a client waited for whole, if it is complete."""
    if found is not None and found.store:
        pieces = Pieces()
        for chunk in chunks:
            pieces.add(chunk)
        keep(found, answer, pieces, current_app.extensions[EXTENSION])


def keep(found: Lookup, answer, pieces: Pieces, cache) -> None:
    """Store a complete answer; anything else is left out (the cache refuses one over its entry bound)."""
    if answer.outcome != "ok" or (answer.finish_reason or "").lower() not in COMPLETE or not pieces.said_something:
        return
    if pieces.size > cache.max_entry_bytes:  # too big, or more tool calls than an entry holds
        return
    source = Source(answer.provider.id, answer.provider.name, found.model or answer.provider.model)
    cache.put(found.key, Entry.of(found.key, source, pieces, finish_reason=answer.finish_reason,
                                  usage=answer.usage, whole_reasoning=found.whole_reasoning,
                                  now=cache.clock()).encode())


def add_cache_headers(response: Response) -> Response:
    found = g.get("cache_lookup")
    if found is not None:
        response.headers["X-Cache"] = "HIT" if found.hit else "MISS"
        if found.hit:
            response.headers["X-Cache-Age"] = str(int(found.hit.age))
    return response


def figures() -> dict:
    """The cache's figures for /metrics: hits and misses (the whole gateway's), entries and bytes held."""
    ext = current_app.extensions
    cache = ext.get(EXTENSION)
    entries, size = cache.stats() if cache is not None else (0, 0)
    return {"enabled": cache is not None, **ext["metrics"].cache_counts(), "entries": entries, "bytes": size}


def clear() -> int:
    """Empty the cache (every worker's and machine's, through Redis when set); how many entries it held."""
    cache = current_app.extensions.get(EXTENSION)
    return cache.clear() if cache is not None else 0
