{%- set worker = cookiecutter.worker == "taskiq" -%}
"""Metrics, traces and their link to the logs: the pieces the application factory wires in.

`create_telemetry` makes the registry and the tracer provider; `instrument` adds
`GET /metrics`{% if cookiecutter.database == "postgres" %} and the database's telemetry{% endif %} and returns the request pipeline's observers;
`refreshing_readiness` keeps the readiness gauges current during the lifespan.{% if worker %}
`observe_sends` is the job queue's observer in the API; `instrument_worker` and
`observe_attempts` do for the worker's factory what `instrument` does for the API.{% endif %}
Nothing in the rest of the application imports this package.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

{% if cookiecutter.database == "postgres" -%}
from app.db.engine import Database
{% endif -%}
{% if worker -%}
from app.jobs.broker import JobBroker
{% endif -%}
{% if cookiecutter.database == "postgres" -%}
from app.observability.database import observe_statements
from app.observability.database_metrics import DatabaseMetrics
from app.observability.database_tracing import DatabaseSpans
{% endif -%}
{% if worker -%}
from app.observability.job_metrics import JobMetrics, QueueGauges, refreshing_queue_gauges
from app.observability.job_tracing import JobSpans
from app.observability.jobs import ObservedAttempts, SentJobs
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
{%- if worker %}
    "instrument_worker",
    "observe_attempts",
    "observe_sends",
    "refreshing_queue_gauges",
{%- endif %}
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
{%- if worker %}
    # Also the `AttemptOutcomes` of the worker's job lifecycle.
    job_metrics: JobMetrics
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
{%- if worker %}
        JobMetrics(registry, settings.job_queue),
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
    tracer = _instrument_process(app, telemetry{% if cookiecutter.database == "postgres" %}, settings, database{% endif %})
    # The span first: the metrics then run inside it and attach its trace id as an exemplar.
    return (ServerSpans(tracer), HttpMetrics(telemetry.registry))
{%- if worker %}


def instrument_worker(
    app: FastAPI,
    telemetry: Telemetry,
    broker: JobBroker,
{%- if cookiecutter.database == "postgres" %}
    settings: Settings,
    database: Database,
{%- endif %}
) -> QueueGauges:
    """Add `GET /metrics` to the worker's application and start the series of its jobs at 0;
    return its queue's gauges, which `refreshing_queue_gauges` keeps current.{% if cookiecutter.database == "postgres" %} Its
    database statements are measured and traced as the API's.{% endif %}"""
    _instrument_process(app, telemetry{% if cookiecutter.database == "postgres" %}, settings, database{% endif %})
    telemetry.job_metrics.start_series(broker.get_all_tasks())
    return QueueGauges(telemetry.registry, broker.queue_name)


def _job_spans(telemetry: Telemetry, settings: Settings) -> JobSpans:
    return JobSpans(telemetry.tracer_provider.get_tracer(__name__), settings.job_queue)


def observe_sends(telemetry: Telemetry, settings: Settings) -> SentJobs:
    """The API's `SendObserver`: each send's PRODUCER span and count."""
    return SentJobs(_job_spans(telemetry, settings), telemetry.job_metrics)


def observe_attempts(telemetry: Telemetry, settings: Settings) -> ObservedAttempts:
    """The worker's middleware for each attempt's CONSUMER span and metrics."""
    return ObservedAttempts(_job_spans(telemetry, settings), telemetry.job_metrics)
{%- endif %}


def _instrument_process(
    app: FastAPI,
    telemetry: Telemetry,
{%- if cookiecutter.database == "postgres" %}
    settings: Settings,
    database: Database,
{%- endif %}
) -> Tracer:
    add_metrics_route(app, telemetry.registry)
    install_process_wide(telemetry.tracer_provider)
    tracer = telemetry.tracer_provider.get_tracer(__name__)
{%- if cookiecutter.database == "postgres" %}
    telemetry.database_metrics.measure_pool_and_rollbacks(database)
    # The span first, as for requests: the metrics' exemplar is the request's trace.
    observe_statements(database, (DatabaseSpans(tracer, settings), telemetry.database_metrics))
{%- endif %}
    return tracer
