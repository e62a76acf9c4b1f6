"""One JSON object per log line, on stdout, so a log shipper needs no parsing rules."""
from __future__ import annotations

import json
import logging
import sys

from utils.clock import iso

# Attributes every LogRecord has; anything else was passed in `extra=` and goes into the line.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"level": record.levelname.lower(), "message": record.getMessage(), "timestamp": iso(record.created)}
        line.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(debug: bool) -> logging.Logger:
    logger = logging.getLogger("gateway")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return logger
