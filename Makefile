# `make run` and `make test` work on a fresh Linux box with only python3 (>= 3.11):
# they create .venv and install into it. Running needs the runtime dependencies only
# (`make run`, `make check-config`); testing, linting and benchmarking add the `dev` extra.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev
LINT_PATHS := src tests example.py examples $(wildcard bench)

.PHONY: install install-run run test lint lint-deploy format docs screenshots check-config samples bench bench-quick bench-quick-run bench-tokens bench-admin clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The runtime dependencies only (pyproject.toml's `dependencies`).
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

# Everything: the runtime dependencies and the `dev` extra (tests, linters, benchmarks).
$(STAMP): pyproject.toml requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(RUN_STAMP) $(STAMP)

install: $(STAMP)

install-run: $(RUN_STAMP)

# Without FAL_KEY (in the environment or .env) answers come from the built-in simulator.
run: $(RUN_STAMP)
	@if [ -n "$$FAL_KEY" ] || grep -Eqs '^[[:space:]]*FAL_KEY=[^[:space:]]' .env; then \
		$(BIN)/fal-openai-proxy; \
	else \
		echo "FAL_KEY is not set: starting with --simulate (answers are simulated)."; \
		$(BIN)/fal-openai-proxy --simulate; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term

lint: $(STAMP) lint-deploy
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

# The container and deploy files (deploy/README.md). Every tool comes from the dev extra.
# No container engine runs on the build machines: nothing here builds or starts an image.
K8S_VERSION := 1.30.0
RENDERED := $(VENV)/deploy-rendered
lint-deploy: $(STAMP)
	$(BIN)/hadolint Dockerfile
	mkdir -p $(RENDERED)
	$(BIN)/kubectl kustomize deploy/k8s > $(RENDERED)/k8s.yaml
	$(BIN)/kubectl kustomize deploy/k8s/overlays/managed-redis > $(RENDERED)/k8s-managed-redis.yaml
	$(BIN)/kubectl kustomize deploy/k8s/overlays/managed-postgres > $(RENDERED)/k8s-managed-postgres.yaml
	$(BIN)/kubernetes-validate --quiet --strict -k $(K8S_VERSION) \
		$(RENDERED)/k8s.yaml $(RENDERED)/k8s-managed-redis.yaml $(RENDERED)/k8s-managed-postgres.yaml \
		deploy/k8s/base/secret.example.yaml
	PROXY_ENV_FILE=proxy.env.example POSTGRES_ENV_FILE=postgres.env.example \
		$(BIN)/docker-compose -f deploy/compose.yaml config --quiet

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

# docs/configuration.md is generated from the settings model (a test checks it is current).
docs: $(RUN_STAMP)
	$(BIN)/fal-openai-proxy settings-markdown > docs/configuration.md

# docs/console/*.png: every console page at a laptop's and a phone's size, light and dark,
# taken in chromium against the simulator (tests/support/screenshots.py).
screenshots: $(STAMP)
	$(BIN)/python -m tests.support.screenshots docs/console

check-config: $(RUN_STAMP)
	$(BIN)/fal-openai-proxy check-config

# The sample files the examples of README.md and docs/ open (committed; this makes them again).
samples:
	$(PYTHON) examples/make_samples.py

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

bench-quick-run: $(STAMP)  # the same, with FAL_NONSTREAM_MODE=run
	$(BIN)/python -m bench.run --quick --nonstream-mode run

# /v1/messages/count_tokens's estimate, without HTTP (bench/tokens.py).
bench-tokens: $(STAMP)
	$(BIN)/python -m bench.tokens

# GET /admin/usage and the request log over a million generated requests, SQLite and Postgres.
bench-admin: $(STAMP)
	$(BIN)/python -m bench.admin_usage

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
