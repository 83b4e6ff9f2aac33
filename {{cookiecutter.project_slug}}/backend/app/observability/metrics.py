"""Prometheus metrics, served on `GET /metrics` (OpenMetrics, with exemplars, when asked).

Their names and labels are shared with the dashboards and alert rules:
- `http_requests_total{method, endpoint, status}`
- `http_request_duration_seconds{method, endpoint}`, observations carrying a `trace_id`
  exemplar when the request's span is sampled
- `active_requests`, `app_info{service, version, environment}`
- `app_ready` and `app_readiness_check{check}`, refreshed by every scrape and readiness probe
- `app_threads`, the threads the process runs, read at scrape time
- the process and Python collectors of prometheus-client.

`endpoint` is the route template, or `<unmatched>` for any path no route matches, so random
URLs cannot create series.
"""

import threading
import time
from collections.abc import Mapping

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.health import ReadinessChecks
from app.observability.tracing import sampled_span_context
from app.observability.traffic import KNOWN_METHODS, METRICS_PATH, is_unobserved
from app.routing import route_template
from app.settings import Settings

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

OTHER_METHOD = "OTHER"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "endpoint", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template.",
            ["method", "endpoint"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.active = Gauge(
            "active_requests", "HTTP requests being handled right now.", registry=registry
        )
        # Resolving label values costs more than the update itself: do it once per series.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        key = (method, endpoint, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.requests.labels(method, endpoint, str(status)),
                self.duration.labels(method, endpoint),
            )
            self._series[key] = series
        requests, duration = series
        requests.inc()
        duration.observe(seconds, trace_exemplar())


def trace_exemplar() -> dict[str, str] | None:
    span_context = sampled_span_context()
    if span_context is None:
        return None
    return {"trace_id": format(span_context.trace_id, "032x")}


class MetricsMiddleware:
    """Pure ASGI middleware counting and timing every request but scrapes and probes."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_unobserved(scope["path"]):
            await self.app(scope, receive, send)
            return

        status = 500

        async def send_tracking_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        active = self.metrics.active
        active.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_tracking_status)
        finally:
            seconds = time.perf_counter() - start
            active.dec()
            method = scope["method"]
            self.metrics.observe(
                method if method in KNOWN_METHODS else OTHER_METHOD,
                route_template(scope),
                status,
                seconds,
            )


class ReadinessGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.ready = Gauge(
            "app_ready", "1 when every readiness check passes, else 0.", registry=registry
        )
        self.checks = Gauge(
            "app_readiness_check",
            "1 when this readiness check passes, else 0.",
            ["check"],
            registry=registry,
        )

    def update(self, results: Mapping[str, bool]) -> None:
        self.ready.set(all(results.values()))
        for name, passed in results.items():
            self.checks.labels(name).set(passed)


def create_registry(settings: Settings) -> CollectorRegistry:
    """A registry per application, so each application (and test) starts from zero."""
    # The `_created` series would double the number of series for no use on a dashboard.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    # The exporter's, the thread pool's for sync endpoints and the server's: a steady climb is
    # a leak of threads or of work handed to them.
    Gauge(
        "app_threads",
        "Threads the process runs (Python's threading.active_count()).",
        registry=registry,
    ).set_function(threading.active_count)
    Info("app", "The service's name, version and environment.", registry=registry).info(
        {
            "service": settings.service_name,
            "version": settings.service_version,
            "environment": settings.environment,
        }
    )
    return registry


def setup_metrics(app: FastAPI, settings: Settings, checks: ReadinessChecks) -> None:
    registry = create_registry(settings)
    checks.add_listener(ReadinessGauges(registry).update)

    async def metrics(request: Request) -> Response:
        await checks.run()  # refreshes the readiness gauges through their listener
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry))
    app.state.metrics_registry = registry
