# The targets CI runs; there is no second way to test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Installs come from uv.lock (every package pinned, with hashes). uv is bootstrapped into the
# venv by pip at this pinned version; `make lock` updates the lock after pyproject.toml changes.
UV_VERSION := 0.13.9
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
# The index pip is pointed at (PIP_INDEX_URL or pip.conf's index-url), else PyPI.
INDEX_URL ?= $(or $(PIP_INDEX_URL),$(shell $(PYTHON) -m pip config get global.index-url 2>/dev/null),https://pypi.org/simple)
# Never a Python of uv's own download; the system's CA store, as pip's configured cert.
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on the CI machines),
# Python never writes it, and every process (each `shipyard` command, serve and worker the tests
# start) compiled every module it imports again: 7.1 s of imports for a local command, 3.2 s
# with the bytecode there (decisions.md, "Bytecode compiled at install").
UV := UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1 UV_NO_CONFIG=1 UV_PROJECT_ENVIRONMENT=$(VENV) \
	UV_COMPILE_BYTECODE=1 UV_DEFAULT_INDEX=$(INDEX_URL) $(BIN)/uv
# Reinstall when the lock (or pyproject.toml) changes.
LOCK_HASH := $(shell cat pyproject.toml uv.lock 2>/dev/null | sha1sum | cut -c1-12)
RUN_STAMP := $(VENV)/.installed-run-$(LOCK_HASH)
STAMP := $(VENV)/.installed-test-$(LOCK_HASH)
# Throw-away environments of the install checks (build/ is ignored by git).
CHECKS := build/checks
# Line+branch coverage of src/shipyard the full suite must reach under `make coverage`. It only
# goes up: raise it when the suite covers more, never lower it to make a change pass. (84, from
# 85, when coverage stopped tracing greenlets: the same suite measured 89.9% with them and 85.1%
# without; see decisions.md.)
COVERAGE_FLOOR := 84
# pytest-xdist workers for `make pytest`: one more than the cores, because the tests wait on
# sshd, workers and browsers a good part of the time (measured on git+cicd, 199 tests with
# coverage: 2 workers 248 s wall at 1.5 cores busy, 3 workers 203 s at 1.7). Each worker has its
# own embedded PostgreSQL, sshd fleet, Chromium and temp dirs; a file's tests stay on one worker
# (module fixtures such as the live server start once). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: run test lint typecheck pytest coverage bench system-deps clean lock lock-upgrade smoke-lowest wheel-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV_STAMP): | $(BIN)/python
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	rm -f $(VENV)/.uv-*
	touch $(UV_STAMP)

# What running needs: the project (editable) and its dependencies, no test tools.
$(RUN_STAMP): $(UV_STAMP) pyproject.toml uv.lock
	$(UV) sync --inexact --no-default-groups
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

# The test tools on top (the `test` extra), all from the same lock.
$(STAMP): $(UV_STAMP) pyproject.toml uv.lock
	$(UV) sync --inexact --no-default-groups --extra test
	rm -f $(VENV)/.installed-test-*
	touch $(STAMP)

run: $(RUN_STAMP)  ## Install and start Shipyard on the embedded database at http://127.0.0.1:8000
	$(BIN)/shipyard serve

system-deps:  ## Debian packages the tests use: OpenSSH server, git, Chromium (web tests), PgBouncer, systemd-analyze, a Debian PostgreSQL (an external server), OpenLDAP slapd + ldap-utils (LDAP sign-in)
	@missing=""; \
	command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v ssh-keygen >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	command -v git >/dev/null 2>&1 || missing="$$missing git"; \
	command -v ps >/dev/null 2>&1 || missing="$$missing procps"; \
	command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$$missing chromium fonts-dejavu-core"; \
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/sbin/slapd ] || missing="$$missing slapd"; \
	command -v ldapsearch >/dev/null 2>&1 || missing="$$missing ldap-utils"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The OpenID Connect provider the SSO tests sign in through (oidc-provider, Node.js >= 20.19),
# installed from its lock when the lock changes.
OIDC_IDP := tests/idp/oidc
OIDC_STAMP := $(OIDC_IDP)/node_modules/.installed

$(OIDC_STAMP): $(OIDC_IDP)/package.json $(OIDC_IDP)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "the SSO tests need Node.js >= 20.19 with npm"; exit 1; }
	cd $(OIDC_IDP) && npm ci --no-audit --no-fund
	touch $(OIDC_STAMP)

# Redocly's CLI, which lints the served OpenAPI description (tests/integration/core/test_openapi_lint.py).
REDOCLY := tests/tools/redocly
REDOCLY_STAMP := $(REDOCLY)/node_modules/.installed

$(REDOCLY_STAMP): $(REDOCLY)/package.json $(REDOCLY)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "the OpenAPI lint needs Node.js >= 20 with npm"; exit 1; }
	cd $(REDOCLY) && npm ci --no-audit --no-fund
	touch $(REDOCLY_STAMP)

# openapi-python-client, which the generated-client test runs, in a venv of its own: it pins
# typer below what Shipyard's CLI uses, so it cannot share the project's lock.
OPENAPI_CLIENT_VERSION := 0.29.1
OPENAPI_CLIENT := build/tools/openapi-python-client
OPENAPI_CLIENT_STAMP := $(OPENAPI_CLIENT)/.installed-$(OPENAPI_CLIENT_VERSION)

$(OPENAPI_CLIENT_STAMP): $(UV_STAMP)
	rm -rf $(OPENAPI_CLIENT)
	$(PYTHON) -m venv --without-pip $(OPENAPI_CLIENT)
	$(UV) pip install --quiet --python $(OPENAPI_CLIENT)/bin/python \
		openapi-python-client==$(OPENAPI_CLIENT_VERSION)
	touch $(OPENAPI_CLIENT_STAMP)

TEST_TOOLS := $(STAMP) system-deps $(OIDC_STAMP) $(REDOCLY_STAMP) $(OPENAPI_CLIENT_STAMP)

# The whole suite, untraced: coverage's tracer costs about 40% more CPU on two cores, which is
# what pushed `make test` past 20 minutes (see decisions.md, "Coverage out of make test").
# The project's own modules are compiled here (an editable install is not compiled by uv): only
# what changed since the last run, so a developer's run pays for its edits alone.
pytest: $(TEST_TOOLS)
	$(BIN)/python -m compileall -q -j 0 src tests
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

coverage: $(TEST_TOOLS)  ## The whole suite under coverage, failing below COVERAGE_FLOOR
	$(BIN)/python -m compileall -q -j 0 src tests
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --cov --cov-report=term \
		--cov-fail-under=$(COVERAGE_FLOOR)

test: lint typecheck pytest  ## Lint, type-check and run the whole suite

bench: $(STAMP) system-deps  ## Run the benchmarks (installs the peers they compare against)
	$(UV) sync --inexact --no-default-groups --extra test --extra bench
	$(BIN)/python -m benchmarks.fanout
	$(BIN)/python -m benchmarks.sync
	$(BIN)/python -m benchmarks.deploy
	$(BIN)/python -m benchmarks.fleet

lock: $(UV_STAMP)  ## Update uv.lock after a change to pyproject.toml (keeps the other pins)
	$(UV) lock

lock-upgrade: $(UV_STAMP)  ## Move every pin in uv.lock to the newest release pyproject.toml allows
	$(UV) lock --upgrade

# The direct dependencies at the lowest versions pyproject.toml allows, in a venv of their own,
# then a smoke run: serve, sign up, a local host, a deployment from a git repository over HTTP.
smoke-lowest: $(UV_STAMP) system-deps
	rm -rf $(CHECKS)/lowest
	$(PYTHON) -m venv --without-pip $(CHECKS)/lowest
	$(UV) pip install --quiet --python $(CHECKS)/lowest/bin/python --resolution lowest-direct .
	$(UV) pip list --python $(CHECKS)/lowest/bin/python
	$(CHECKS)/lowest/bin/python -m tests.smoke.lowest

# The wheel as pipx would install it: built, installed (not editable) into a fresh venv with the
# lock's run requirements, then the command, the package data and one page served from it.
wheel-check: $(UV_STAMP)
	# setuptools keeps build/lib between builds: a file deleted from src/ would stay in the wheel.
	rm -rf $(CHECKS)/dist $(CHECKS)/wheel build/lib build/bdist.*
	$(UV) build --quiet --wheel --out-dir $(CHECKS)/dist
	$(UV) export --quiet --no-dev --no-emit-project --format requirements-txt \
		--output-file $(CHECKS)/dist/run.txt
	$(PYTHON) -m venv --without-pip $(CHECKS)/wheel
	$(UV) pip install --quiet --python $(CHECKS)/wheel/bin/python --require-hashes \
		-r $(CHECKS)/dist/run.txt
	$(UV) pip install --quiet --python $(CHECKS)/wheel/bin/python --no-deps $(CHECKS)/dist/*.whl
	$(CHECKS)/wheel/bin/python -m tests.smoke.wheel $(CHECKS)/dist/*.whl

clean:
	rm -rf $(VENV) $(CHECKS) .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.* htmlcov $(OIDC_IDP)/node_modules $(REDOCLY)/node_modules
