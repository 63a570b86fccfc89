# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: run test venv lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install (or refresh) the package, its test dependencies and the sample plugins.
venv: $(BIN)/python
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[test,lab,dask]" $(foreach p,$(PLUGINS),-e $(dir $(p)))

# Format, lint, then type-check the package and the sample plugin ([tool.mypy] in pyproject.toml).
lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: venv lint
	$(BIN)/jupyter server extension list 2>&1 | grep -A2 "jupyter_taskplanner" | grep -q "OK"
	$(BIN)/pytest

run: venv
	$(BIN)/jupyter lab --ip=127.0.0.1 --allow-root --no-browser
