import pytest
from tests.test_response_cache import nested_tools_body, MASTER_HEADERS, V1
@pytest.mark.parametrize("depth", [934])
def test_d(make_app, fake, depth):
    c = make_app(providers=("groq",), cache_ttl=0, rate_limit_enabled=False).test_client()
    r = c.post(V1, data=nested_tools_body(depth), headers={**MASTER_HEADERS, "Content-Type": "application/json"})
    print("RESULT", depth, r.status_code, r.headers.get("X-Cache"))
