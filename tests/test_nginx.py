"""The README's nginx site, as written there, in front of the gateway under gunicorn: answers stream through
unbuffered, and with TRUSTED_PROXIES=1 the rate limiter sees each client's own address (and not one it forged).

Runs nginx unprivileged: its own config, pid, logs and temp files in tmp_path, free ports, a throw-away
certificate for 127.0.0.1. Skips where nginx or openssl is not installed."""
import http.client
import re
import shutil
import ssl
import subprocess
import time

import pytest
import requests

from tests.fakeprovider import Reply
from tests.gateway import MASTER_KEY, ROOT, free_port

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                                reason="nginx (apt-get install nginx) or openssl is not installed")
SITE_HEADER = "# /etc/nginx/sites-available/ai-gateway"
CHAT = '{"messages":[{"role":"user","content":"hi"}]}'


def readme_site() -> str:
    blocks = re.findall(r"```nginx\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    [site] = [block for block in blocks if block.startswith(SITE_HEADER)]
    return site


def local_site(site: str, *, gateway_port: int, https_port: int, http_port: int, cert: str, key: str) -> str:
    """The README's site with only what cannot work here changed: ports, the certificate, no IPv6 listeners."""
    replaced = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "proxy_pass http://127.0.0.1:3000;": f"proxy_pass http://127.0.0.1:{gateway_port};",
    }
    for old, new in replaced.items():
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    site = re.sub(r"ssl_certificate /etc/letsencrypt/\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key /etc/letsencrypt/\S+;", f"ssl_certificate_key {key};", site)
    return re.sub(r"^\s*listen \[::\]:\d+( ssl)?;\n", "", site, flags=re.MULTILINE)


@pytest.fixture
def nginx_in_front(tmp_path):
    """Start nginx with the README's site in front of a gateway; returns (https port, CA file for clients)."""
    processes = []
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)

    def start(gateway) -> int:
        https_port = free_port()
        site = local_site(readme_site(), gateway_port=int(gateway.url.rsplit(":", 1)[1]), https_port=https_port,
                          http_port=free_port(), cert=cert, key=key)
        (tmp_path / "site.conf").write_text(site)
        temp = "".join(f"    {kind}_temp_path {tmp_path / kind};\n" for kind in
                       ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp_path / "nginx.conf").write_text(
            f"worker_processes 1;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log off;\n{temp}    include {tmp_path / 'site.conf'};\n}}\n")
        process = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                    "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(process)
        deadline = time.monotonic() + 10
        while not (tmp_path / "nginx.pid").exists() or not port_open(https_port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)  # nginx has no readiness signal but its open port
        return https_port

    yield start, cert
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def port_open(port: int) -> bool:
    try:
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
        return True
    except OSError:
        return False


def post_from(source: str, port: int, ca: str, headers: dict | None = None) -> int:
    """POST /chat to nginx from the loopback address `source` (all of 127/8 is this machine); its status."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, source_address=(source, 0), timeout=10,
                                             context=ssl.create_default_context(cafile=ca))
    try:
        connection.request("POST", "/chat", body=CHAT, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_the_readme_site_streams_the_first_chunk_before_the_provider_has_finished(start_gateway, fake,
                                                                                  nginx_in_front):
    start_nginx, ca = nginx_in_front
    gateway = start_gateway(providers=["groq"], HOST="127.0.0.1", TRUSTED_PROXIES=1)
    port = start_nginx(gateway)
    fake.enqueue("groq", Reply(chunks=["first", " second", " third", " fourth"], interval=0.4))
    headers = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
    with requests.post(f"https://127.0.0.1:{port}/chat", data=CHAT, headers=headers, stream=True, verify=ca,
                       timeout=30) as response:
        assert response.status_code == 200
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks) == b"first"
        assert fake.outcomes == []  # the fake is still sending: neither nginx nor the gateway held the answer back
        assert b"".join(chunks) == b" second third fourth"


def test_behind_the_readme_site_each_client_address_has_its_own_rate_limit(start_gateway, nginx_in_front):
    start_nginx, ca = nginx_in_front
    gateway = start_gateway(providers=["groq"], REQUIRE_AUTH="false", RATE_LIMIT_MAX=1, TRUSTED_PROXIES=1)
    port = start_nginx(gateway)
    assert post_from("127.0.0.1", port, ca) == 200
    assert post_from("127.0.0.1", port, ca) == 429
    # A forged X-Forwarded-For is kept by nginx, but only the address nginx appended is believed.
    assert post_from("127.0.0.1", port, ca, headers={"X-Forwarded-For": "203.0.113.9"}) == 429
    assert post_from("127.0.0.2", port, ca) == 200


def test_without_trusted_proxies_every_client_behind_nginx_shares_one_budget(start_gateway, nginx_in_front):
    start_nginx, ca = nginx_in_front
    gateway = start_gateway(providers=["groq"], REQUIRE_AUTH="false", RATE_LIMIT_MAX=1)
    port = start_nginx(gateway)
    assert post_from("127.0.0.1", port, ca) == 200
    assert post_from("127.0.0.2", port, ca) == 429  # nginx's own address is all the gateway sees
