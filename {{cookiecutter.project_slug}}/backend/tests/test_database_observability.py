"""The database's spans and metrics: one CLIENT span per statement under the request's span,
with the stable conventions and no bound value, and the pool and statement metrics."""

import re

import httpx2
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from app.db.engine import Database, Session
from app.main import create_app
from app.observability import create_telemetry
from app.settings import Settings
from tests.test_database import run_in_one_loop
from tests.test_metrics import samples

SECRET_NAME = "a name that must stay out of every span"  # noqa: S105 (not a password)


def database_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == SpanKind.CLIENT]


def value(client: TestClient, name: str, **labels: str) -> float:
    return sum(s.value for s in samples(client, name) if labels.items() <= s.labels.items())


def test_a_request_gets_one_client_span_per_statement_under_its_own(
    client: TestClient, spans: InMemorySpanExporter, settings: Settings
) -> None:
    item_id = client.post("/api/v1/items", json={"name": SECRET_NAME, "price": "1"}).json()["id"]
    spans.clear()

    client.get(f"/api/v1/items/{item_id}")

    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    (statement,) = database_spans(spans)
    assert statement.name == "SELECT items"
    assert statement.parent is not None
    assert server.context is not None
    assert statement.parent.span_id == server.context.span_id
    assert statement.context is not None
    assert statement.context.trace_id == server.context.trace_id
    attributes = dict(statement.attributes or {})
    assert {key: value for key, value in attributes.items() if key != "db.query.text"} == {
        "db.system.name": "postgresql",
        "db.namespace": settings.postgres_db,
        "db.operation.name": "SELECT",
        "db.collection.name": "items",
        "server.address": settings.postgres_host,
        "server.port": settings.postgres_port,
    }
    assert re.search(r"FROM items\s+WHERE items.id = \$1", str(attributes["db.query.text"]))


def test_no_bound_value_reaches_a_span(client: TestClient, spans: InMemorySpanExporter) -> None:
    client.post("/api/v1/items", json={"name": SECRET_NAME, "price": "123.45"})

    (insert,) = database_spans(spans)
    assert insert.name == "INSERT items"
    for attribute in (insert.attributes or {}).values():
        assert SECRET_NAME not in str(attribute)
        assert "123.45" not in str(attribute)


def test_probes_and_scrapes_make_no_span(client: TestClient, spans: InMemorySpanExporter) -> None:
    client.get("/api/v1/items")  # a pooled connection, for the readiness check's statement
    spans.clear()

    client.get("/health/ready")
    client.get("/metrics")

    assert spans.get_finished_spans() == ()


def test_a_failing_statement_fails_its_span_and_the_request(
    app: FastAPI, spans: InMemorySpanExporter
) -> None:
    async def broken(session: Session) -> None:
        await session.execute(text("SELECT * FROM no_such_table"))

    app.add_api_route("/test/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/test/broken").status_code == 500
        assert value(client, "db_client_transaction_rollbacks_total") == 1

    (statement,) = database_spans(spans)
    # Raw SQL names no table SQLAlchemy knows: the span is named after its operation only.
    assert statement.name == "SELECT"
    assert "db.collection.name" not in (statement.attributes or {})
    assert statement.status.status_code == StatusCode.ERROR
    # 42P01: undefined_table, the server's own code for it.
    assert (statement.attributes or {})["error.type"] == "42P01"
    assert (statement.attributes or {})["db.response.status_code"] == "42P01"
    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.status.status_code == StatusCode.ERROR


def test_statements_are_timed_by_operation_with_trace_exemplars(client: TestClient) -> None:
    client.post("/api/v1/items", json={"name": "pen", "price": "1"})
    client.get("/api/v1/items")

    name = "db_client_operation_duration_seconds_count"
    assert value(client, name, operation="INSERT") == 1
    assert value(client, name, operation="SELECT") >= 1
    assert {s.labels["operation"] for s in samples(client, name)} <= {
        "SELECT", "INSERT", "UPDATE", "DELETE", "OTHER"
    }  # fmt: skip
    assert value(client, "db_client_transaction_rollbacks_total") == 0
    openmetrics = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    ).text
    assert re.search(
        r'^db_client_operation_duration_seconds_bucket\{[^}]*operation="INSERT"[^}]*\} 1\.0 '
        r'# \{trace_id="[0-9a-f]{32}"\}',
        openmetrics,
        re.MULTILINE,
    )


def test_a_statement_over_the_threshold_counts_as_slow(settings: Settings) -> None:
    strict = settings.model_copy(update={"database_slow_statement_seconds": 1e-9})
    with TestClient(create_app(strict)) as client:
        client.get("/api/v1/items")
        assert value(client, "db_client_slow_operations_total", operation="SELECT") >= 1
    with TestClient(create_app(settings)) as client:
        client.get("/api/v1/items")
        assert value(client, "db_client_slow_operations_total") == 0


def test_the_pool_shows_its_connections_waits_and_timeouts(settings: Settings) -> None:
    one = settings.model_copy(
        update={"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 0.2}
    )

    telemetry = create_telemetry(one)
    database = Database(one, checkout_waits=telemetry.database_metrics)

    async def scenario(client: httpx2.AsyncClient) -> None:
        def metric(name: str, **labels: str) -> float | None:
            found: float | None = telemetry.registry.get_sample_value(name, labels)
            return found

        held = await database.engine.connect()
        try:
            assert metric("db_client_connections", state="used") == 1
            assert metric("db_client_connections_max") == 1
            assert (await client.get("/api/v1/items")).status_code == 503
            assert metric("db_client_connection_timeouts_total") == 1
        finally:
            await held.close()
        assert (await client.get("/api/v1/items")).status_code == 200
        assert metric("db_client_connections", state="used") == 0
        assert metric("db_client_connections", state="idle") == 1
        assert metric("db_client_connection_timeouts_total") == 1
        # Requests' waits: the one that gave up and the one that followed (the test's own
        # checkout and the readiness checks' are no request's).
        assert metric("db_client_connection_wait_seconds_count") == 2
        # Held by a session, as a request holds it: the next one gives up waiting in line.
        async with database.session():
            assert (await client.get("/api/v1/items")).status_code == 503
        assert metric("db_client_connection_timeouts_total") == 2
        assert metric("db_client_connection_wait_seconds_count") == 4

    run_in_one_loop(create_app(one, database=database, telemetry=telemetry), scenario)
