"""Issue 5, under load: a few thousand concurrent requests through the "yes" backend
exporting to a live OTLP receiver; nothing fails, nothing is lost from the counters."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from harness.backend import BackendProcess
from harness.processes import wait_until

from .exposition import requests_by_series, scrape
from .otlp_receiver import SPAN_KIND_SERVER, OtlpTraceReceiver
from .traffic import ITEM, ITEMS, Call, expected_counts, send_all, unexpected

pytestmark = pytest.mark.slow

ROUNDS = 750  # 4 requests each
CONCURRENCY = 64


def test_concurrent_load_is_served_counted_once_and_traced(
    backend: BackendProcess, otlp_receiver: OtlpTraceReceiver
) -> None:
    created = httpx.post(f"{backend.url}{ITEMS}", json={"name": "load", "price": 1}, timeout=10)
    # Names are unique where a database keeps the items: each POST brings its own.
    assert created.status_code == 201, created.text
    item = f"{ITEMS}/{created.json()['id']}"
    calls = [
        call
        for round_number in range(ROUNDS)
        for call in (
            Call("GET", ITEMS, ITEMS, 200),
            Call("GET", item, ITEM, 200),
            Call("POST", ITEMS, ITEMS, 201, {"name": f"load {round_number}", "price": 1}),
            Call("GET", f"{ITEMS}?limit=5", ITEMS, 200),
        )
    ]
    counted_before = requests_by_series(scrape(backend.url))

    answers = send_all(backend.url, calls, concurrency=CONCURRENCY)

    assert unexpected(answers) == []
    counted_after = requests_by_series(scrape(backend.url))
    counted = Counter(
        {
            series: int(total - counted_before.get(series, 0))
            for series, total in counted_after.items()
            if total != counted_before.get(series, 0)
        }
    )
    assert counted == expected_counts(answers)

    # Spans leave in batches from a bounded queue; under this load every one should arrive,
    # exactly once.
    request_ids = {answer.request_id for answer in answers}
    trace_ids = {line["trace_id"] for line in backend.access_lines_of(request_ids)}
    assert len(trace_ids) == len(calls), "not every request has its own logged trace id"

    def load_spans() -> Counter[str] | None:
        spans = Counter(
            s.trace_id
            for s in otlp_receiver.spans()
            if s.trace_id in trace_ids and s.kind == SPAN_KIND_SERVER
        )
        return spans if len(spans) == len(trace_ids) else None

    spans = wait_until(load_spans, 30, f"the server spans of all {len(calls)} requests")
    assert set(spans.values()) == {1}

    in_flight = [s.value for s in scrape(backend.url) if s.name == "active_requests"]
    assert in_flight == [0]
    assert backend.get("/health/live").status_code == 200
    assert backend.get("/health/ready").status_code == 200
    backend.process.assert_running()
