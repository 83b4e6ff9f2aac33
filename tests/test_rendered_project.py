"""Second tier: each rendered variant installed into its own virtual environment through
its own Makefile, then its test suite, linters and type checker run and must pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    COOKIECUTTER_JSON,
    DATABASE_AND_OBSERVABILITY,
    UV,
    combination_id,
    require_tool,
)
from live.processes import closed_port

pytestmark = pytest.mark.slow

# The interpreter of this machine and of CI; the rendered Dockerfile uses the same version.
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
INSTALL_TIMEOUT = 600
CHECK_TIMEOUT = 300


def make(
    project: Path, *targets: str, timeout: int, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run_make(project, *targets, timeout=timeout, environment=environment)
    assert result.returncode == 0, (
        f"make {' '.join(targets)} failed in {project.name}\n{result.stdout}\n{result.stderr}"
    )
    return result


def run_make(
    project: Path, *targets: str, timeout: int, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    make_tool = require_tool("make", "apt-get install make")
    return subprocess.run(
        [make_tool, "--no-print-directory", f"PYTHON={sys.executable}", f"UV={UV}", *targets],
        cwd=project,
        env={**os.environ, **(environment or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module", params=DATABASE_AND_OBSERVABILITY, ids=combination_id)
def installed_project(request: pytest.FixtureRequest, render_once: Callable[..., Path]) -> Path:
    """A rendered combination (python_version of this machine) after `make install`.

    Rendered apart from the session's shared trees, since installing writes into it. With
    kubernetes=yes, whose files are a superset: `make lint` reads deploy/kubernetes/k8s.py too."""
    assert PYTHON_VERSION in COOKIECUTTER_JSON["python_version"], "no choice for this Python"
    project = render_once(
        **request.param,
        python_version=PYTHON_VERSION,
        kubernetes="yes",
        project_name=f"Installed {combination_id(request.param)}",
    )
    make(project, "install", timeout=INSTALL_TIMEOUT)
    return project


def database_environment(project: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The throwaway server's settings for a postgres project, nothing for the others."""
    if not (project / "backend/app/db").is_dir():
        return {}
    server = request.getfixturevalue("postgres")
    environment: dict[str, str] = server.environment
    return environment


@pytest.mark.parametrize("target", ["test", "lint", "typecheck"])
def test_rendered_project_passes_its_own_checks(
    installed_project: Path, target: str, request: pytest.FixtureRequest
) -> None:
    environment = database_environment(installed_project, request) if target == "test" else {}
    result = make(installed_project, target, timeout=CHECK_TIMEOUT, environment=environment)
    if target == "test":
        assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout
    if target == "typecheck":
        assert "Success: no issues found" in result.stdout, result.stdout


@pytest.fixture(
    scope="module",
    params=[answers for answers in DATABASE_AND_OBSERVABILITY if answers["database"] == "postgres"],
    ids=combination_id,
)
def installed_postgres_project(
    request: pytest.FixtureRequest, render_once: Callable[..., Path]
) -> Path:
    """The postgres combinations of `installed_project` (the same renders: installing them
    again takes uv a second)."""
    project = render_once(
        **request.param,
        python_version=PYTHON_VERSION,
        kubernetes="yes",
        project_name=f"Installed {combination_id(request.param)}",
    )
    make(project, "install", timeout=INSTALL_TIMEOUT)
    return project


def test_make_test_says_which_database_it_could_not_reach(
    installed_postgres_project: Path,
) -> None:
    installed_project = installed_postgres_project
    with closed_port() as port:
        environment = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(port)}
        result = run_make(installed_project, "test", timeout=CHECK_TIMEOUT, environment=environment)
    assert result.returncode != 0
    assert f"no PostgreSQL answers at 127.0.0.1:{port}" in result.stdout
    assert "POSTGRES_HOST, POSTGRES_PORT" in result.stdout


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(project: Path, code: str) -> set[str]:
    result = subprocess.run(
        [project / "backend/.venv/bin/python", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {normalized(name) for name in result.stdout.split()}


def test_installed_stack_packages_follow_the_variant(installed_project: Path) -> None:
    installed = installed_distributions(
        installed_project,
        "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))",
    )
    stack = {name for name in installed if name.startswith(("opentelemetry", "prometheus"))}
    answers = json.loads((installed_project / ".cookiecutter.json").read_text())["cookiecutter"]
    if answers["include_observability"] == "yes":
        assert {"opentelemetry-sdk", "prometheus-client"} <= stack
    else:
        # FastAPI itself requires opentelemetry-api for its native telemetry, which stays
        # dormant without an SDK; anything beyond FastAPI's own requirements is ours.
        fastapi_requires = installed_distributions(
            installed_project,
            "import importlib.metadata as m, re;"
            "print(*(re.match(r'[A-Za-z0-9_.-]+', r)[0] for r in m.requires('fastapi') or []"
            " if 'extra ==' not in r))",
        )
        assert stack - fastapi_requires == set()


def test_make_migration_check_passes_and_catches_a_migration_that_does_not_reverse(
    installed_postgres_project: Path, request: pytest.FixtureRequest
) -> None:
    """The rendered CI's `migrations` job: on an empty database, upgrade, check, downgrade to
    base, upgrade again. A downgrade that leaves its table behind fails the second upgrade."""
    server = request.getfixturevalue("postgres")
    project = installed_postgres_project
    migration = next((project / "backend/migrations/versions").glob("*_create_items.py"))
    reversible = migration.read_text()
    irreversible = reversible.replace('op.drop_table("items")', "pass")
    assert irreversible != reversible
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    for name, text, passes in (
        ("reversible", reversible, True),
        ("irreversible", irreversible, False),
    ):
        # One server for every combination: a database of its own for each.
        database = f"gate_{name}_{answers['include_observability']}"
        server.psql("postgres", f"CREATE DATABASE {database}")
        migration.write_text(text)
        try:
            result = run_make(
                project,
                "migration-check",
                timeout=CHECK_TIMEOUT,
                environment={**server.environment, "POSTGRES_DB": database},
            )
        finally:
            migration.write_text(reversible)
        assert (result.returncode == 0) is passes, result.stdout + result.stderr
