"""OpenTelemetry tracing: one server span per request, exported over OTLP gRPC when asked.

- Exporter: only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Unset, spans still exist (their
  ids go into logs and exemplars) but nothing is exported and no connection is attempted.
- Sampler: `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, read by the SDK
  (default `parentbased_always_on`).
- Propagation: W3C trace context (the SDK default), on incoming requests and on outgoing
  httpx calls.
"""

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanContext

from app.observability.paths import UNOBSERVED_URL_PATTERN
from app.settings import Settings

SERVICE_NAMESPACE = "{{ cookiecutter.project_slug }}"


def sampled_span_context() -> SpanContext | None:
    """The current span's context if it is sampled, else None.

    Only sampled spans reach the trace store: an id of any other, in a log line or an
    exemplar, would lead nowhere.
    """
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.trace_flags.sampled else None


def create_tracer_provider(settings: Settings) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": settings.service_name,
                "service.namespace": SERVICE_NAMESPACE,
                "service.version": settings.service_version,
                "deployment.environment": settings.environment,
            }
        )
    )
    if settings.otel_exporter_otlp_endpoint is not None:
        # A background thread exports in batches, off the request path; while the endpoint is
        # down, spans wait in a bounded queue and are dropped when it is full.
        exporter = OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup_tracing(app: FastAPI, settings: Settings) -> TracerProvider:
    provider = create_tracer_provider(settings)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        # The metrics are Prometheus': the instrumentation records none of its own.
        meter_provider=NoOpMeterProvider(),
        excluded_urls=UNOBSERVED_URL_PATTERN,
        exclude_spans=["receive", "send"],
    )
    # The global provider and the httpx instrumentation belong to the process: the first
    # application owns them (in production, the only one).
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(tracer_provider=provider)
    app.state.tracer_provider = provider
    return provider
