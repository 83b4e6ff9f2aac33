"""Shared fixtures: rendering the template and finding the real tools the tests drive."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from harness.postgres import MissingTool, PostgresServer
from harness.processes import ThrowawayServer
from harness.redis_server import RedisServer
from harness.rendering import (
    COMPOSE_BINARY,
    COOKIECUTTER_JSON,
    TEMPLATE_DIR,
    UV,
    render,
    resolved_compose,
)

__all__ = [
    "COMPOSE_BINARY",
    "COOKIECUTTER_JSON",
    "TEMPLATE_DIR",
    "UV",
    "render",
    "resolved_compose",
]

UNDER_CI = os.environ.get("CI", "").lower() == "true"
# Every combination of the template's choice options (python_version, yes/no features...).
CHOICE_OPTIONS = [
    name
    for name, value in COOKIECUTTER_JSON.items()
    if isinstance(value, list) and not name.startswith("_")
]
# The log collector is part of the stack: without it only its default is rendered. The
# Kubernetes files do not depend on the Python version: kubernetes=yes with its default only.
CHOICE_COMBINATIONS = [
    answers
    for values in itertools.product(*(COOKIECUTTER_JSON[name] for name in CHOICE_OPTIONS))
    for answers in [dict(zip(CHOICE_OPTIONS, values, strict=True))]
    if (
        answers["include_observability"] == "yes"
        or answers["log_collector"] == COOKIECUTTER_JSON["log_collector"][0]
    )
    and (
        answers["kubernetes"] == "no"
        or answers["python_version"] == COOKIECUTTER_JSON["python_version"][0]
    )
]


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies' `cookies` fixture bakes the template named by --template (default: the
    # working directory); name this repository, wherever pytest is started from.
    config.option.template = str(TEMPLATE_DIR)


def combination_id(answers: dict[str, str]) -> str:
    return "-".join(f"{name}={value}" for name, value in answers.items())


def env_values(text: str) -> dict[str, str]:
    """The variables of a .env-style file, in order, with their values."""
    return dict(
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def env_keys(text: str) -> list[str]:
    """The variable names of a .env-style file, in order."""
    return list(env_values(text))


# Prometheus, promtool, Alertmanager and amtool of the versions compose pins, built as .ci/run does.
PINNED_BUILD_HINT = "the version compose pins, built from the Go module proxy as .ci/run does"


def require_tool(name: str, hint: str) -> str:
    """Path of a command-line tool; a skip where it is missing, a failure under CI."""
    path = shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed ({hint})")
    return path


def missing_tool(message: str) -> NoReturn:
    if UNDER_CI:
        pytest.fail(f"{message}; CI must install it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def render_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Render each distinct set of answers once per session; tests must not modify the tree."""
    cache: dict[tuple[tuple[str, str], ...], Path] = {}

    def _render(**overrides: str) -> Path:
        key = tuple(sorted(overrides.items()))
        if key not in cache:
            cache[key] = render(tmp_path_factory.mktemp("render"), **overrides)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def project_yes(render_once: Callable[..., Path]) -> Path:
    return render_once(include_observability="yes")


@pytest.fixture(scope="session")
def project_no(render_once: Callable[..., Path]) -> Path:
    return render_once(include_observability="no")


@pytest.fixture(
    scope="session", params=["yes", "no"], ids=["observability-yes", "observability-no"]
)
def project(request: pytest.FixtureRequest, render_once: Callable[..., Path]) -> Path:
    """Each variant of the defaults, read-only."""
    return render_once(include_observability=request.param)


@pytest.fixture(
    scope="session",
    params=["yes", "no"],
    ids=["database-none-observability-yes", "database-none-observability-no"],
)
def project_without_database(
    request: pytest.FixtureRequest, render_once: Callable[..., Path]
) -> Path:
    """database=none with each observability value, read-only."""
    return render_once(database="none", include_observability=request.param)


DATABASE_AND_OBSERVABILITY = [
    {"database": database, "include_observability": observability}
    for database in COOKIECUTTER_JSON["database"]
    for observability in COOKIECUTTER_JSON["include_observability"]
]
# The worker with each database and with the stack on and off, in two renders: what the
# worker adds depends on each option alone.
WITH_WORKER = [
    {"database": "postgres", "include_observability": "yes", "worker": "taskiq"},
    {"database": "none", "include_observability": "no", "worker": "taskiq"},
]


@pytest.fixture(
    scope="session", params=[*DATABASE_AND_OBSERVABILITY, *WITH_WORKER], ids=combination_id
)
def combination(request: pytest.FixtureRequest, render_once: Callable[..., Path]) -> Path:
    """Each combination of the database and observability options, and the worker with each
    database and each observability answer; read-only."""
    return render_once(**request.param)


# Every rendering with different files outside the backend: each database/observability
# combination, the worker's, and the other log collector.
RENDER_VARIANTS = [
    *DATABASE_AND_OBSERVABILITY,
    *WITH_WORKER,
    {"include_observability": "yes", "log_collector": COOKIECUTTER_JSON["log_collector"][1]},
]


@pytest.fixture(scope="session", params=RENDER_VARIANTS, ids=combination_id)
def variant(request: pytest.FixtureRequest, render_once: Callable[..., Path]) -> Path:
    """Each rendering variant of RENDER_VARIANTS, read-only."""
    return render_once(**request.param)


@pytest.fixture(scope="session")
def project_with_worker(render_once: Callable[..., Path]) -> Path:
    """The defaults (the stack and postgres on) with the worker: every rule file, every
    dashboard, every service."""
    return render_once(worker="taskiq")


@pytest.fixture(scope="session", params=COOKIECUTTER_JSON["log_collector"])
def project_with_collector(
    request: pytest.FixtureRequest, render_once: Callable[..., Path]
) -> Path:
    """The "yes" defaults with each log collector (the default one shares project_yes)."""
    default = request.param == COOKIECUTTER_JSON["log_collector"][0]
    return render_once(
        include_observability="yes", **({} if default else {"log_collector": request.param})
    )


Server = TypeVar("Server", bound=ThrowawayServer)


@contextlib.contextmanager
def running(server_type: type[Server]) -> Iterator[Server]:
    """A throwaway server of harness/, started, and removed when the block ends; a skip where
    its program is missing, a failure under CI."""
    try:
        server = server_type()
    except MissingTool as missing:
        missing_tool(str(missing))
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (harness/postgres.py)."""
    with running(PostgresServer) as server:
        yield server


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """A throwaway Redis server for the session (harness/redis_server.py)."""
    with running(RedisServer) as server:
        yield server
