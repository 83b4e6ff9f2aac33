"""Issue 3, proof 3: the backend's spans reach a real OTLP gRPC receiver, with the service
name, the route and the same trace ids as its log lines."""

from __future__ import annotations

import re

import pytest

from harness.backend import BackendProcess
from harness.processes import wait_until

from .otlp_receiver import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_SERVER,
    STATUS_CODE_ERROR,
    OtlpTraceReceiver,
)
from .traffic import ITEMS, UNMATCHED, Traffic

pytestmark = pytest.mark.slow

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
UNOBSERVED = re.compile(r"^(/metrics|/health/)")


def traffic_access_lines(backend: BackendProcess, traffic: Traffic) -> list[dict[str, object]]:
    return backend.access_lines_of(answer.request_id for answer in traffic.answers)


def test_every_request_has_one_access_line_with_its_trace_context(
    backend: BackendProcess, traffic: Traffic
) -> None:
    lines = traffic_access_lines(backend, traffic)
    assert len(lines) == len(traffic.answers)
    assert len({line["request_id"] for line in lines}) == len(lines)
    for line in lines:
        assert TRACE_ID.match(str(line.get("trace_id"))), line
        assert SPAN_ID.match(str(line.get("span_id"))), line
    assert len({line["trace_id"] for line in lines}) == len(lines), "requests share a trace id"


def test_a_server_error_is_logged_once_with_its_stack_and_trace(
    backend: BackendProcess, traffic: Traffic
) -> None:
    failed = {a.request_id for a in traffic.answers if a.status == 500}
    assert failed, "the traffic holds no 500"
    lines = [line for line in backend.log_lines() if line.get("request_id") in failed]
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == len(failed)
    access = {line["request_id"]: line for line in lines if line["logger"] == "app.access"}
    for error in errors:
        assert {"type", "message", "stack"} <= error["error"].keys(), error
        assert error["trace_id"] == access[error["request_id"]]["trace_id"]
        assert access[error["request_id"]]["outcome"] == "error"


def test_receiver_gets_one_server_span_per_logged_request(
    backend: BackendProcess, otlp_receiver: OtlpTraceReceiver, traffic: Traffic
) -> None:
    lines = traffic_access_lines(backend, traffic)
    assert lines
    logged_trace_ids = {str(line["trace_id"]) for line in lines}

    def every_trace_received() -> dict[str, list[object]] | None:
        spans_by_trace: dict[str, list[object]] = {}
        for span in otlp_receiver.spans():
            if span.trace_id in logged_trace_ids:
                spans_by_trace.setdefault(span.trace_id, []).append(span)
        return spans_by_trace if spans_by_trace.keys() == logged_trace_ids else None

    wait_until(every_trace_received, 30, "a span for every logged trace id")
    spans = [span for span in otlp_receiver.spans() if span.trace_id in logged_trace_ids]

    # One server span per request. No receive/send spans, none of FastAPI's native
    # per-operation spans: besides it, only the database's client spans, its children.
    server_spans = [s for s in spans if s.kind == SPAN_KIND_SERVER]
    assert len(server_spans) == len(lines)
    span_by_trace = {span.trace_id: span for span in server_spans}
    for other in (s for s in spans if s.kind != SPAN_KIND_SERVER):
        assert (other.kind, other.attributes.get("db.system.name")) == (
            SPAN_KIND_CLIENT,
            "postgresql",
        ), other
        assert other.parent_span_id == span_by_trace[other.trace_id].span_id, other

    for line in lines:
        span = span_by_trace[str(line["trace_id"])]
        assert span.span_id == line["span_id"], "the access line is not logged inside its span"
        assert span.resource.get("service.name") == line["service"] == "backend"
        assert {"service.version", "deployment.environment"} <= span.resource.keys()
        assert span.attributes.get("http.response.status_code") == line["status"], (span, line)
        # Tempo's span metrics count a span as failed by its status (`STATUS_CODE_ERROR`).
        assert (span.status_code == STATUS_CODE_ERROR) == (line["outcome"] == "error"), line
        if line["route"] == UNMATCHED:
            assert "http.route" not in span.attributes, span.attributes
            assert span.name == line["method"], (span, line)
        else:
            assert span.attributes.get("http.route") == line["route"], (span, line)
            assert span.name == f"{line['method']} {line['route']}", (span, line)


def test_scrapes_and_probes_are_not_traced(
    backend: BackendProcess, otlp_receiver: OtlpTraceReceiver, traffic: Traffic
) -> None:
    for path in ("/metrics", "/health/live", "/health/ready"):
        assert backend.get(path).status_code == 200
    # Spans leave in order: once a later request's span arrived, the probes' would have too.
    marker = backend.get(ITEMS)
    (marker_line,) = backend.access_lines_of([marker.headers["x-request-id"]], timeout=10)
    wait_until(
        lambda: any(s.trace_id == marker_line["trace_id"] for s in otlp_receiver.spans()),
        30,
        "the span of the marker request",
    )
    probed = [
        span
        for span in otlp_receiver.spans()
        if any(
            UNOBSERVED.match(str(span.attributes.get(key, "")))
            for key in ("http.route", "url.path")
        )
    ]
    assert probed == []
