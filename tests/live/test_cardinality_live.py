"""Issue 3, proof 4: random URLs cannot create series."""

from __future__ import annotations

import time

import pytest

from .backend import BackendProcess
from .exposition import contract_series, scrape
from .prometheus_server import PrometheusServer
from .traffic import UNMATCHED, Call, Traffic, random_path, send_all, unexpected

pytestmark = pytest.mark.slow

DISTINCT_PATHS = 5_000
CONTRACT_SERIES = (
    'count({job="backend", '
    '__name__=~"http_requests_total|http_request_duration_seconds_.+|active_requests"})'
)


def test_distinct_random_paths_leave_the_series_count_unchanged(
    backend: BackendProcess, prometheus: PrometheusServer, traffic: Traffic
) -> None:
    # The traffic already holds unmatched GETs: their series exist before the flood.
    prometheus.wait_for_scrape_after("backend", traffic.finished_at)
    series_before = contract_series(scrape(backend.url))
    stored_before = prometheus.query(CONTRACT_SERIES)

    calls = [Call("GET", random_path(), UNMATCHED, 404) for _ in range(DISTINCT_PATHS)]
    assert len({call.path for call in calls}) == DISTINCT_PATHS
    answers = send_all(backend.url, calls, concurrency=32)
    flood_finished = time.time()
    assert unexpected(answers)[:5] == []

    series_after = contract_series(scrape(backend.url))
    assert series_after == series_before, (
        f"new series: {sorted(map(str, series_after - series_before))[:5]}"
    )
    prometheus.wait_for_scrape_after("backend", flood_finished)
    assert prometheus.query(CONTRACT_SERIES)[0]["value"][1] == stored_before[0]["value"][1]
