"""Issue 3, proof 2: a real Prometheus scrapes the rendered backend after real traffic."""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness.backend import BackendProcess
from harness.processes import wait_until

from .prometheus_server import PrometheusServer, rfc3339_seconds
from .traffic import FAILING_ROUTE, ITEM, ITEMS, UNMATCHED, Traffic, expected_counts, unexpected

pytestmark = pytest.mark.slow

TARGET_LABELS = {"job", "instance"}
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
JOBS_RUN_HERE = {"backend", "prometheus"}


def label_names(series: dict[str, str]) -> set[str]:
    return set(series) - TARGET_LABELS - {"__name__"}


def test_api_answers_as_documented(traffic: Traffic) -> None:
    assert unexpected(traffic.answers) == []
    assert all(answer.request_id for answer in traffic.answers), "a response lacks X-Request-ID"


def test_backend_and_prometheus_are_up_the_others_are_not_here(
    prometheus: PrometheusServer, traffic: Traffic
) -> None:
    prometheus.wait_for_scrape_after("backend", traffic.finished_at)
    prometheus.wait_for_scrape_after("prometheus", traffic.finished_at)
    jobs = {job["job_name"] for job in prometheus.config["scrape_configs"]}

    def up_of_every_job() -> dict[str, str] | None:
        # A job's first `up` sample comes with its first scrape, the unreachable ones' too.
        up = {sample["metric"]["job"]: sample["value"][1] for sample in prometheus.query("up")}
        return up if up.keys() >= jobs else None

    up = wait_until(up_of_every_job, 30, "a first scrape of every job")
    assert up == {job: "1" if job in JOBS_RUN_HERE else "0" for job in jobs}


def test_contract_metrics_have_their_label_sets(
    prometheus: PrometheusServer, traffic: Traffic
) -> None:
    prometheus.wait_for_scrape_after("backend", traffic.finished_at)

    requests = prometheus.query('http_requests_total{job="backend"}')
    assert {frozenset(label_names(s["metric"])) for s in requests} == {
        frozenset({"method", "endpoint", "status"})
    }
    counted = {
        (s["metric"]["method"], s["metric"]["endpoint"], s["metric"]["status"]): float(
            s["value"][1]
        )
        for s in requests
    }
    assert {"200", "201", "404", "422", "500"} <= {status for _, _, status in counted}
    for series, sent in expected_counts(traffic.answers).items():
        assert counted.get(series, 0) >= sent, f"{series}: {counted.get(series)} < {sent} sent"
    assert {endpoint for _, endpoint, _ in counted} <= {ITEMS, ITEM, FAILING_ROUTE, UNMATCHED}, (
        "an endpoint label is not a route template"
    )

    buckets = prometheus.query('http_request_duration_seconds_bucket{job="backend"}')
    assert {frozenset(label_names(s["metric"])) for s in buckets} == {
        frozenset({"method", "endpoint", "le"})
    }
    assert {s["metric"]["endpoint"] for s in buckets} == {ITEMS, ITEM, FAILING_ROUTE, UNMATCHED} & {
        endpoint for _, endpoint, _ in counted
    }

    active = prometheus.query('active_requests{job="backend"}')
    assert [label_names(s["metric"]) for s in active] == [set()]


@pytest.mark.parametrize(
    "histogram",
    ["http_request_duration_seconds_bucket", "db_client_operation_duration_seconds_bucket"],
)
def test_exemplars_carry_the_trace_ids_of_logged_requests(
    prometheus: PrometheusServer, traffic: Traffic, backend: BackendProcess, histogram: str
) -> None:
    prometheus.wait_for_scrape_after("backend", traffic.finished_at)
    series = prometheus.query_exemplars(
        f'{histogram}{{job="backend"}}', since=traffic.started_at - 1
    )
    exemplars = [exemplar for s in series for exemplar in s["exemplars"]]
    assert exemplars, f"Prometheus stored no exemplar for {histogram}"
    assert {label for e in exemplars for label in e["labels"]} == {"trace_id"}
    trace_ids = {e["labels"]["trace_id"] for e in exemplars}
    assert all(TRACE_ID.match(trace_id) for trace_id in trace_ids), trace_ids

    backend.access_lines_of(answer.request_id for answer in traffic.answers)
    logged = {line.get("trace_id") for line in backend.access_lines()}
    assert trace_ids <= logged, f"exemplar trace ids missing from the logs: {trace_ids - logged}"


def test_rendered_alert_rules_evaluate_against_the_real_metrics(
    prometheus: PrometheusServer, traffic: Traffic
) -> None:
    prometheus.wait_for_scrape_after("backend", traffic.finished_at)

    def evaluated_since_traffic() -> list[dict[str, Any]] | None:
        rules = [rule for group in prometheus.rule_groups() for rule in group["rules"]]
        fresh = all(rfc3339_seconds(rule["lastEvaluation"]) > traffic.finished_at for rule in rules)
        return rules if rules and fresh else None

    rules = wait_until(evaluated_since_traffic, 60, "every rendered rule to be evaluated")
    assert {r["name"]: r["health"] for r in rules if r["health"] != "ok"} == {}
    assert {r["name"]: r.get("lastError") for r in rules if r.get("lastError")} == {}
