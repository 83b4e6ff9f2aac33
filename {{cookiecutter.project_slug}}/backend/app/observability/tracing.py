"""OpenTelemetry tracing: one server span per request, exported over OTLP gRPC when asked.

- Server spans come from `ServerSpanMiddleware`, a pure ASGI middleware: a request whose span
  is not sampled costs little more than the sampling decision; a sampled one is named after
  its route template and carries the HTTP attributes of the stable semantic conventions.
- Exporter: only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Unset, spans still exist (their
  ids go into logs and exemplars) but nothing is exported and no connection is attempted.
- Sampler: by `ENVIRONMENT` (`TRACE_RATIO_BY_ENVIRONMENT`), parent-based; when
  `OTEL_TRACES_SAMPLER` is set, the SDK's own from it and `OTEL_TRACES_SAMPLER_ARG` instead.
  `OTEL_SDK_DISABLED=true` turns the SDK off: no span is recorded or exported.
- Propagation: the SDK's propagators (W3C trace context and baggage unless
  `OTEL_PROPAGATORS` says otherwise), on incoming requests and on outgoing httpx calls.
"""

from fastapi import FastAPI
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
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.traffic import KNOWN_METHODS, is_unobserved
from app.routing import UNMATCHED_ROUTE, route_template
from app.settings import Settings

SERVICE_NAMESPACE = "{{ cookiecutter.project_slug }}"
# The stable HTTP conventions' names for a method outside the known set.
OTHER_METHOD_ATTRIBUTE = "_OTHER"
OTHER_METHOD_SPAN_NAME = "HTTP"


def sampled_span_context() -> SpanContext | None:
    """The current span's context if it is sampled, else None.

    Only sampled spans reach the trace store: an id of any other, in a log line or an
    exemplar, would lead nowhere.
    """
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.trace_flags.sampled else None


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


class ServerSpanMiddleware:
    """Pure ASGI middleware: one SERVER span around each request but scrapes and probes.

    Added last, so it runs first: the other middleware, the error handler and the access log
    line all run inside the span.
    """

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer
        # Only the headers the propagators read are decoded, once per request.
        self.propagated_headers = {
            name.encode("latin-1") for name in propagate.get_global_textmap().fields
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_unobserved(scope["path"]):
            await self.app(scope, receive, send)
            return

        method = scope["method"]
        span_name = method if method in KNOWN_METHODS else OTHER_METHOD_SPAN_NAME
        span = self.tracer.start_span(
            span_name, context=self._parent_context(scope), kind=SpanKind.SERVER
        )
        token = context.attach(trace.set_span_in_context(span))
        try:
            if span.is_recording():
                await self._call_recorded(span, span_name, scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            context.detach(token)
            span.end()

    def _parent_context(self, scope: Scope) -> context.Context | None:
        carrier: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            if name in self.propagated_headers:
                carrier.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        return propagate.extract(carrier) if carrier else None

    async def _call_recorded(
        self, span: trace.Span, span_name: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        attributes = {
            url_attributes.URL_PATH: scope["path"],
            url_attributes.URL_SCHEME: scope["scheme"],
            network_attributes.NETWORK_PROTOCOL_VERSION: scope["http_version"],
        }
        method = scope["method"]
        if method in KNOWN_METHODS:
            attributes[http_attributes.HTTP_REQUEST_METHOD] = method
        else:
            attributes[http_attributes.HTTP_REQUEST_METHOD] = OTHER_METHOD_ATTRIBUTE
            attributes[http_attributes.HTTP_REQUEST_METHOD_ORIGINAL] = method
        client = scope.get("client")
        if client:
            attributes[client_attributes.CLIENT_ADDRESS] = client[0]
        span.set_attributes(attributes)
        status: int | None = None

        async def send_tracking_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_status)
        except Exception as exc:
            # Its stack is on the span already: `UnhandledErrorMiddleware`, inside this one,
            # records every exception it sees.
            span.set_attribute(error_attributes.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        else:
            # A server answering 4xx worked as it should: only 5xx mark its span failed.
            if status is not None and status >= 500:
                span.set_attribute(error_attributes.ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
        finally:
            if status is not None:
                span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, status)
            # Routing has filled the scope in by now: the span is named after the route.
            route = route_template(scope)
            if route != UNMATCHED_ROUTE:
                span.set_attribute(http_attributes.HTTP_ROUTE, route)
                span.update_name(f"{span_name} {route}")


def setup_tracing(app: FastAPI, settings: Settings) -> TracerProvider:
    provider = create_tracer_provider(settings)
    app.add_middleware(ServerSpanMiddleware, tracer=provider.get_tracer(__name__))
    # The global provider and the httpx instrumentation belong to the process: the first
    # application owns them (in production, the only one).
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(tracer_provider=provider)
    app.state.tracer_provider = provider
    return provider
