"""routes/openapi.json stays true to the app: every route is described and every description is a route,
the document is valid OpenAPI 3.1, and GET /openapi.json serves it to anyone."""
import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
import schemathesis

from app import create_app
from routes.panel import BLUEPRINTS as PANEL_BLUEPRINTS
from utils.settings import Settings

SPEC = json.loads((Path(__file__).resolve().parent.parent / "routes" / "openapi.json").read_text(encoding="utf-8"))
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Flask answers these on every route by itself (HEAD with GET, OPTIONS for CORS preflights); the
# document describes the methods the gateway's own views serve.
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(master_api_key="master", database_url=f"sqlite:///{tmp_path / 'keys.db'}",
                               model_check_interval=0))


def path_shape(path: str) -> str:
    """A path with its parameters' names dropped: Flask's `<path:model_id>` is the document's `{model}`."""
    return re.sub(r"<[^>]*>|\{[^}]*\}", "{}", path)


def routed_operations(app) -> set[tuple[str, str]]:
    # The admin panel's pages (/admin/, /admin/panel/...) are HTML for a browser, behind a session cookie and
    # form tokens: not API operations, and fuzzing them as such would only test the sign-in redirect.
    panel = {blueprint.name for blueprint in PANEL_BLUEPRINTS}
    return {(path_shape(rule.rule), method)
            for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            and rule.endpoint.partition(".")[0] not in panel
            for method in rule.methods - AUTOMATIC_METHODS}


def documented_operations() -> set[tuple[str, str]]:
    return {(path_shape(path), method.upper())
            for path, item in SPEC["paths"].items() for method in item if method in HTTP_METHODS}


def test_every_route_is_documented_and_every_documented_operation_is_routed(app):
    routed, documented = routed_operations(app), documented_operations()
    assert routed - documented == set(), "routes missing from routes/openapi.json"
    assert documented - routed == set(), "operations in routes/openapi.json that no route serves"


def test_the_document_is_valid_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(SPEC).validate()


def references(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_every_reference_resolves():
    # The OpenAPI meta-schema does not follow $ref, and schemathesis resolves them only when used.
    for ref in set(references(SPEC)):
        target = SPEC
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, f"{ref} does not resolve"
            target = target[part]


def test_every_example_fits_its_schema():
    # `examples` is only an annotation to validators: nothing else notices an example the schema refuses.
    for name, schema in SPEC["components"]["schemas"].items():
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": SPEC["components"]})
        for example in schema.get("examples", []):
            assert validator.is_valid(example), (name, example)


def test_errors_under_v1_are_documented_in_openai_shape_and_the_rest_in_the_gateway_shape():
    error_schema = {path: "OpenAIError" if path.startswith("/v1/") else "Error" for path in SPEC["paths"]}
    for path, item in SPEC["paths"].items():
        for method, operation in ((m, o) for m, o in item.items() if m in HTTP_METHODS):
            for status, response in operation["responses"].items():
                # Readiness has its own body; /health's 503 is its own body when down (or an error).
                if int(status) < 400 or (path, status) in (("/health/ready", "503"), ("/health", "503")):
                    continue
                name = response["$ref"].rsplit("/", 1)[-1]
                schema_ref = SPEC["components"]["responses"][name]["content"]["application/json"]["schema"]["$ref"]
                assert schema_ref == f"#/components/schemas/{error_schema[path]}", (method, path, status)


def test_the_document_is_served_to_anyone(app):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == SPEC
