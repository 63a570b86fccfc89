# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
PLUGINS := $(wildcard plugins/*/pyproject.toml)
# Installed again only when one of these changed (the install is editable: code is live).
INSTALLED := $(VENV)/.installed
WORKSPACE := workspace
MAIL_PORT ?= 8025

.PHONY: run test venv lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install (or refresh) the package, its test dependencies and the sample plugins.
$(INSTALLED): pyproject.toml $(PLUGINS) | $(BIN)/python
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[test,lab,dask]" $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $@

venv: $(INSTALLED)

# Format, lint, then type-check the package and the sample plugin ([tool.mypy] in pyproject.toml).
lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: venv lint
	$(BIN)/jupyter server extension list 2>&1 | grep -A2 "jupyter_taskplanner" | grep -q "OK"
	$(BIN)/pytest

# A workspace for trying the planner (ignored by git), seeded once with the example
# notebooks; files already there are kept.
$(WORKSPACE)/.seeded:
	mkdir -p $(WORKSPACE)
	cp -rn notebooks/. $(WORKSPACE)/
	touch $@

# JupyterLab on the workspace, with a local mail sink: mails land in workspace/mail as .eml.
run: venv $(WORKSPACE)/.seeded
	$(BIN)/python devtools/mail_sink.py $(WORKSPACE)/mail --port $(MAIL_PORT) & sink=$$!; \
	trap 'kill $$sink 2>/dev/null' EXIT INT TERM; \
	$(BIN)/jupyter lab --ip=127.0.0.1 --allow-root --no-browser \
		--ServerApp.root_dir=$(WORKSPACE) \
		--EmailSettings.host=127.0.0.1 --EmailSettings.port=$(MAIL_PORT) \
		--EmailSettings.sender=planner@localhost
