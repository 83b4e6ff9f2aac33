# Commands for working on the template itself; `make help` lists them.
.DEFAULT_GOAL := help
.PHONY: help bake test test-fast lint lock bench

VENV := .venv
BIN := $(VENV)/bin
BUILD := build
# Answers for `make bake`, e.g. OPTIONS="include_observability=no backend_port=8080".
OPTIONS ?=
# uv installs the test tools from uv.lock; this bootstrap copy must match the `uv` pin of the
# test group in pyproject.toml (tests/test_versions.py checks it).
UV_VERSION := 0.13.9
# Named paths: ruff would otherwise read the template's Jinja-laden pyproject.toml.
PYTHON_PATHS := hooks harness tests scripts $(wildcard bench)

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/pytest: pyproject.toml uv.lock
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --quiet --locked --python $(BIN)/python
	touch $@

bake: $(BIN)/pytest ## Render the template into build/ (answers from OPTIONS="name=value ...")
	rm -rf $(BUILD)
	$(BIN)/cookiecutter --no-input --output-dir $(BUILD) . $(OPTIONS)

# pytest exits 5 when it collected nothing: say so, since that is never a pass.
test: $(BIN)/pytest ## Run every test: the fast tier and the slow one (real tools, rendered projects)
	@$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; fi; \
	exit $$status

test-fast: $(BIN)/pytest ## Run the fast tier only (rendered output checks, under a minute)
	$(BIN)/pytest -m "not slow"

lint: $(BIN)/pytest ## Lint and typecheck the hooks and tests, lint the workflow
	$(BIN)/ruff check $(PYTHON_PATHS)
	$(BIN)/ruff format --check $(PYTHON_PATHS)
	$(BIN)/mypy
	$(BIN)/yamllint --strict -c tests/yamllint.yml .github

# UPGRADE=1 takes the newest version of everything instead of keeping the locked ones.
lock: $(BIN)/pytest ## Rewrite uv.lock and the rendered backend's lockfiles from their pyproject.toml
	$(BIN)/uv lock $(if $(UPGRADE),--upgrade)
	$(BIN)/python scripts/lock_backend.py $(if $(UPGRADE),--upgrade)

bench: $(BIN)/pytest ## Measure what telemetry costs, both variants side by side (bench/README.md)
	$(BIN)/python bench/bench.py
