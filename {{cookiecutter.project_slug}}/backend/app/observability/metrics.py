"""Prometheus metrics, served on `GET /metrics` (OpenMetrics, with exemplars, when asked).

Their names and labels are shared with the dashboards and alert rules:
- `http_requests_total{method, endpoint, status}`
- `http_request_duration_seconds{method, endpoint}`, observations carrying a `trace_id`
  exemplar when the request's span is sampled
- `active_requests`, `app_info{service, version, environment}`
- `app_ready` and `app_readiness_check{check}`, from the readiness checks run every
  `READINESS_REFRESH_SECONDS` in the background: a scrape never runs a check
- `app_threads`, the threads the process runs, read at scrape time
- the process and Python collectors of prometheus-client.

`endpoint` is the route template, or `<unmatched>` for any path no route matches, and
`method` is `_OTHER` for a method outside the known set, so random requests cannot create
series.
"""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping

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
from starlette.types import Scope

from app.health import ReadinessChecks
from app.pipeline import METRICS_PATH, RequestFacts, RequestFinisher
from app.settings import Settings
from app.trace_context import current_trace_ids

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How often the readiness checks run for the gauges: often enough for the BackendNotReady
# alert (2 minutes), rarely enough that the database barely notices the ping.
READINESS_REFRESH_SECONDS = 5.0


class HttpMetrics:
    """Counts and times every traffic request: a `RequestObserver` of `app.pipeline`."""

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

    def request_started(self, scope: Scope, facts: RequestFacts) -> RequestFinisher:
        self.active.inc()
        return self.request_finished

    def request_finished(self, facts: RequestFacts) -> None:
        self.active.dec()
        status = facts.status or 500  # settled: never None here
        key = (facts.reported_method, facts.route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.requests.labels(facts.reported_method, facts.route, str(status)),
                self.duration.labels(facts.reported_method, facts.route),
            )
            self._series[key] = series
        requests, duration = series
        requests.inc()
        duration.observe(facts.duration, trace_exemplar())


def trace_exemplar() -> dict[str, str] | None:
    trace_ids = current_trace_ids()
    return None if trace_ids is None else {"trace_id": trace_ids.trace_id}


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


@contextlib.asynccontextmanager
async def refreshing_readiness(
    checks: ReadinessChecks, gauges: ReadinessGauges
) -> AsyncIterator[None]:
    """Run the readiness checks into `gauges` now, so the first scrape finds them, then every
    `READINESS_REFRESH_SECONDS` for as long as the block lasts (the application's lifespan)."""
    gauges.update(await checks.run())

    async def refresh() -> None:
        while True:
            await asyncio.sleep(READINESS_REFRESH_SECONDS)
            gauges.update(await checks.run())

    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def add_metrics_route(app: FastAPI, registry: CollectorRegistry) -> None:
    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
