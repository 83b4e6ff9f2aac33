"""Metrics, traces and their link to the logs, wired into the application by one call."""

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from app.health import ReadinessChecks
{%- if cookiecutter.database == "postgres" %}
from app.observability.database import instrument_database
{%- endif %}
from app.observability.metrics import setup_metrics
from app.observability.tracing import setup_tracing
from app.settings import Settings

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


def setup_observability(app: FastAPI) -> FastAPI:
    """Add `GET /metrics` and the metrics middleware, and trace every request{% if cookiecutter.database == "postgres" %} and every
    database statement{% endif %}.

    Call once, from the application factory, before the application serves requests.
    """
    settings: Settings = app.state.settings
    checks: ReadinessChecks = app.state.readiness_checks
    setup_metrics(app, settings, checks)
    # Tracing last: its middleware then runs first, so the metrics middleware runs inside the
    # request's span and can attach its trace id as an exemplar.
{%- if cookiecutter.database == "postgres" %}
    provider = setup_tracing(app, settings)
    instrument_database(
        app.state.database, settings, app.state.metrics_registry, provider.get_tracer(__name__)
    )
{%- else %}
    setup_tracing(app, settings)
{%- endif %}
    return app
