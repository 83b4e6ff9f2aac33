"""Schemathesis against each combination's own OpenAPI, served by uvicorn: whatever a client
sends, no answer is a server error, and every answer matches the schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATABASE_AND_OBSERVABILITY, WITH_WORKER, combination_id

from harness.backend import BackendProcess, backend_venv, compose_environment, run_in_venv
from harness.processes import closed_port

from .traffic import FAILING_ROUTE, HOLD_ROUTE

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = "not_a_server_error,response_schema_conformance"
# The operations of the API's schema; the worker adds an import and a job's state.
OPERATIONS = 7
WORKER_OPERATIONS = 2


@pytest.mark.parametrize("answers", [*DATABASE_AND_OBSERVABILITY, *WITH_WORKER], ids=combination_id)
def test_no_input_makes_a_server_error_and_every_answer_matches_the_schema(
    answers: dict[str, str],
    render_once: Callable[..., Path],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    venv_cache: Path,
) -> None:
    project = render_once(**answers, python_version="3.11")
    backend_dir = project / "backend"
    venv = backend_venv(backend_dir, venv_cache)
    environment = compose_environment(project, "backend")
    if answers["database"] == "postgres":
        postgres: Any = request.getfixturevalue("postgres")
        database = f"fuzz_{answers['include_observability']}_{answers.get('worker', 'none')}"
        postgres.psql("postgres", f"CREATE DATABASE {database}")
        environment |= {**postgres.environment, "POSTGRES_DB": database}
        run_in_venv(venv, ["alembic", "upgrade", "head"], backend_dir, environment)
    operations = OPERATIONS
    if answers.get("worker") == "taskiq":
        environment |= request.getfixturevalue("redis").environment
        operations += WORKER_OPERATIONS
    with closed_port() as refused:
        if answers["include_observability"] == "yes":
            environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{refused}"
        workdir = tmp_path_factory.mktemp("fuzz")
        backend = BackendProcess("fuzzed", backend_dir, venv, workdir, environment)
        try:
            backend.wait_live()
            options = ["--checks", CHECKS, "--max-examples", "30", "--seed", "1"]
            # One worker: CPython 3.11's ast.parse, which Hypothesis calls, is not thread-safe.
            options += ["--generation-database", "none", "--workers", "1"]
            # The live tests' own routes (one fails on purpose) are not the service's.
            options += ["--exclude-path", FAILING_ROUTE, "--exclude-path", HOLD_ROUTE]
            result = subprocess.run(
                [str(SCHEMATHESIS), "run", f"{backend.url}/openapi.json", *options],
                # Schemathesis keeps a .schemathesis/ cache in its working directory.
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            backend.stop()
    assert result.returncode == 0, result.stdout[-6000:]
    tested = f"Tested: {operations}"
    assert " passed" in result.stdout and tested in result.stdout, result.stdout[-3000:]
