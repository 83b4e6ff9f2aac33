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
from app.observability.database import instrument_database
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


def create_telemetry(settings: Settings) -> Telemetry:
    registry = create_registry(settings)
    return Telemetry(registry, create_tracer_provider(settings), ReadinessGauges(registry))


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
    instrument_database(database, settings, telemetry.registry, tracer)
{%- endif %}
    # The span first: the metrics then run inside it and attach its trace id as an exemplar.
    return (ServerSpans(tracer), HttpMetrics(telemetry.registry))
