"""OpenTelemetry tracing: one server span per request, exported over OTLP gRPC when asked.

- Server spans come from `ServerSpans`, an observer of the request pipeline (`app.pipeline`):
  a request whose span is not sampled costs little more than the sampling decision; a sampled
  one is named after its route template and carries the HTTP attributes of the stable
  semantic conventions.
- Exporter: only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Unset, spans still exist (their
  ids go into logs and exemplars) but nothing is exported and no connection is attempted.
- Sampler: by `ENVIRONMENT` (`TRACE_RATIO_BY_ENVIRONMENT`), parent-based; when
  `OTEL_TRACES_SAMPLER` is set, the SDK's own from it and `OTEL_TRACES_SAMPLER_ARG` instead.
  `OTEL_SDK_DISABLED=true` turns the SDK off: no span is recorded or exported.
- Propagation: the SDK's propagators (W3C trace context and baggage unless
  `OTEL_PROPAGATORS` says otherwise), on incoming requests and on outgoing httpx calls.
"""

from opentelemetry import context, propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.semconv.attributes import (
    client_attributes,
    error_attributes,
    http_attributes,
    network_attributes,
    url_attributes,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from app.pipeline import OTHER_METHOD, RequestFacts, RequestFinisher
from app.routing import UNMATCHED_ROUTE
from app.settings import Settings

SERVICE_NAMESPACE = "{{ cookiecutter.project_slug }}"
# The stable HTTP conventions' span name for a method outside the known set.
OTHER_METHOD_SPAN_NAME = "HTTP"

# The share of new traces kept when OTEL_TRACES_SAMPLER is unset, by ENVIRONMENT: every one
# where someone is watching, a share where traffic is real. Any other environment keeps all.
TRACE_RATIO_BY_ENVIRONMENT = {"development": 1.0, "staging": 0.2, "production": 0.1}


def default_sampler(environment: str) -> Sampler:
    """Parent-based: a request continues its caller's decision; a new trace is kept at the
    environment's ratio."""
    return ParentBased(TraceIdRatioBased(TRACE_RATIO_BY_ENVIRONMENT.get(environment, 1.0)))


def create_tracer_provider(settings: Settings) -> TracerProvider:
    # None: the SDK makes the sampler OTEL_TRACES_SAMPLER names.
    sampler = None if settings.otel_traces_sampler else default_sampler(settings.environment)
    provider = TracerProvider(
        sampler=sampler,
        resource=Resource.create(
            {
                "service.name": settings.service_name,
                "service.namespace": SERVICE_NAMESPACE,
                "service.version": settings.service_version,
                "deployment.environment": settings.environment,
            }
        ),
    )
    if settings.otel_exporter_otlp_endpoint is not None:
        # A background thread exports in batches, off the request path; while the endpoint is
        # down, spans wait in a bounded queue and are dropped when it is full.
        exporter = OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class ServerSpans:
    """One SERVER span per traffic request: a `RequestObserver` of `app.pipeline`, started
    first, so the application, the access line and the metrics all run inside the span."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        # Only the headers the propagators read are decoded, once per request.
        self.propagated_headers = {
            name.encode("latin-1") for name in propagate.get_global_textmap().fields
        }

    def request_started(self, scope: Scope, facts: RequestFacts) -> RequestFinisher:
        method = facts.reported_method
        span_name = OTHER_METHOD_SPAN_NAME if method == OTHER_METHOD else method
        span = self.tracer.start_span(
            span_name, context=self._parent_context(scope), kind=SpanKind.SERVER
        )
        token = context.attach(trace.set_span_in_context(span))
        recording = span.is_recording()
        if recording:
            attributes = {
                http_attributes.HTTP_REQUEST_METHOD: method,
                url_attributes.URL_PATH: facts.path,
                url_attributes.URL_SCHEME: scope["scheme"],
                network_attributes.NETWORK_PROTOCOL_VERSION: scope["http_version"],
            }
            if method == OTHER_METHOD:
                attributes[http_attributes.HTTP_REQUEST_METHOD_ORIGINAL] = facts.method
            if facts.client_ip:
                attributes[client_attributes.CLIENT_ADDRESS] = facts.client_ip
            span.set_attributes(attributes)

        def request_finished(facts: RequestFacts) -> None:
            try:
                if recording:
                    _record_outcome(span, span_name, facts)
            finally:
                context.detach(token)
                span.end()

        return request_finished

    def _parent_context(self, scope: Scope) -> context.Context | None:
        carrier: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            if name in self.propagated_headers:
                carrier.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        return propagate.extract(carrier) if carrier else None


def _record_outcome(span: trace.Span, span_name: str, facts: RequestFacts) -> None:
    if facts.status is not None:
        span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, facts.status)
    if facts.exception is not None:
        error = facts.exception
        span.record_exception(error)
        span.set_attribute(error_attributes.ERROR_TYPE, type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    elif facts.status is not None and facts.status >= 500:
        # A server answering 4xx worked as it should: only 5xx mark its span failed.
        span.set_attribute(error_attributes.ERROR_TYPE, str(facts.status))
        span.set_status(Status(StatusCode.ERROR))
    if facts.route != UNMATCHED_ROUTE:
        span.set_attribute(http_attributes.HTTP_ROUTE, facts.route)
        span.update_name(f"{span_name} {facts.route}")


def install_process_wide(provider: TracerProvider) -> None:
    """Make `provider` the process's: the global one (what libraries' spans use) and the
    httpx instrumentation's. The first application owns them (in production, the only one)."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(tracer_provider=provider)
