import re
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.health import ReadinessChecks
from app.observability import metrics
from tests.conftest import SERVICE_CHECKS, LogLines, access_lines

# What Prometheus sends when it scrapes.
OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def samples(client: TestClient, name: str) -> list[Sample]:
    text = client.get("/metrics").text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def request_counts(client: TestClient) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["endpoint"], s.labels["status"]): s.value
        for s in samples(client, "http_requests_total")
    }


def test_requests_are_counted_by_method_route_template_and_status(client: TestClient) -> None:
    item_id = client.post("/api/v1/items", json={"name": "pen", "price": 1}).json()["id"]
    client.get(f"/api/v1/items/{item_id}")
    client.get(f"/api/v1/items/{item_id}")
    client.get("/api/v1/items/999")
    client.get("/api/v1/items/abc")
    client.get("/no/such/path")

    assert request_counts(client) == {
        ("POST", "/api/v1/items", "201"): 1,
        ("GET", "/api/v1/items/{item_id}", "200"): 2,
        ("GET", "/api/v1/items/{item_id}", "404"): 1,
        ("GET", "/api/v1/items/{item_id}", "422"): 1,
        ("GET", "<unmatched>", "404"): 1,
    }


def test_scrapes_and_health_probes_are_not_traffic(client: TestClient) -> None:
    client.get("/health/live")
    client.get("/health/ready")
    client.get("/metrics")

    assert request_counts(client) == {}
    assert samples(client, "http_request_duration_seconds_count") == []


def test_unhandled_errors_are_counted_as_500(app: FastAPI, client: TestClient) -> None:
    @app.get("/test/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    client.get("/test/fail")

    assert request_counts(client) == {("GET", "/test/fail", "500"): 1}


def test_random_paths_and_methods_add_no_series(client: TestClient) -> None:
    client.get("/first/unknown/path")
    client.request("BREW", "/api/v1/items")
    series_before = len(samples(client, "http_requests_total")) + len(
        samples(client, "http_request_duration_seconds_bucket")
    )

    for _ in range(200):
        client.get(f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}")
        client.request("BREW", "/api/v1/items")
        client.request(uuid.uuid4().hex[:8].upper(), "/api/v1/items")

    series_after = len(samples(client, "http_requests_total")) + len(
        samples(client, "http_request_duration_seconds_bucket")
    )
    assert series_after == series_before
    counts = request_counts(client)
    assert counts[("GET", "<unmatched>", "404")] == 201
    assert counts[("_OTHER", "/api/v1/items", "405")] == 401


def test_duration_histogram_has_the_contract_labels_and_buckets(client: TestClient) -> None:
    client.get("/api/v1/items")

    buckets = samples(client, "http_request_duration_seconds_bucket")
    assert {tuple(sorted(s.labels)) for s in buckets} == {("endpoint", "le", "method")}
    assert [float(s.labels["le"]) for s in buckets] == [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"),
    ]  # fmt: skip
    assert buckets[-1].value == 1


def test_gauges_info_and_default_collectors(client: TestClient) -> None:
    client.get("/api/v1/items")
    text = client.get("/metrics").text

    assert samples(client, "active_requests")[0].value == 0
    (info,) = samples(client, "app_info")
    assert info.labels == {"service": "test-service", "version": "1.2.3", "environment": "test"}
    assert "process_cpu_seconds_total" in text
    assert "python_gc_objects_collected_total" in text
    assert "_created" not in text


def test_the_thread_count_is_read_at_scrape_time(client: TestClient) -> None:
    before = samples(client, "app_threads")[0].value
    release = threading.Event()
    extra = threading.Thread(target=release.wait)
    extra.start()
    try:
        during = samples(client, "app_threads")[0].value
    finally:
        release.set()
        extra.join()

    assert before >= 1
    assert during >= before + 1


def test_readiness_gauges_follow_the_checks_that_run_in_the_background(
    app: FastAPI, readiness: ReadinessChecks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "READINESS_REFRESH_SECONDS", 0.01)
    healthy = {"value": True}

    async def cache() -> bool:
        return healthy["value"]

    readiness.register("cache", cache)

    with TestClient(app) as client:
        # The first run is done before the application takes requests.
        assert samples(client, "app_ready")[0].value == 1
        healthy["value"] = False
        wait_for(lambda: samples(client, "app_ready")[0].value == 0)
        checks = {s.labels["check"]: s.value for s in samples(client, "app_readiness_check")}

    assert checks == {**{name: 1 for name in SERVICE_CHECKS}, "cache": 0}


def test_a_scrape_reads_the_gauges_and_never_runs_a_check(
    app: FastAPI, readiness: ReadinessChecks
) -> None:
    runs: list[None] = []

    async def counted() -> bool:
        runs.append(None)
        return True

    readiness.register("counted", counted)

    with TestClient(app) as client:
        before = len(runs)
        for _ in range(3):
            client.get("/metrics")
        after = len(runs)

    assert before == after == 1  # the run at startup; the next is READINESS_REFRESH_SECONDS off


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_openmetrics_carries_trace_id_exemplars(client: TestClient, log_lines: LogLines) -> None:
    log_lines()
    client.get("/api/v1/items")
    (access,) = access_lines(log_lines())

    response = client.get("/metrics", headers={"Accept": OPENMETRICS_ACCEPT})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    exemplars = re.findall(
        r'^http_request_duration_seconds_bucket\{[^}]*endpoint="/api/v1/items"[^}]*\} '
        r'\S+ # \{trace_id="([0-9a-f]{32})"\}',
        response.text,
        flags=re.MULTILINE,
    )
    assert exemplars == [access["trace_id"]]


def test_plain_scrapes_get_the_text_format(client: TestClient) -> None:
    response = client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE http_requests_total counter" in response.text
    assert "trace_id" not in response.text


def test_metrics_route_stays_out_of_the_api_schema(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
