"""Metrics, traces and their link to the logs: the pieces the application factory wires in.

`create_telemetry` makes the registry and the tracer provider; `instrument` adds
`GET /metrics`{% if cookiecutter.database == "postgres" %} and the database's telemetry{% endif %} and returns the request pipeline's observers;
`refreshing_readiness` keeps the readiness gauges current during the lifespan. Nothing in the
rest of the application imports this package.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

{% if cookiecutter.database == "postgres" -%}
from app.db.engine import Database
from app.observability.database import observe_statements
from app.observability.database_metrics import DatabaseMetrics
from app.observability.database_tracing import DatabaseSpans
{% endif -%}
from app.observability.metrics import (
    HttpMetrics,
    ReadinessGauges,
    add_metrics_route,
    create_registry,
    refreshing_readiness,
)
from app.observability.tracing import ServerSpans, create_tracer_provider, install_process_wide
from app.pipeline import RequestObserver
from app.settings import Settings

__all__ = [
    "NATIVE_TELEMETRY_OFF",
    "Telemetry",
    "create_telemetry",
    "instrument",
    "refreshing_readiness",
]

# This package instruments every request itself (Prometheus metrics, one server span). FastAPI's
# own telemetry stays off, or a configured tracer provider would make it add per-operation
# spans and a second set of HTTP metrics to each request.
NATIVE_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


@dataclass(frozen=True)
class Telemetry:
    """Where one application's metrics and spans go."""

    registry: CollectorRegistry
    tracer_provider: TracerProvider
    readiness_gauges: ReadinessGauges
{%- if cookiecutter.database == "postgres" %}
    # Also the database's `checkout_waits`: create_app hands it to the Database it makes.
    database_metrics: DatabaseMetrics
{%- endif %}


def create_telemetry(settings: Settings) -> Telemetry:
    registry = create_registry(settings)
    return Telemetry(
        registry,
        create_tracer_provider(settings),
        ReadinessGauges(registry),
{%- if cookiecutter.database == "postgres" %}
        DatabaseMetrics(registry, settings.database_slow_statement_seconds),
{%- endif %}
    )


def instrument(
    app: FastAPI,
    telemetry: Telemetry,
{%- if cookiecutter.database == "postgres" %}
    settings: Settings,
    database: Database,
{%- endif %}
) -> Sequence[RequestObserver]:
    """Add `GET /metrics`{% if cookiecutter.database == "postgres" %}, measure and trace every database statement,{% endif %} and return the
    observers of every request, in the order the pipeline starts them."""
    add_metrics_route(app, telemetry.registry)
    install_process_wide(telemetry.tracer_provider)
    tracer = telemetry.tracer_provider.get_tracer(__name__)
{%- if cookiecutter.database == "postgres" %}
    maximum_connections = settings.database_pool_size + settings.database_max_overflow
    telemetry.database_metrics.measure_pool_and_rollbacks(database, maximum_connections)
    # The span first, as for requests: the metrics' exemplar is the request's trace.
    observe_statements(database, (DatabaseSpans(tracer, settings), telemetry.database_metrics))
{%- endif %}
    # The span first: the metrics then run inside it and attach its trace id as an exemplar.
    return (ServerSpans(tracer), HttpMetrics(telemetry.registry))
