# `make run` serves the gateway on PORT (3000); `make test` runs the whole suite.
# Both create the virtual environment in .venv on first use. `make install` is what a server needs: the
# gateway and its dependencies, without the test tools (those come with `make test` alone).
VENV ?= .venv
PYTHON ?= python3

.PHONY: run test install check clean vercel-sdk

install: $(VENV)/.installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

# Each stamp is redone only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# Settings and the key database, checked before gunicorn starts: gunicorn reads WEB_CONCURRENCY before any
# of our code runs and would answer a wrong one with a traceback.
check: install
	@[ -f .env ] || { (umask 077 && cp .env.example .env) && \
		echo "Created .env from .env.example (readable by you alone: it will hold your keys)."; }
	@$(VENV)/bin/python -m utils.settings --check

run: check
	@exec $(VENV)/bin/gunicorn -c gunicorn.conf.py

# Four test processes (pytest-xdist): most tests wait on a gunicorn starting or a provider's timeout, so four
# keep two cores busy. Each has its own fake providers, ports and Redis database (tests/databases.py).
test: $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q -n 4

# The Vercel AI SDK that tests/test_vercel_ai_sdk.py drives (it skips without it), installed by npm into the
# user's cache, outside the repository: no test reaches a registry itself.
VERCEL_SDK ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ai-gateway-tests/vercel
vercel-sdk:
	mkdir -p "$(VERCEL_SDK)"
	cp tests/vercel_ai_sdk.package.json "$(VERCEL_SDK)/package.json"
	npm install --prefix "$(VERCEL_SDK)" --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) *.egg-info
