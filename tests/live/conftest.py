"""Session fixtures of the live tier: one rendered "yes" project, its backend, a real
OTLP receiver and a real Prometheus, all on 127.0.0.1 and all stopped at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import resolved_compose

from harness.backend import (
    FAST_BATCH_EXPORT,
    BackendProcess,
    backend_venv,
    compose_environment,
    run_in_venv,
)
from harness.postgres import DATABASE

from .otlp_receiver import OtlpTraceReceiver
from .prometheus_server import PrometheusServer, running_prometheus
from .traffic import Traffic, mixed_calls, send_all


@pytest.fixture(scope="session")
def live_project(render_once: Callable[..., Path]) -> Path:
    # 3.11: the interpreter this machine (and CI) runs the backend with outside Docker.
    return render_once(include_observability="yes", python_version="3.11")


@pytest.fixture(scope="session")
def venv_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the rendered backends' virtualenvs are kept between sessions."""
    cache = request.config.cache  # None under `-p no:cacheprovider`: build them every session
    return cache.mkdir("live-backend-venv") if cache else tmp_path_factory.mktemp("venv")


@pytest.fixture(scope="session")
def live_venv(live_project: Path, venv_cache: Path) -> Path:
    return backend_venv(live_project / "backend", venv_cache)


@pytest.fixture(scope="session")
def live_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpTraceReceiver]:
    receiver = OtlpTraceReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


TABLES = (
    "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables"
    " WHERE schemaname = 'public'"
)


@pytest.fixture(scope="session")
def live_database(live_project: Path, live_venv: Path, postgres: Any) -> dict[str, str]:
    """The throwaway PostgreSQL, migrated from empty as compose's migrate service does it:
    the command of that service, run with the backend's venv. Returns its settings."""
    assert postgres.psql(DATABASE, TABLES) == "", "the database is not empty"
    command = resolved_compose(live_project)["services"]["migrate"]["command"]
    run_in_venv(live_venv, command, live_project / "backend", postgres.environment)
    assert postgres.psql(DATABASE, TABLES).split() == ["alembic_version", "items"]
    environment: dict[str, str] = postgres.environment
    return environment


@pytest.fixture(scope="session")
def start_backend(
    live_project: Path, live_venv: Path, live_workdir: Path, live_database: dict[str, str]
) -> Iterator[Callable[[str, dict[str, str]], BackendProcess]]:
    """Start a backend process with the environment Compose gives it, the trace exporter's
    address and the database replaced; every one is stopped at session end."""
    compose_env = compose_environment(live_project, "backend")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in compose_env, "compose sets no trace exporter"
    started: list[BackendProcess] = []

    def _start(name: str, overrides: dict[str, str]) -> BackendProcess:
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in overrides, "Tempo does not run here"
        environment = {**compose_env, **live_database, **FAST_BATCH_EXPORT, **overrides}
        backend = BackendProcess(
            name, live_project / "backend", live_venv, live_workdir / name, environment
        )
        started.append(backend)
        backend.wait_live()
        return backend

    yield _start
    for backend in started:
        backend.stop()


@pytest.fixture(scope="session")
def backend(
    start_backend: Callable[[str, dict[str, str]], BackendProcess],
    otlp_receiver: OtlpTraceReceiver,
) -> BackendProcess:
    """The backend as compose runs it, exporting its spans to the in-process receiver."""
    return start_backend("backend", {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint})


@pytest.fixture(scope="session")
def prometheus(
    live_project: Path, backend: BackendProcess, live_workdir: Path
) -> Iterator[PrometheusServer]:
    with running_prometheus(
        live_project, {"backend": f"127.0.0.1:{backend.port}"}, live_workdir / "prometheus"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def traffic(backend: BackendProcess) -> Traffic:
    """One round of every kind of answer, sent concurrently, before the checks look at it."""
    started_at = time.time()
    answers = send_all(backend.url, mixed_calls())
    return Traffic(answers, started_at, time.time())
