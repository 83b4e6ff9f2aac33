# Commands for working on the template itself; `make help` lists them.
.DEFAULT_GOAL := help
.PHONY: help bake test test-fast lint bench

VENV := .venv
BIN := $(VENV)/bin
BUILD := build
# Answers for `make bake`, e.g. OPTIONS="include_observability=no backend_port=8080".
OPTIONS ?=
# Named paths: ruff would otherwise read the template's Jinja-laden pyproject.toml.
PYTHON_PATHS := hooks tests $(wildcard bench)

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/pytest: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --group test
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

bench: $(BIN)/pytest ## Measure what telemetry costs, both variants side by side (bench/README.md)
	$(BIN)/python bench/bench.py
