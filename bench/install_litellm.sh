#!/usr/bin/env bash
# Installs LiteLLM's proxy in its own virtual environment, outside the project (default: the user's cache,
# ~/.cache/ai-gateway-bench/litellm-venv), for the side-by-side comparison. Nothing of it goes into the
# project or its dependencies.
#
# `pip install 'litellm[proxy]==1.110.2'` fails: the extra pins packages that are not published
# (`litellm-proxy`, and `.post1` versions of `litellm-proxy-extras` and `litellm-enterprise`). So this
# installs `litellm` plus the extra's other requirements (read from the wheel's own metadata), with those
# two at their newest published versions.
set -euo pipefail
VERSION="${LITELLM_VERSION:-1.110.2}"
VENV="${1:-${LITELLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-bench/litellm-venv}}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/litellm" ]; then
    echo "LiteLLM already installed in $VENV"; exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "litellm==$VERSION"
# The `proxy` extra's requirements, minus the three pins that cannot be installed.
REQS=$("$VENV/bin/python" - <<'PY'
from importlib.metadata import requires
from packaging.requirements import Requirement
out = []
for text in requires("litellm") or []:
    req = Requirement(text)
    if req.marker is None or not req.marker.evaluate({"extra": "proxy"}):
        continue
    if req.marker.evaluate({"extra": ""}):  # a base requirement, already installed
        continue
    if req.name in ("litellm-proxy", "litellm-proxy-extras", "litellm-enterprise"):
        continue
    out.append(str(req).split(";")[0].strip())
print("\n".join(out))
PY
)
echo "$REQS" > "$VENV/proxy-requirements.txt"
"$VENV/bin/pip" install --quiet -r "$VENV/proxy-requirements.txt" litellm-proxy-extras litellm-enterprise
"$VENV/bin/pip" list 2>/dev/null | grep -iE '^(litellm|fastapi|uvicorn|gunicorn) ' || true
