"""The rendered backend under uvicorn against a real PostgreSQL: data that outlives the
backend, and a database that goes away and comes back under a running backend."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness.backend import BackendProcess
from harness.processes import closed_port

pytestmark = pytest.mark.slow

Start = Callable[[str, dict[str, str]], BackendProcess]


@pytest.fixture(scope="module")
def no_export() -> Iterator[dict[str, str]]:
    """A trace exporter pointed at a port that refuses: these tests are about the database."""
    with closed_port() as port:
        yield {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}


def test_an_item_outlives_the_backend_that_stored_it(
    start_backend: Start, no_export: dict[str, str]
) -> None:
    first = start_backend("db-first", no_export)
    name = f"kept {secrets.token_hex(4)}"
    created = httpx.post(f"{first.url}/api/v1/items", json={"name": name, "price": "9.99"})
    assert created.status_code == 201, created.text
    first.stop()

    second = start_backend("db-second", no_export)
    again = second.get(created.headers["location"])

    assert again.status_code == 200
    assert again.json() == created.json()


def test_a_database_that_stops_and_returns_under_a_running_backend(
    start_backend: Start, no_export: dict[str, str], postgres: Any
) -> None:
    backend = start_backend("db-restart", no_export)
    # Connections in the pool that the restart below will leave dead.
    for _ in range(3):
        assert backend.get("/api/v1/items").status_code == 200

    postgres.kill()
    try:
        # A backend that starts while the database is down starts all the same.
        started_without = start_backend("db-started-without", no_export)
        assert started_without.get("/health/ready").status_code == 503
        assert backend.get("/health/live").status_code == 200
        ready = backend.get("/health/ready")
        assert (ready.status_code, ready.json()["checks"]) == (503, {"database": "fail"})
        failed = backend.get("/api/v1/items")
        assert failed.status_code == 503
        assert failed.json() == {
            "detail": "Service Unavailable: the database did not answer",
            "request_id": failed.headers["x-request-id"],
        }
    finally:
        postgres.start()

    # Every pooled connection died with the server; each is replaced as it is checked out
    # (the driver saw it close: no round trip to find out), so the first request succeeds,
    # a write (never run again) as well as a read.
    assert backend.get("/api/v1/items").status_code == 200
    item = {"name": f"back {secrets.token_hex(4)}", "price": "1.00"}
    again = httpx.post(f"{backend.url}/api/v1/items", json=item)
    assert again.status_code == 201, again.text
    assert backend.get("/health/ready").status_code == 200
    assert [backend.get("/api/v1/items").status_code for _ in range(5)] == [200] * 5
    assert started_without.get("/health/ready").status_code == 200
    assert started_without.get("/api/v1/items").status_code == 200
    logged = backend.process.stdout() + backend.process.stderr()
    assert postgres.password not in logged
    assert "Traceback" not in failed.text
