"""Issue 3, proof 4: random URLs cannot create series."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.backend import BackendProcess

from .exposition import contract_series, scrape
from .traffic import UNMATCHED, Call, mixed_calls, random_path, send_all, unexpected

pytestmark = pytest.mark.slow

DISTINCT_PATHS = 5_000


def test_distinct_random_paths_leave_the_series_count_unchanged(
    start_backend: Callable[[str, dict[str, str]], BackendProcess],
) -> None:
    # A backend of its own, so that were the label unbounded the flood would spoil no other
    # test; it exports no traces (an empty endpoint switches the exporter off).
    backend = start_backend("backend-cardinality", {"OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    try:
        warm_up = [Call("GET", random_path(), UNMATCHED, 404) for _ in range(3)]
        assert unexpected(send_all(backend.url, mixed_calls() + warm_up)) == []
        series_before = contract_series(scrape(backend.url))

        calls = [Call("GET", random_path(), UNMATCHED, 404) for _ in range(DISTINCT_PATHS)]
        assert len({call.path for call in calls}) == DISTINCT_PATHS
        assert unexpected(send_all(backend.url, calls, concurrency=32))[:5] == []

        series_after = contract_series(scrape(backend.url))
        assert series_after == series_before, (
            f"new series: {sorted(map(str, series_after - series_before))[:5]}"
        )
    finally:
        backend.stop()
