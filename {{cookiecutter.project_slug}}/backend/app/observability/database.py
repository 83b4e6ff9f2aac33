"""The database seen like HTTP: one CLIENT span per statement, child of the request's span,
and the pool's and the statements' metrics on `GET /metrics`.

A small instrumentation on SQLAlchemy's engine events, as `tracing.py` is for requests: the
contrib packages either instrument nothing with SQLAlchemy 2.1 or write the older attribute
names. Spans carry the stable database conventions, and `db.query.text` is the statement as
SQLAlchemy sends it, with `$1` placeholders: bound values never reach a span.

Metrics (names shared with the Database dashboard and the alert rules):
- `db_client_connections{state="used"|"idle"}`, `db_client_connections_max`
- `db_client_connection_wait_seconds`, `db_client_connection_timeouts_total`
- `db_client_operation_duration_seconds{operation}` (trace_id exemplars),
  `db_client_slow_operations_total{operation}`, `db_client_transaction_rollbacks_total`
"""

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv.attributes import db_attributes, error_attributes, server_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext, ExecutionContext
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool

from app.db.engine import Database
from app.observability.metrics import DURATION_BUCKETS, trace_exemplar
from app.settings import Settings

# Bounded label values: the statement's first keyword, never its text or a table name.
OPERATIONS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
OTHER_OPERATION = "OTHER"
# The table a statement names first, for the span only (its name and db.collection.name).
COLLECTION = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)\"?", re.IGNORECASE)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Where a statement's start (time and operation) and span wait for its end, on SQLAlchemy's
# execution context.
STARTED = "_observability_started"
SPAN = "_observability_span"
FAILED = "observability_failed"


def operation_of(statement: str) -> str:
    keyword = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    return keyword if keyword in OPERATIONS else OTHER_OPERATION


class PoolCollector(Collector):
    """The pool's connections, read at scrape time."""

    def __init__(self, database: Database, maximum: int) -> None:
        self._database = database
        self._maximum = maximum

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool: QueuePool = self._database.engine.sync_engine.pool  # type: ignore[assignment]
        connections = GaugeMetricFamily(
            "db_client_connections", "Pooled database connections, by state.", labels=["state"]
        )
        connections.add_metric(["used"], pool.checkedout())
        connections.add_metric(["idle"], pool.checkedin())
        yield connections
        yield GaugeMetricFamily(
            "db_client_connections_max",
            "The most connections the pool opens: its size plus its overflow.",
            value=self._maximum,
        )


class DatabaseMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.wait = Histogram(
            "db_client_connection_wait_seconds",
            "Time a request waited for a pooled connection.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.timeouts = Counter(
            "db_client_connection_timeouts_total",
            "Waits for a pooled connection that gave up after the pool timeout.",
            registry=registry,
        )
        self.duration = Histogram(
            "db_client_operation_duration_seconds",
            "Time a database statement took, by operation.",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.slow = Counter(
            "db_client_slow_operations_total",
            "Statements slower than DATABASE_SLOW_STATEMENT_SECONDS, by operation.",
            ["operation"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "db_client_transaction_rollbacks_total",
            "Transactions rolled back after a statement in them failed.",
            registry=registry,
        )
        # Every operation's series from the start, so a rate is 0 rather than missing, and
        # resolved once: finding a label's child costs more than updating it.
        self._series = {
            operation: (self.duration.labels(operation), self.slow.labels(operation))
            for operation in (*sorted(OPERATIONS), OTHER_OPERATION)
        }

    def observe(self, operation: str, seconds: float, slow: bool) -> None:
        duration, slow_count = self._series[operation]
        duration.observe(seconds, trace_exemplar())
        if slow:
            slow_count.inc()


def time_checkouts(database: Database, metrics: DatabaseMetrics) -> None:
    """Time each wait for a pooled connection and count those that gave up.

    The pool has no event before a checkout, so its class is given one override of the
    method that waits; disposing the engine recreates the pool from that same class.
    """
    pool = database.engine.sync_engine.pool
    base = type(pool)

    def _do_get(self: QueuePool) -> Any:
        started = time.perf_counter()
        try:
            return base._do_get(self)
        except PoolTimeoutError:
            metrics.timeouts.inc()
            raise
        finally:
            metrics.wait.observe(time.perf_counter() - started)

    pool.__class__ = type(f"Timed{base.__name__}", (base,), {"_do_get": _do_get})


def instrument_database(
    database: Database,
    settings: Settings,
    registry: CollectorRegistry,
    tracer: trace.Tracer,
) -> None:
    """Spans and metrics for every statement the service's engine runs."""
    metrics = DatabaseMetrics(registry)
    registry.register(
        PoolCollector(database, settings.database_pool_size + settings.database_max_overflow)
    )
    time_checkouts(database, metrics)
    base_attributes = {
        db_attributes.DB_SYSTEM_NAME: "postgresql",
        db_attributes.DB_NAMESPACE: settings.postgres_db,
        server_attributes.SERVER_ADDRESS: settings.postgres_host,
        server_attributes.SERVER_PORT: settings.postgres_port,
    }
    slow_seconds = settings.database_slow_statement_seconds
    engine = database.engine.sync_engine

    def start(
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext,
        executemany: bool,
    ) -> None:
        operation = operation_of(statement)
        setattr(context, STARTED, (time.perf_counter(), operation))
        # Only inside a sampled request: probes, scrapes and pool pings make no span.
        if not trace.get_current_span().is_recording():
            return
        attributes: dict[str, Any] = {
            **base_attributes,
            db_attributes.DB_OPERATION_NAME: operation,
            db_attributes.DB_QUERY_TEXT: statement,
        }
        name = operation
        if collection := COLLECTION.search(statement):
            attributes[db_attributes.DB_COLLECTION_NAME] = collection[1]
            name = f"{operation} {collection[1]}"
        setattr(context, SPAN, tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes))

    def finish(context: ExecutionContext, error: BaseException | None) -> None:
        start: tuple[float, str] | None = getattr(context, STARTED, None)
        if start is None:
            return
        started, operation = start
        seconds = time.perf_counter() - started
        metrics.observe(operation, seconds, seconds >= slow_seconds)
        span: trace.Span | None = getattr(context, SPAN, None)
        if span is None:
            return
        if error is not None:
            # The SQLSTATE is the conventions' error.type when the server sent one.
            sqlstate = getattr(error, "sqlstate", None)
            if sqlstate:
                span.set_attribute(db_attributes.DB_RESPONSE_STATUS_CODE, sqlstate)
            span.set_attribute(error_attributes.ERROR_TYPE, sqlstate or type(error).__name__)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def finished(
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext,
        executemany: bool,
    ) -> None:
        finish(context, None)

    def failed(exception_context: ExceptionContext) -> None:
        context = exception_context.execution_context
        if context is not None:
            finish(context, exception_context.original_exception)
        if exception_context.connection is not None:
            exception_context.connection.info[FAILED] = True

    def rolled_back(connection: Connection) -> None:
        if connection.info.pop(FAILED, False):
            metrics.rollbacks.inc()

    def committed(connection: Connection) -> None:
        connection.info.pop(FAILED, None)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", start),
        ("after_cursor_execute", finished),
        ("handle_error", failed),
        ("rollback", rolled_back),
        ("commit", committed),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
