"""Second tier: each rendered variant installed into its own virtual environment through
its own Makefile, then its test suite, linters and type checker run and must pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    COOKIECUTTER_JSON,
    DATABASE_AND_OBSERVABILITY,
    UV,
    WITH_WORKER,
    combination_id,
    require_tool,
)

from harness.processes import closed_port

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


def with_uv_on_path(environment: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the test environment's uv on the PATH, as on a
    developer's machine (the tasks run it by name), and `environment` on top."""
    path = f"{UV.parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, **(environment or {})}


def run_make(
    project: Path, *targets: str, timeout: int, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    make_tool = require_tool("make", "apt-get install make")
    return subprocess.run(
        [make_tool, "--no-print-directory", f"PYTHON={sys.executable}", f"UV={UV}", *targets],
        cwd=project,
        env=with_uv_on_path(environment),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(
    scope="module", params=[*DATABASE_AND_OBSERVABILITY, *WITH_WORKER], ids=combination_id
)
def installed_project(request: pytest.FixtureRequest, render_once: Callable[..., Path]) -> Path:
    """A rendered combination after `make install`."""
    return rendered_and_installed(request.param, render_once)


def rendered_and_installed(answers: dict[str, str], render_once: Callable[..., Path]) -> Path:
    """`answers` rendered (python_version of this machine) and `make install`ed.

    Rendered apart from the session's shared trees, since installing writes into it. With
    kubernetes=yes, whose files are a superset: `make lint` reads deploy/kubernetes/k8s.py too."""
    assert PYTHON_VERSION in COOKIECUTTER_JSON["python_version"], "no choice for this Python"
    project = render_once(
        **answers,
        python_version=PYTHON_VERSION,
        kubernetes="yes",
        project_name=f"Installed {' '.join(answers.values())}",
    )
    make(project, "install", timeout=INSTALL_TIMEOUT)
    return project


def servers_environment(project: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The throwaway servers' settings the project needs: PostgreSQL's with postgres, Redis's
    with the worker, nothing for the others."""
    environment: dict[str, str] = {}
    if (project / "backend/app/db").is_dir():
        environment |= request.getfixturevalue("postgres").environment
    if (project / "backend/app/jobs").is_dir():
        environment |= request.getfixturevalue("redis").environment
    return use_servers(project, environment) if environment else {}


def use_servers(project: Path, environment: dict[str, str]) -> dict[str, str]:
    """`environment`, also written over the same variables of the project's .env.

    The project's tasks read .env, whose values win over the environment's: a developer
    pointing the project at another server sets them there too."""
    env_file = project / ".env"
    lines = env_file.read_text(encoding="utf-8").splitlines()
    env_file.write_text(
        "".join(
            f"{key}={environment[key]}\n" if key in environment else f"{line}\n"
            for line in lines
            for key in [line.split("=", 1)[0]]
        ),
        encoding="utf-8",
    )
    return environment


@pytest.mark.parametrize("target", ["test", "lint", "typecheck"])
def test_rendered_project_passes_its_own_checks(
    installed_project: Path, target: str, request: pytest.FixtureRequest
) -> None:
    environment = servers_environment(installed_project, request) if target == "test" else {}
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
    return rendered_and_installed(request.param, render_once)


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
                environment=use_servers(project, {**server.environment, "POSTGRES_DB": database}),
            )
        finally:
            migration.write_text(reversible)
        assert (result.returncode == 0) is passes, result.stdout + result.stderr


# --- The development commands: one task each in backend/pyproject.toml, on every OS -------

# What only a POSIX shell understands, or only a POSIX system has.
POSIX_ONLY = re.compile(r"&&|\|\||[|;<>`]|\$\(|/dev/|\.venv/bin|\bsed\b|\benv\b|~/")
# Tasks a Makefile target has no reason to repeat: `serve` is `dev` without migrating.
TASKS_WITHOUT_A_TARGET = {"serve"}


def poe_tasks(project: Path) -> dict[str, Any]:
    pyproject = tomllib.loads((project / "backend/pyproject.toml").read_text(encoding="utf-8"))
    tasks: dict[str, Any] = pyproject["tool"]["poe"]["tasks"]
    return tasks


def commands(task: dict[str, Any]) -> list[str]:
    """Every command line of a task, its sequence's included."""
    if "cmd" in task:
        return [task["cmd"]]
    return [
        line
        for step in task.get("sequence", [])
        if isinstance(step, dict)
        for line in commands(step)
    ]


def test_every_make_target_calls_the_task_of_its_name_and_no_task_needs_a_posix_shell(
    installed_project: Path,
) -> None:
    tasks = poe_tasks(installed_project)
    makefile = (installed_project / "Makefile").read_text(encoding="utf-8")
    targets = {
        target
        for target in re.findall(r"^([a-z-]+):.*## ", makefile, re.MULTILINE)
        if target != "help" and not target.startswith("k8s-")
    }
    assert targets == set(tasks) - TASKS_WITHOUT_A_TARGET
    for target in targets - {"lock"}:
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert recipe and re.search(rf"^\t\$\(POE\) {target}\b", recipe[1], re.M), target
    for name, task in tasks.items():
        assert set(task) <= {"help", "cmd", "sequence", "ref", "cwd", "args", "env"}, name
        for line in commands(task):
            assert not POSIX_ONLY.search(line), f"{name}: {line}"
        assert "\\" not in task.get("cwd", ""), name


def test_every_task_resolves_with_poe(installed_project: Path) -> None:
    """Each task as poe would run it (--dry-run: Docker, a browser and a running stack are
    not here; the others run for real through make in the tests above)."""
    arguments = {"revision": ["add a column"]}
    for name in poe_tasks(installed_project):
        result = subprocess.run(
            [str(UV), "run", "--directory", "backend", "--locked", "poe", "--dry-run", name,
             *arguments.get(name, [])],
            cwd=installed_project, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert "Poe =>" in result.stderr + result.stdout, name


def test_lock_and_format_run_for_real_and_change_nothing(installed_project: Path) -> None:
    """Two tasks the make targets above do not run: on a fresh render, both are no-ops."""
    before = {
        path: path.read_bytes()
        for path in installed_project.rglob("*")
        if path.is_file() and ".venv" not in path.parts and "__pycache__" not in path.parts
    }
    for task in ("lock", "format"):
        result = subprocess.run(
            [str(UV), "run", "--directory", "backend", "--frozen", "poe", task],
            cwd=installed_project, capture_output=True, text=True, timeout=300, check=False,
            env=with_uv_on_path(),
        )  # fmt: skip
        assert result.returncode == 0, f"{task}: {result.stdout}{result.stderr}"
    changed = [
        str(path.relative_to(installed_project))
        for path, content in before.items()
        if path.read_bytes() != content
    ]
    assert changed == []
