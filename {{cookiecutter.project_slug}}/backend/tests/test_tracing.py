import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import Message, Receive, Scope, Send

from app.http_client import HttpClient
from app.main import create_app
from app.observability import Telemetry, create_telemetry, tracing
from app.pipeline import RequestPipeline
from app.settings import Settings
from tests.conftest import HeaderRecorder, LogLines, access_lines, capture_json_logs

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The finished SERVER spans{% if cookiecutter.database == "postgres" %}, without the database's CLIENT spans{% endif %}."""
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]


def test_one_server_span_per_request(client: TestClient, spans: InMemorySpanExporter) -> None:
    client.get("/api/v1/items/1")

    (span,) = server_spans(spans)
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /api/v1/items/{item_id}"
    assert span.attributes == {
        "http.request.method": "GET",
        "http.route": "/api/v1/items/{item_id}",
        "http.response.status_code": 404,
        "url.path": "/api/v1/items/1",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "client.address": "testclient",
    }
    # A 404 is the server working as it should.
    assert span.status.status_code is StatusCode.UNSET


def test_a_path_no_route_matches_is_named_after_its_method_only(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    client.get("/no/such/path")

    (span,) = server_spans(spans)
    assert span.name == "GET"
    assert span.attributes is not None
    assert "http.route" not in span.attributes
    assert span.attributes["url.path"] == "/no/such/path"


def test_an_unknown_method_gets_the_conventions_fixed_name(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    client.request("BREW", "/api/v1/items")

    (span,) = server_spans(spans)
    assert span.name == "HTTP /api/v1/items"
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "BREW"
    assert span.attributes["http.response.status_code"] == 405


@pytest.mark.parametrize("path", ["/metrics", "/health/live", "/health/ready"])
def test_scrapes_and_probes_are_not_traced(
    client: TestClient, spans: InMemorySpanExporter, path: str
) -> None:
    assert client.get(path).status_code == 200

    assert spans.get_finished_spans() == ()


def test_resource_names_the_service(client: TestClient, spans: InMemorySpanExporter) -> None:
    client.get("/api/v1/items")

    (span,) = server_spans(spans)
    attributes = span.resource.attributes
    assert attributes["service.name"] == "test-service"
    # The slug has up to 63 characters: on a line of its own it stays within the line length.
    project_slug = "{{ cookiecutter.project_slug }}"
    assert attributes["service.namespace"] == project_slug
    assert attributes["service.version"] == "1.2.3"
    assert attributes["deployment.environment"] == "test"


def test_incoming_w3c_trace_context_is_continued(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    client.get(
        "/api/v1/items",
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01", "tracestate": "vendor=1"},
    )

    (span,) = server_spans(spans)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert dict(span.context.trace_state) == {"vendor": "1"}


def test_a_caller_that_did_not_sample_is_followed(
    client: TestClient, spans: InMemorySpanExporter, log_lines: LogLines
) -> None:
    log_lines()
    response = client.get(
        "/api/v1/items", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-00"}
    )

    assert response.status_code == 200
    assert spans.get_finished_spans() == ()
    (access,) = access_lines(log_lines())
    assert "trace_id" not in access


def test_unsampled_requests_are_served_and_leave_no_span(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    sampling_nothing = settings.model_copy(update={"otel_traces_sampler": "always_off"})
    telemetry = create_telemetry(sampling_nothing)
    app = create_app(sampling_nothing, telemetry=telemetry)
    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    with TestClient(app) as client:
        assert client.get("/api/v1/items").status_code == 200
        assert client.get("/no/such/path").status_code == 404

    assert exporter.get_finished_spans() == ()


def test_log_lines_inside_a_span_carry_its_ids(
    client: TestClient, spans: InMemorySpanExporter, log_lines: LogLines
) -> None:
    log_lines()
    client.get("/api/v1/items")

    (access,) = access_lines(log_lines())
    (span,) = server_spans(spans)
    assert access["trace_id"] == format(span.context.trace_id, "032x")
    assert access["span_id"] == format(span.context.span_id, "016x")


def test_unhandled_error_is_recorded_on_the_span(
    app: FastAPI, client: TestClient, spans: InMemorySpanExporter
) -> None:
    @app.get("/test/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    client.get("/test/fail")

    (span,) = server_spans(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 500
    # The exception's type, as the conventions ask when there is one.
    assert span.attributes["error.type"] == "RuntimeError"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"


def test_error_after_the_response_started_fails_the_span_with_its_type(
    app: FastAPI, client: TestClient, spans: InMemorySpanExporter
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("stream broke")

    @app.get("/test/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    with pytest.raises(RuntimeError):
        client.get("/test/stream")

    (span,) = server_spans(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: stream broke"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    # The client got a 200 and a broken body: the request failed, and counts as a 500.
    assert span.attributes["http.response.status_code"] == 500
    assert [event.name for event in span.events] == ["exception"]


def test_the_span_does_not_outlive_its_request(telemetry: Telemetry) -> None:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    spans = tracing.ServerSpans(telemetry.tracer_provider.get_tracer("test"))
    middleware = RequestPipeline(answer, observers=[spans])
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/items",
        "scheme": "http",
        "http_version": "1.1",
        "headers": [],
        "query_string": b"",
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    async def one_request() -> trace.Span:
        await middleware(scope, receive, send)
        return trace.get_current_span()

    assert asyncio.run(one_request()) is trace.INVALID_SPAN


def test_outgoing_httpx_calls_propagate_the_trace(
    app: FastAPI, client: TestClient, spans: InMemorySpanExporter, downstream: str
) -> None:
    @app.get("/test/call-downstream")
    async def call_downstream(http: HttpClient) -> None:
        await http.get(downstream)

    client.get("/test/call-downstream")

    (headers,) = HeaderRecorder.received
    server_span = next(s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert headers["traceparent"].split("-")[1] == format(server_span.context.trace_id, "032x")


def test_a_set_sampler_wins_and_the_sdk_reads_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    chosen = settings.model_copy(update={"otel_traces_sampler": "traceidratio"})

    provider = tracing.create_tracer_provider(chosen)

    assert provider.sampler.get_description() == "TraceIdRatioBased{0.25}"


@pytest.mark.parametrize(
    ("environment", "ratio"),
    [("development", "1.0"), ("staging", "0.2"), ("production", "0.1"), ("test", "1.0")],
)
def test_without_a_sampler_the_environment_sets_the_share(
    settings: Settings, environment: str, ratio: str
) -> None:
    provider = tracing.create_tracer_provider(
        settings.model_copy(update={"environment": environment})
    )

    description = provider.sampler.get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{" + ratio + "},")


def test_an_empty_sampler_variable_means_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "")
    monkeypatch.setenv("ENVIRONMENT", "production")

    provider = tracing.create_tracer_provider(Settings())

    assert "TraceIdRatioBased{0.1}" in provider.sampler.get_description()


def test_with_the_sdk_disabled_the_service_runs_and_exports_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    RecordingExporter.created_with.clear()
    monkeypatch.setattr(tracing, "OTLPSpanExporter", RecordingExporter)
    exporting = settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://127.0.0.1:9"})
    telemetry = create_telemetry(exporting)
    app = create_app(exporting, telemetry=telemetry)
    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    lines = capture_json_logs()

    with TestClient(app) as client:
        assert client.get("/api/v1/items").status_code == 200

    # Every processor sees the same spans: none reached the OTLP exporter either.
    assert RecordingExporter.created_with == ["http://127.0.0.1:9"]
    assert exporter.get_finished_spans() == ()
    (access,) = access_lines(lines())
    assert "trace_id" not in access


class RecordingExporter(InMemorySpanExporter):
    created_with: list[str] = []  # noqa: RUF012

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.created_with.append(endpoint)


def test_no_exporter_without_an_endpoint(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "OTLPSpanExporter", RecordingExporter)
    RecordingExporter.created_with.clear()

    tracing.create_tracer_provider(settings)
    tracing.create_tracer_provider(Settings(otel_exporter_otlp_endpoint=""))

    assert RecordingExporter.created_with == []


def test_exporter_with_an_endpoint(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "OTLPSpanExporter", RecordingExporter)
    RecordingExporter.created_with.clear()

    tracing.create_tracer_provider(
        settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://tempo:4317"})
    )

    assert RecordingExporter.created_with == ["http://tempo:4317"]


def test_otel_service_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "plain")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel")

    assert Settings().service_name == "otel"


@pytest.fixture(scope="module")
def global_metric_reader() -> InMemoryMetricReader:
    """An SDK meter provider for the whole process, as an application might configure."""
    # Delta temporality: each collection holds only what was recorded since the previous one.
    reader = InMemoryMetricReader(
        preferred_temporality=dict.fromkeys(
            (Counter, UpDownCounter, Histogram), AggregationTemporality.DELTA
        )
    )
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def native_telemetry_output(
    app: FastAPI, reader: InMemoryMetricReader
) -> tuple[list[ReadableSpan], list[str]]:
    """Spans and metric names FastAPI's native telemetry produces for one request."""
    global_provider = trace.get_tracer_provider()
    assert isinstance(global_provider, TracerProvider)
    exporter = InMemorySpanExporter()
    global_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader.get_metrics_data()  # drops what earlier tests recorded
    try:
        with TestClient(app) as client:
            client.get("/api/v1/items")
    finally:
        exporter.shutdown()
    data = reader.get_metrics_data()
    metric_names = [
        metric.name
        for resource_metrics in (data.resource_metrics if data else [])
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]
    native_spans = [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None and span.instrumentation_scope.name == "fastapi"
    ]
    return native_spans, metric_names


def test_native_fastapi_telemetry_stays_off(
    app: FastAPI, global_metric_reader: InMemoryMetricReader
) -> None:
    # Control: with providers configured, a plain FastAPI app does emit native telemetry,
    # so the empty result below is not the detector failing to see it.
    plain = FastAPI()

    @plain.get("/api/v1/items")
    async def items() -> list[str]:
        return []

    control_spans, control_metrics = native_telemetry_output(plain, global_metric_reader)
    assert control_spans
    assert "http.server.request.duration" in control_metrics

    assert native_telemetry_output(app, global_metric_reader) == ([], [])
