"""Reading the backend's own /metrics page (Prometheus text format)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

CONTRACT_METRICS = ("http_requests_total", "http_request_duration_seconds", "active_requests")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: frozenset[tuple[str, str]]
    value: float

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


def scrape(base_url: str) -> list[Sample]:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200, f"/metrics answered {response.status_code}"
    samples = []
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"unparsable /metrics line: {line!r}"
        labels = frozenset(_LABEL.findall(match["labels"] or ""))
        samples.append(Sample(match["name"], labels, float(match["value"])))
    return samples


def contract_series(samples: list[Sample]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Every series of the contract metrics (histograms count each bucket, sum and count)."""
    return {
        (s.name, s.labels)
        for s in samples
        if any(s.name == m or s.name.startswith(f"{m}_") for m in CONTRACT_METRICS)
        and not s.name.endswith("_created")
    }


def requests_by_series(samples: list[Sample]) -> dict[tuple[str, str, str], float]:
    """`http_requests_total` as {(method, endpoint, status): count}."""
    return {
        (s.label("method") or "", s.label("endpoint") or "", s.label("status") or ""): s.value
        for s in samples
        if s.name == "http_requests_total"
    }
