"""The reference of `BENCH_REFERENCE=1`: the example API instrumented the way popular demos do.

The rendered "no" app underneath, so only the instrumentation differs from the "no" scenario:
a BaseHTTPMiddleware recording Prometheus metrics for every request, plus the OpenTelemetry
FastAPI instrumentation with its defaults (a server span and per-message receive/send spans),
exporting through a batch processor to OTLP gRPC (OTEL_EXPORTER_OTLP_ENDPOINT).
Runs in the "no" backend's virtualenv plus reference-requirements.txt; not part of the template.
"""

import time

from app.main import app
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import set_tracer_provider
from prometheus_client import Counter, Gauge, Histogram
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter("http_requests_total", "Requests", ["method", "endpoint", "status"])
DURATION = Histogram("http_request_duration_seconds", "Duration", ["method", "endpoint"])
IN_FLIGHT = Gauge("active_requests", "Requests in flight")


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            IN_FLIGHT.dec()
        endpoint = getattr(request.scope.get("route"), "path", "<unmatched>")
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        DURATION.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response


provider = TracerProvider(resource=Resource.create({"service.name": "reference"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
set_tracer_provider(provider)
app.add_middleware(MetricsMiddleware)
FastAPIInstrumentor.instrument_app(app)

__all__ = ["app"]
