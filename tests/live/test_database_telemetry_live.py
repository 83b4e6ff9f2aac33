"""The database's telemetry through the real processes: a read's server span and its
database child at the OTLP receiver, and the pool's metrics when it runs dry."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.backend import BackendProcess
from harness.processes import closed_port, wait_until

from .exposition import scrape
from .otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, OtlpTraceReceiver, ReceivedSpan
from .traffic import HOLD_ROUTE

pytestmark = pytest.mark.slow

Start = Callable[[str, dict[str, str]], BackendProcess]


def trace_of(
    backend: BackendProcess, receiver: OtlpTraceReceiver, response: httpx.Response, count: int
) -> list[ReceivedSpan]:
    (line,) = backend.access_lines_of([response.headers["x-request-id"]])

    def received() -> list[ReceivedSpan] | None:
        spans = [s for s in receiver.spans() if s.trace_id == line["trace_id"]]
        return spans if len(spans) >= count else None

    return wait_until(received, 30, f"{count} spans of trace {line['trace_id']}")


def test_a_read_exports_its_server_span_and_one_database_child(
    backend: BackendProcess, otlp_receiver: OtlpTraceReceiver
) -> None:
    secret = f"secret {secrets.token_hex(8)}"
    created = httpx.post(f"{backend.url}/api/v1/items", json={"name": secret, "price": "4.20"})
    assert created.status_code == 201
    read = backend.get(created.headers["location"])

    spans = trace_of(backend, otlp_receiver, read, 2)

    (server,) = [s for s in spans if s.kind == SPAN_KIND_SERVER]
    (statement,) = [s for s in spans if s.kind == SPAN_KIND_CLIENT]
    assert len(spans) == 2
    assert statement.parent_span_id == server.span_id
    assert statement.name == "SELECT items"
    expected = {
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "db.collection.name": "items",
    }
    assert {key: statement.attributes.get(key) for key in expected} == expected
    assert {"db.namespace", "server.address", "server.port", "db.query.text"} <= set(
        statement.attributes
    )
    for span in trace_of(backend, otlp_receiver, created, 2):
        assert secret not in str(span.attributes), span.name


@pytest.fixture(scope="module")
def one_connection(start_backend: Start) -> Iterator[BackendProcess]:
    """A backend whose pool holds one connection and gives up waiting after half a second."""
    with closed_port() as port:
        yield start_backend(
            "db-one-connection",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "DATABASE_POOL_SIZE": "1",
                "DATABASE_MAX_OVERFLOW": "0",
                "DATABASE_POOL_TIMEOUT": "0.5",
            },
        )


def metric(backend: BackendProcess, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for sample in scrape(backend.url)
        if sample.name == name and labels.items() <= dict(sample.labels).items()
    )


def test_a_saturated_pool_shows_in_use_at_the_maximum_and_counts_timeouts(
    one_connection: BackendProcess,
) -> None:
    async def saturate() -> list[int]:
        async with httpx.AsyncClient(base_url=one_connection.url, timeout=10) as client:
            holding = asyncio.create_task(client.get(HOLD_ROUTE, params={"seconds": 3}))
            await asyncio.sleep(0.5)  # the hold has the only connection now
            during = await asyncio.to_thread(
                lambda: metric(one_connection, "db_client_connections", state="used")
            )
            waiting = await client.get("/api/v1/items")
            held = await holding
            return [int(during), waiting.status_code, held.status_code]

    timeouts_before = metric(one_connection, "db_client_connection_timeouts_total")

    in_use, waiting_status, held_status = asyncio.run(saturate())

    assert (in_use, waiting_status, held_status) == (1, 503, 200)
    assert metric(one_connection, "db_client_connections_max") == 1
    assert metric(one_connection, "db_client_connection_timeouts_total") > timeouts_before
    assert metric(one_connection, "db_client_connection_wait_seconds_count") >= 2
    assert metric(one_connection, "db_client_connections", state="used") == 0
