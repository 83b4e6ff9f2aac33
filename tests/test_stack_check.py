"""The rendered `observability/stack_check.py` against a stand-in for Grafana and the backend.

Only a Docker engine can show the script against the real stack (tests/test_docker_stack.py);
here a local HTTP server answers the requests the script makes, so its verdicts are proven:
it passes on a healthy stack with data and names what is wrong otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FRAME_WITH_DATA = {"data": {"values": [[1700000000000], [42]]}}


class FakeGrafana:
    """Answers Grafana's datasource health, dashboard and query APIs, and the backend's list."""

    def __init__(self) -> None:
        self.unhealthy: set[str] = set()
        self.dashboards: dict[str, str] = {}  # uid -> title, the provisioned ones
        self.authorizations: set[str] = set()
        self.queried_uids: set[str] = set()
        self.queries: set[str] = set()

    def answer(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        if path.startswith("/api/datasources/uid/") and path.endswith("/health"):
            uid = path.split("/")[4]
            return {"status": "ERROR" if uid in self.unhealthy else "OK", "message": uid}
        if path == "/api/datasources/proxy/uid/alertmanager/api/v2/status":
            return None if "alertmanager" in self.unhealthy else {"config": {"original": ""}}
        if path.startswith("/api/dashboards/uid/"):
            uid = path.rsplit("/", 1)[1]
            title = self.dashboards.get(uid)
            return None if title is None else {"dashboard": {"uid": uid, "title": title}}
        if path == "/api/ds/query" and method == "POST" and body is not None:
            query = body["queries"][0]
            self.queried_uids.add(query["datasource"]["uid"])
            self.queries.add(query.get("expr") or query["query"])
            return {"results": {"A": {"frames": [FRAME_WITH_DATA]}}}
        if path == "/api/v1/items":
            return []
        return None


def serve(fake: FakeGrafana) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.authorizations.add(self.headers.get("Authorization", ""))
            answer = fake.answer(method, self.path, body)
            payload = json.dumps(answer).encode()
            self.send_response(404 if answer is None else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def fake_stack(render_once: Callable[..., Path]) -> Iterator[tuple[FakeGrafana, Path]]:
    with faked_stack(render_once) as stack:
        yield stack


@contextlib.contextmanager
def faked_stack(
    render_once: Callable[..., Path], **answers: str
) -> Iterator[tuple[FakeGrafana, Path]]:
    """A rendered project whose Grafana and backend ports both reach one FakeGrafana."""
    fake = FakeGrafana()
    grafana, backend = serve(fake), serve(fake)
    try:
        project = render_once(
            include_observability="yes",
            grafana_port=str(grafana.server_address[1]),
            backend_port=str(backend.server_address[1]),
            **answers,
        )
        for path in (project / "observability/grafana/dashboards").glob("*.json"):
            dashboard = json.loads(path.read_text())
            fake.dashboards[dashboard["uid"]] = dashboard["title"]
        yield fake, project
    finally:
        for server in (grafana, backend):
            server.shutdown()
            server.server_close()


def run_stack_check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "observability/stack_check.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_value(project: Path, name: str) -> str:
    for line in (project / ".env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{name} is not in .env")


def test_passes_on_a_healthy_stack_with_data_signing_in_with_env_credentials(
    fake_stack: tuple[FakeGrafana, Path],
) -> None:
    fake, project = fake_stack
    result = run_stack_check(project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok: ") == 3
    assert fake.queried_uids == {"prometheus", "loki", "tempo"}
    credentials = f"{env_value(project, 'GRAFANA_ADMIN_USER')}:"
    credentials += env_value(project, "GRAFANA_ADMIN_PASSWORD")
    assert f"Basic {base64.b64encode(credentials.encode()).decode()}" in fake.authorizations


def test_with_the_worker_it_also_asks_for_the_worker_s_scrape_and_logs(
    render_once: Callable[..., Path],
) -> None:
    with faked_stack(render_once, worker="taskiq") as (fake, project):
        result = run_stack_check(project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok: ") == 5
    assert {'up{job="worker"} == 1', '{service="worker"} | json'} <= fake.queries


@pytest.mark.parametrize("uid", ["prometheus", "loki", "tempo"])
def test_fails_naming_an_unhealthy_datasource(
    fake_stack: tuple[FakeGrafana, Path], uid: str
) -> None:
    fake, project = fake_stack
    fake.unhealthy.add(uid)
    result = run_stack_check(project)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("FAILED")] == [
        f"FAILED: datasource {uid}: {{'status': 'ERROR', 'message': '{uid}'}}"
    ]


def test_fails_when_grafana_does_not_reach_alertmanager(
    fake_stack: tuple[FakeGrafana, Path],
) -> None:
    fake, project = fake_stack
    fake.unhealthy.add("alertmanager")
    result = run_stack_check(project)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("FAILED")] == [
        "FAILED: datasource alertmanager: HTTP Error 404: Not Found"
    ]


def test_fails_naming_a_dashboard_grafana_did_not_provision(
    fake_stack: tuple[FakeGrafana, Path],
) -> None:
    fake, project = fake_stack
    assert {"backend-service", "slo", "log-explorer", "trace-explorer"} <= set(fake.dashboards)
    del fake.dashboards["log-explorer"]
    fake.dashboards["slo"] = "Another title"
    result = run_stack_check(project)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("FAILED")] == [
        "FAILED: dashboard log-explorer: not provisioned (404)",
        "FAILED: dashboard slo: 'Another title'",
    ]
