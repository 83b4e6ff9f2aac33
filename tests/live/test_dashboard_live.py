"""Issue 4, proofs 1 and 2, live parts: the dashboard asks only for what the backend really
emits, and every PromQL query of it returns data from the real Prometheus after traffic."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEMPLATE_DIR, require_tool
from contract import contract_metrics, loki_labels
from dashboard_queries import DASHBOARDS, Query, dashboard_queries

from harness.backend import BackendProcess
from harness.processes import wait_until

from .exposition import scrape
from .otlp_receiver import OtlpTraceReceiver
from .prometheus_server import PrometheusServer
from .traffic import Traffic, mixed_calls, send_all, unexpected

pytestmark = pytest.mark.slow

# Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Written by Tempo's metrics generator, which does not run here: queries made only of these
# are checked against the names and labels docs/contract.md gives them, not for data.
TEMPO_SPAN_METRIC = re.compile(r"\btraces_(spanmetrics|service_graph)_\w+")
TRACEQL_INTRINSICS = {"name", "status", "duration", "kind", "statusMessage", "rootName"}


@pytest.fixture(scope="module", params=DASHBOARDS, ids=lambda path: Path(path).stem)
def queries(live_project: Path, request: pytest.FixtureRequest) -> list[Query]:
    return dashboard_queries(live_project / request.param)


@pytest.fixture(scope="module")
def analysed(queries: list[Query]) -> list[tuple[Query, dict[str, Any]]]:
    """Each query with the names it uses, from Grafana's own grammars (tests/js)."""
    node = require_tool("node", "Node.js runs Grafana's query grammars")
    js_dir = TEMPLATE_DIR / "tests" / "js"
    if not (js_dir / "node_modules").is_dir():
        pytest.fail("tests/js/node_modules is missing: run `npm ci --prefix tests/js`")
    payload = json.dumps([{"language": q.language, "expr": q.expr} for q in queries])
    result = subprocess.run(
        [node, "parse-queries.mjs"],
        cwd=js_dir,
        input=payload,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    analyses: list[dict[str, Any]] = json.loads(result.stdout)
    for query, analysis in zip(queries, analyses, strict=True):
        assert analysis["errors"] == [], f"{query.source}: {query.expr}: {analysis['errors']}"
    return list(zip(queries, analyses, strict=True))


def test_promql_names_exist_in_a_real_scrape(
    backend: BackendProcess,
    prometheus: PrometheusServer,
    traffic: Traffic,
    analysed: list[tuple[Query, dict[str, Any]]],
) -> None:
    labels_by_metric: dict[str, set[str]] = {}
    for sample in scrape(backend.url):
        labels_by_metric.setdefault(sample.name, set()).update(name for name, _ in sample.labels)
    # Series the loaded rules record (the SLOs'), with the labels they get in Prometheus.
    groups = prometheus.rule_groups()
    recorded_names = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "recording"
    }
    # A group evaluates first within one of its intervals after Prometheus starts.
    first_evaluation = 2 * max(group["interval"] for group in groups) + 30
    used = {metric for _, analysis in analysed for metric in analysis.get("metrics", [])}
    for name in sorted(used & recorded_names):

        def recorded(rule: str = name) -> list[dict[str, Any]]:
            # Rates need traffic between two scrapes, as on a watched dashboard.
            assert unexpected(send_all(backend.url, mixed_calls(repeat=1))) == []
            return prometheus.query(rule)

        series = wait_until(recorded, first_evaluation, f"data of the rule {name}", interval=1)
        labels_by_metric[name] = {label for sample in series for label in sample["metric"]}
    generated = contract_metrics().labels
    problems = []
    for query, analysis in analysed:
        if query.language != "promql":
            continue
        allowed_labels = set(TARGET_LABELS)
        for metric in analysis["metrics"]:
            if TEMPO_SPAN_METRIC.fullmatch(metric):
                if metric not in generated:
                    problems.append(f"{query.source}: metric {metric} is not one Tempo writes")
                allowed_labels |= generated.get(metric, set())
            elif metric in labels_by_metric:
                allowed_labels |= labels_by_metric[metric]
            else:
                problems.append(f"{query.source}: metric {metric} is not in the backend's scrape")
        problems += [
            f"{query.source}: label {label} is on none of its metrics"
            for label in set(analysis["labels"]) - allowed_labels
        ]
    assert problems == []


def test_logql_fields_are_written_by_the_backend(
    backend: BackendProcess, traffic: Traffic, analysed: list[tuple[Query, dict[str, Any]]]
) -> None:
    written = {key for line in backend.log_lines() for key in line}
    stream_labels = loki_labels()
    problems = []
    for query, analysis in analysed:
        if query.language != "logql":
            continue
        problems += [
            f"{query.source}: stream label {name}"
            for name in set(analysis["stream_labels"]) - stream_labels
        ]
        problems += [
            f"{query.source}: field {name} is in no log line"
            for name in set(analysis["fields"]) - written - stream_labels
        ]
    assert problems == []


def test_traceql_attributes_are_on_the_exported_spans(
    otlp_receiver: OtlpTraceReceiver,
    traffic: Traffic,
    analysed: list[tuple[Query, dict[str, Any]]],
) -> None:
    spans = wait_until(otlp_receiver.spans, 30, "spans at the receiver")
    resource = {f"resource.{key}" for span in spans for key in span.resource}
    span_attributes = {f"span.{key}" for span in spans for key in span.attributes}
    unscoped = {"." + name.split(".", 1)[1] for name in resource | span_attributes}
    known = resource | span_attributes | unscoped | TRACEQL_INTRINSICS
    problems = [
        f"{query.source}: {name}"
        for query, analysis in analysed
        if query.language == "traceql"
        for name in set(analysis["attributes"]) - known
    ]
    assert problems == []


def test_every_promql_query_returns_data(
    backend: BackendProcess, prometheus: PrometheusServer, queries: list[Query]
) -> None:
    promql = [q for q in queries if q.language == "promql"]
    assert promql, "the dashboard has no PromQL query"

    def has_data(query: Query) -> bool:
        if query.source.startswith("variable "):
            # label_values(selector, label): the selector's series must carry the label.
            return any(query.ref_id in s["metric"] for s in prometheus.query(query.expr))
        # A rate over a window without traffic is 0 and a ratio of two of them NaN: no data.
        return any(math.isfinite(float(s["value"][1])) for s in prometheus.query(query.expr))

    # Tempo writes these through remote write; without Tempo here they cannot have data.
    empty = [q for q in promql if not TEMPO_SPAN_METRIC.search(q.expr)]
    deadline = time.monotonic() + 60
    while empty and time.monotonic() < deadline:
        # Traffic keeps flowing, as on a watched dashboard, so scrapes see rates move.
        assert unexpected(send_all(backend.url, mixed_calls(repeat=1))) == []
        empty = [query for query in empty if not has_data(query)]
        time.sleep(1)
    assert [f"{q.source}: {q.expr}" for q in empty] == []
