# `make run` serves the gateway on PORT (3000); `make test` runs the whole suite.
# Both create the virtual environment in .venv on first use.
VENV ?= .venv
PYTHON ?= python3

.PHONY: run test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

run: install
	@[ -f .env ] || cp .env.example .env
	$(VENV)/bin/gunicorn -c gunicorn.conf.py app:app

test: install
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) *.egg-info
