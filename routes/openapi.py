"""GET /openapi.json: the OpenAPI 3.1 description of every endpoint. The document is routes/openapi.json,
kept true to the routes by tests/test_openapi.py and to the answers by tests/test_schema_fuzz.py."""
from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)

# Parsed once at import, so a broken file stops start-up instead of failing its first reader.
SPEC = json.dumps(json.loads(Path(__file__).with_name("openapi.json").read_text(encoding="utf-8")),
                  separators=(",", ":"), ensure_ascii=False).encode()


@bp.get("/openapi.json")
def openapi():
    return Response(SPEC, mimetype="application/json")
