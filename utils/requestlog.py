"""One JSON log line per request, written when the response is closed, so a stream's line carries
its whole duration and how it ended. Never a key, never a message's content."""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

log = logging.getLogger("gateway")

# A client's own request id is echoed only if it is short and plain.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def init_request_log(app: Flask) -> None:
    app.before_request(start)
    app.after_request(finish)


def start() -> None:
    g.started = time.monotonic()
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

    def write_line() -> None:
        line = dict(fields, duration=round((time.monotonic() - started) * 1000, 2))
        if answer is not None:
            line.update(service=answer.provider.name, attempts=answer.attempts, outcome=answer.outcome)
        log.info("request", extra=line)

    response.call_on_close(write_line)
    return response
