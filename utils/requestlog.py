"""One JSON log line per request, written when the response is closed, so a stream's line carries
its whole duration and how it ended. Never a key, never a message's content.

The API's requests also go, in the same words, to a bounded list in the state store (in Redis with REDIS_URL,
so every worker's are there): the admin panel's Requests page."""
from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, Response, current_app, g, request

from utils import state
from utils.clock import iso
from utils.keys import ID_CHARS

log = logging.getLogger("gateway")

# The blueprints whose requests the panel lists (the API's, not health checks or the panel's own pages).
RECORDED = ("chat", "openai_api", "embeddings")
RECENT, RECENT_LIMIT = "recent-requests", 500
# How a request without a provider's answer ended, by its status (else 4xx rejected, 5xx failed).
OUTCOMES = {401: "denied", 403: "denied", 429: "limited", 499: "client_closed"}

# A client's own request id is echoed only if it is short and plain.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def init_request_log(app: Flask) -> None:
    app.before_request(start)
    app.after_request(finish)


def start() -> None:
    g.started = time.monotonic()
    if request.blueprint in RECORDED:  # an API request: what it records goes to Redis at once when it ends
        state.defer_writes(current_app.extensions["store"])
    offered = request.headers.get("X-Request-ID", "")
    g.request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex


def finish(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    fields = {"requestId": request_id, "method": request.method, "path": request.path,
              "status": response.status_code}
    caller = g.get("caller")
    if caller is not None:
        fields["caller"] = caller.id
    answer = g.get("answer")
    started = g.get("started", time.monotonic())

    # Read now: the app context is gone by the time a stream's response is closed.
    store = current_app.extensions["store"] if request.blueprint in RECORDED else None

    def write_line() -> None:
        line = dict(fields, duration=round((time.monotonic() - started) * 1000, 2))
        if answer is not None:
            line.update(service=answer.provider.name, attempts=answer.attempts, outcome=answer.outcome)
        log.info("request", extra=line)
        if store is not None:
            remember(store, line, caller, answer)
        state.write_deferred()

    response.call_on_close(write_line)
    return response


def remember(store, line: dict, caller, answer) -> None:
    """Put a request at the head of the recent list: what the log line says, plus the key's id and tokens."""
    usage = answer.usage if answer is not None else None
    status = line["status"]
    entry = {"time": iso(time.time()), "method": line["method"], "path": line["path"], "status": status,
             "caller": caller.kind if caller else None,
             "keyId": caller.key_hash[:ID_CHARS] if caller and caller.key_hash else None,
             "provider": answer.provider.id if answer is not None else None,
             "outcome": line.get("outcome") or outcome_of(status),
             "duration": line["duration"], "promptTokens": usage.prompt_tokens if usage else 0,
             "completionTokens": usage.completion_tokens if usage else 0, "requestId": line["requestId"]}
    # With the request's other writes at its end (Redis away: the store says so once, and this one is missed).
    store.push(RECENT, json.dumps(entry), RECENT_LIMIT, defer=True)


def outcome_of(status: int) -> str:
    """How a request that got no answer from a provider ended."""
    if status < 400:
        return "ok"
    return OUTCOMES.get(status, "rejected" if status < 500 else "failed")


def recent(store) -> list[dict]:
    """The recent requests, newest first."""
    return [json.loads(item) for item in store.recent(RECENT)]
