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
TEST_WORKERS ?= 3

# The Lab extension (labextension/, TypeScript): npm packages from the committed lock file,
# built into the Python package (jupyter_taskplanner/labextension), again only when a source
# changed.
LAB := labextension
LAB_DEPS := $(LAB)/node_modules/.package-lock.json
LAB_SOURCES := $(shell find $(LAB)/src $(LAB)/style $(LAB)/schema -type f ! -name '*.spec.ts') \
	$(LAB)/package.json $(LAB)/tsconfig.json
LAB_BUILT := jupyter_taskplanner/labextension/static/style.js
LAB_LINKED := $(VENV)/share/jupyter/labextensions/jupyter-taskplanner
LAB_PATH := PATH="$(abspath $(BIN)):$$PATH"
# What the browser tests drive: Debian's Chromium (Playwright never downloads a browser).
CHROMIUM := /usr/bin/chromium
# The hub tests' JupyterHub proxy (configurable-http-proxy from npm), in a local node_modules.
HUB_PROXY := .hub/node_modules/.bin/configurable-http-proxy
WHEEL_CHECK := build/wheel-check

.PHONY: run test venv lint lab lab-test lab-wheel-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install (or refresh) the package, its test dependencies and the sample plugins.
# The Lab extension is built by its own rule below, not by the package's build hook; the
# copy of it pip installs is replaced by a link to the build (and pip must not write through
# an old link into the build).
$(INSTALLED): pyproject.toml $(PLUGINS) | $(BIN)/python
	$(PIP) install --upgrade pip
	rm -rf $(LAB_LINKED)
	SKIP_JUPYTER_BUILDER=1 $(PIP) install -e ".[test,lab,dask]" $(foreach p,$(PLUGINS),-e $(dir $(p)))
	rm -rf $(LAB_LINKED)
	touch $@

venv: $(INSTALLED)

$(LAB_DEPS): $(LAB)/package.json $(LAB)/package-lock.json
	cd $(LAB) && npm ci --prefer-offline --no-audit --no-fund
	touch $@

$(LAB_BUILT): $(LAB_SOURCES) $(LAB_DEPS) | $(INSTALLED)
	cd $(LAB) && $(LAB_PATH) npm run build:prod
	touch $@

# The editable install's Lab finds the build through a link (a rebuild is live at once).
$(LAB_LINKED): $(INSTALLED) | $(LAB_BUILT)
	$(LAB_PATH) $(BIN)/jupyter-builder develop --overwrite .

lab: $(LAB_BUILT) $(LAB_LINKED)

$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

# The frontend's unit tests (vitest) beside its code.
lab-test: $(LAB_DEPS)
	cd $(LAB) && npm test

# What pip users install: a wheel built from this tree holds the extension, and a Lab with
# that wheel installed (into a scratch prefix; the rest of its packages come from .venv)
# lists it enabled and OK.
lab-wheel-check: lab
	rm -rf $(WHEEL_CHECK) && mkdir -p $(WHEEL_CHECK)
	$(PIP) wheel --no-deps --no-build-isolation -w $(WHEEL_CHECK)/dist .
	$(BIN)/python -m venv --without-pip $(WHEEL_CHECK)/venv
	# --python: pip works on that environment alone (with --prefix it would first uninstall
	# the editable install from .venv); .venv's packages are linked in only afterwards.
	$(PIP) --python $(WHEEL_CHECK)/venv/bin/python install --no-deps $(WHEEL_CHECK)/dist/*.whl
	$(BIN)/python -c "import site; print(site.getsitepackages()[0])" \
		> $$(echo $(WHEEL_CHECK)/venv/lib/python*/site-packages)/main-venv.pth
	# `jupyter labextension list` and `jupyter server extension list` of that environment (its
	# console scripts are not installed there), run outside the checkout, which would be
	# imported instead of the wheel.
	cd $(WHEEL_CHECK) && venv/bin/python -m jupyterlab.labextensions list 2>&1 \
		| sed 's/\x1b\[[0-9;]*m//g' | tee list.txt
	grep -A1 "^$(abspath $(WHEEL_CHECK))/venv/share/jupyter/labextensions" $(WHEEL_CHECK)/list.txt \
		| grep -q "jupyter-taskplanner v.* enabled OK (python, jupyter-taskplanner)"
	cd $(WHEEL_CHECK) && venv/bin/python -m jupyter_server.extension.serverextension list 2>&1 \
		| sed 's/\x1b\[[0-9;]*m//g' | grep -A2 "jupyter_taskplanner enabled" | grep -q "jupyter_taskplanner .* OK"

# Format, lint, then type-check the package and the sample plugin ([tool.mypy] in pyproject.toml).
lint: venv $(LAB_DEPS)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	cd $(LAB) && npm run lint && npx tsc --noEmit

$(HUB_PROXY):
	npm install --no-save --no-audit --no-fund --loglevel=error --prefix .hub \
		configurable-http-proxy@5.3.0

# TASKPLANNER_LAB_TESTS=required: the Lab browser tests fail, not skip, if something is missing;
# TASKPLANNER_HUB_TESTS=required: the same for the JupyterHub tests.
# The tests run on TEST_WORKERS processes (pytest-xdist; much of a test's time is spent waiting
# on the servers, kernels, hubs and browsers it starts); the tests of one module stay on one
# worker, in their order (--dist loadfile), so a module's hub, Lab or cluster starts once.
# `make test TEST_WORKERS=0` runs them in one process.
test: venv lint lab lab-test lab-wheel-check $(HUB_PROXY) | $(CHROMIUM)
	$(BIN)/jupyter server extension list 2>&1 | grep -A2 "jupyter_taskplanner" | grep -q "OK"
	TASKPLANNER_LAB_TESTS=required TASKPLANNER_HUB_TESTS=required $(BIN)/pytest \
		--numprocesses=$(TEST_WORKERS) --dist=loadfile

# A workspace for trying the planner (ignored by git), seeded once with the example
# notebooks; files already there are kept.
$(WORKSPACE)/.seeded:
	mkdir -p $(WORKSPACE)
	cp -rn notebooks/. $(WORKSPACE)/
	touch $@

# JupyterLab on the workspace, with a local mail sink: mails land in workspace/mail as .eml.
run: venv lab $(WORKSPACE)/.seeded
	$(BIN)/python devtools/mail_sink.py $(WORKSPACE)/mail --port $(MAIL_PORT) & sink=$$!; \
	trap 'kill $$sink 2>/dev/null' EXIT INT TERM; \
	$(BIN)/jupyter lab --ip=127.0.0.1 --allow-root --no-browser \
		--ServerApp.root_dir=$(WORKSPACE) \
		--EmailSettings.host=127.0.0.1 --EmailSettings.port=$(MAIL_PORT) \
		--EmailSettings.sender=planner@localhost

# The performance figures, each beside its target and a reference measured in the same run
# (bare papermill, jupyter-scheduler in a venv of its own under build/bench-peer, the server's
# /api/status): prints the table, writes build/bench/results.json and refreshes the table in
# docs/performance.md.  `make bench BENCH=--quick` is a smoke run (smaller, docs untouched).
.PHONY: bench
bench: venv
	$(BIN)/python bench/run.py $(BENCH)

# The reliability checks, long (tests/stress: kills and restarts with runs in flight, two
# servers on one database, load, API fuzzing, and the cases of the other reliability suites):
# prints the table and refreshes it in docs/reliability.md.  `make stress STRESS="--size
# quick"` is a smoke run (docs untouched).
.PHONY: stress
stress: venv
	PYTHONPATH=tests $(BIN)/python -m stress $(STRESS)
