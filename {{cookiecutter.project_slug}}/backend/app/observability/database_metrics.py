"""The database's metrics on `GET /metrics` (names shared with the Database dashboard and the
alert rules):
- `db_client_connections{state="used"|"idle"}`, `db_client_connections_max`, read from the
  pool at scrape time
- `db_client_connection_wait_seconds`, `db_client_connection_timeouts_total`: each request's
  wait for its pooled connection, timed by `Database.session` (app/db/engine.py)
- `db_client_operation_duration_seconds{operation}` (trace_id exemplars),
  `db_client_slow_operations_total{operation}`, `db_client_transaction_rollbacks_total`
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool

from app.db.engine import Database
from app.observability.database import (
    FAILED,
    OPERATIONS,
    OTHER_OPERATION,
    StatementFacts,
    StatementFinisher,
)
from app.observability.metrics import DURATION_BUCKETS, trace_exemplar

WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PoolCollector(Collector):
    """The pool's connections, read at scrape time."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._database.engine.sync_engine.pool
        connections = GaugeMetricFamily(
            "db_client_connections", "Pooled database connections, by state.", labels=["state"]
        )
        if isinstance(pool, QueuePool):
            connections.add_metric(["used"], pool.checkedout())
            connections.add_metric(["idle"], pool.checkedin())
        yield connections
        yield GaugeMetricFamily(
            "db_client_connections_max",
            "The most connections the pool opens: its size plus its overflow.",
            value=self._database.max_connections,
        )


class DatabaseMetrics:
    """Times every statement (a `StatementObserver`) and every request's wait for its
    pooled connection (a `CheckoutWaits`)."""

    def __init__(self, registry: CollectorRegistry, slow_seconds: float) -> None:
        self.registry = registry
        self.slow_seconds = slow_seconds
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

    def observe_checkout(self, seconds: float, gave_up: bool) -> None:
        self.wait.observe(seconds)
        if gave_up:
            self.timeouts.inc()

    def statement_started(self, facts: StatementFacts) -> StatementFinisher:
        return self.statement_finished

    def statement_finished(self, facts: StatementFacts) -> None:
        duration, slow = self._series[facts.operation]
        duration.observe(facts.duration, trace_exemplar())
        if facts.duration >= self.slow_seconds:
            slow.inc()

    def measure_pool_and_rollbacks(self, database: Database) -> None:
        """The pool's gauges, and the count of transactions a failed statement rolled back."""
        self.registry.register(PoolCollector(database))

        def rolled_back(connection: Connection) -> None:
            # An invalidated connection (its statement found the server gone) has no info to
            # read, and raises if asked: its transaction failed all the same.
            if connection.invalidated or connection.info.pop(FAILED, False):
                self.rollbacks.inc()

        def committed(connection: Connection) -> None:
            connection.info.pop(FAILED, None)

        engine = database.engine.sync_engine
        event.listen(engine, "rollback", rolled_back)
        event.listen(engine, "commit", committed)
