"""The "Backend Service" dashboard: shape, panels, and every query checked against the
grammars Grafana and Prometheus use, the schema @grafana/schema publishes, and the names
docs/contract.md says the backend, Promtail and Tempo write.

Live proof that the PromQL returns data is in tests/live (it uses dashboard_queries()).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import PINNED_BUILD_HINT, TEMPLATE_DIR, require_tool
from contract import ContractMetrics, contract_metrics, contract_section, loki_labels
from dashboard_queries import (
    DASHBOARD_UIDS,
    DASHBOARDS,
    DASHBOARDS_DIR,
    WORKER_DASHBOARD,
    Query,
    dashboard_queries,
    panels,
)

JS_DIR = TEMPLATE_DIR / "tests" / "js"
SCHEMA_FILE = JS_DIR / "dashboard.schema.json"
DASHBOARD = DASHBOARDS_DIR / "backend-service.json"
DASHBOARD_PROVIDERS = Path("observability/grafana/provisioning/dashboards/dashboards.yml")
DATASOURCES = Path("observability/grafana/provisioning/datasources")

# Log fields docs/contract.md lists under "Logs"; each is checked to be there.
LOG_FIELDS = {
    "timestamp", "level", "message", "logger", "service", "environment", "source",
    "request_id", "correlation_id",
    "method", "route", "path", "status", "duration_ms", "client_ip", "outcome", "invalid_fields",
    "error", "trace_id", "span_id",
}  # fmt: skip
# LogQL's json parser flattens the nested `error` object into these.
FLATTENED_ERROR_FIELDS = {"error_type", "error_message", "error_stack"}
# The backend's service.name (SERVICE_NAME in docs/contract.md) is its only resource
# attribute the dashboard relies on.
TRACE_ATTRIBUTES = {
    "resource.service.name", "span.db.system.name",
    "span.http.route", "span.http.response.status_code", "span.url.path",
}  # fmt: skip
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


# --- docs/contract.md -----------------------------------------------------------------


def test_contract_lists_every_log_field_this_test_allows() -> None:
    documented = set(re.findall(r"`(\w+)`", contract_section("Logs")))
    assert documented >= LOG_FIELDS, sorted(LOG_FIELDS - documented)


def test_contract_parsing_finds_the_documented_names() -> None:
    metrics = contract_metrics()
    assert metrics.labels["http_requests_total"] == {"method", "endpoint", "status"}
    assert metrics.labels["http_request_duration_seconds_bucket"] == {"method", "endpoint", "le"}
    assert metrics.labels["traces_spanmetrics_calls_total"] >= {"service", "span_name"}
    assert metrics.labels["traces_service_graph_request_total"] == {
        "client",
        "server",
        "connection_type",
    }
    assert metrics.known("process_resident_memory_bytes")
    assert metrics.labels["job:slo_error_budget_remaining:ratio"] == {"job", "slo"}
    assert metrics.known("job:slo_errors_per_request:ratio_rate30d")
    assert not metrics.known("http_requests") and not metrics.known("request_latency_seconds")
    assert not metrics.known("process_resident_memory")
    assert loki_labels() == {"service", "container", "level"}


# --- name checks shared by the dashboard tests and their negative cases ---------------


def unknown_promql_names(analysis: dict[str, Any], metrics: ContractMetrics) -> list[str]:
    problems = [f"metric {name}" for name in analysis["metrics"] if not metrics.known(name)]
    allowed = set(TARGET_LABELS)
    for name in analysis["metrics"]:
        allowed |= metrics.labels.get(name, set())
    problems += [f"label {label}" for label in analysis["labels"] if label not in allowed]
    return problems


def unknown_logql_names(analysis: dict[str, Any]) -> list[str]:
    stream = loki_labels()
    fields = LOG_FIELDS | FLATTENED_ERROR_FIELDS | stream
    return [f"stream label {name}" for name in analysis["stream_labels"] if name not in stream] + [
        f"field {name}" for name in analysis["fields"] if name not in fields
    ]


def unknown_traceql_names(analysis: dict[str, Any]) -> list[str]:
    return [f"attribute {name}" for name in analysis["attributes"] if name not in TRACE_ATTRIBUTES]


UNKNOWN_NAMES = {
    "promql": lambda analysis: unknown_promql_names(analysis, contract_metrics()),
    "logql": unknown_logql_names,
    "traceql": unknown_traceql_names,
}


# --- Node: the lezer grammars and the schema generator ---------------------------------


@pytest.fixture(scope="session")
def node() -> str:
    """node, with tests/js/node_modules installed from the lockfile when missing."""
    node = require_tool("node", "Node.js 20+ runs the grammar and schema checks")
    if not (JS_DIR / "node_modules").is_dir():
        npm = require_tool("npm", "npm installs tests/js from its lockfile")
        install = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert install.returncode == 0, install.stderr
    return node


def parse_queries(node: str, queries: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """(language, expr) pairs through tests/js/parse-queries.mjs."""
    payload = json.dumps([{"language": language, "expr": expr} for language, expr in queries])
    result = subprocess.run(
        [node, "parse-queries.mjs"],
        cwd=JS_DIR, input=payload, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    analyses: list[dict[str, Any]] = json.loads(result.stdout)
    return analyses


@pytest.fixture(scope="session")
def dashboard(project_yes: Path) -> dict[str, Any]:
    """The Backend Service dashboard, for the checks of its own panels."""
    loaded: dict[str, Any] = json.loads((project_yes / DASHBOARD).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def queries(project_yes: Path) -> list[Query]:
    return dashboard_queries(project_yes / DASHBOARD)


@pytest.fixture(scope="session", params=[*DASHBOARDS, WORKER_DASHBOARD], ids=lambda path: path.stem)
def any_dashboard_path(
    request: pytest.FixtureRequest, project_yes: Path, project_with_worker: Path
) -> Path:
    """Each provisioned dashboard in turn, for the checks every dashboard must pass."""
    project = project_with_worker if request.param == WORKER_DASHBOARD else project_yes
    path: Path = project / request.param
    return path


@pytest.fixture(scope="session")
def any_dashboard(any_dashboard_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(any_dashboard_path.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def any_queries(any_dashboard_path: Path) -> list[Query]:
    return dashboard_queries(any_dashboard_path)


@pytest.fixture(scope="session")
def analysed(node: str, any_queries: list[Query]) -> list[tuple[Query, dict[str, Any]]]:
    analyses = parse_queries(node, ((query.language, query.expr) for query in any_queries))
    return list(zip(any_queries, analyses, strict=True))


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


# --- the dashboard as a file ------------------------------------------------------------


def test_dashboard_is_copied_verbatim(any_dashboard_path: Path) -> None:
    template_file = (
        TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / DASHBOARDS_DIR / any_dashboard_path.name
    )
    assert any_dashboard_path.read_bytes() == template_file.read_bytes()


def test_every_dashboard_file_is_one_of_the_checked_ones(project_with_worker: Path) -> None:
    folder = project_with_worker / DASHBOARD.parent
    checked = [*DASHBOARDS, WORKER_DASHBOARD]
    assert sorted(folder.glob("*.json")) == sorted(project_with_worker / path for path in checked)


def contract_dashboards() -> dict[str, str]:
    """uid -> title, from the dashboards table of docs/contract.md's Grafana section."""
    rows = re.findall(r"^\s*\| `([a-z-]+)` \| `([^`]+)` \|", contract_section("Grafana"), re.M)
    assert rows, "docs/contract.md no longer lists the dashboards"
    return dict(rows)


def test_dashboards_have_the_contract_uids_and_titles(project_yes: Path) -> None:
    titles = contract_dashboards()
    assert set(titles) | {"database"} == set(DASHBOARD_UIDS)
    assert "worker" not in titles  # linked from none: a worker=none render has no such page
    for uid, title in titles.items():
        dashboard = json.loads((project_yes / DASHBOARDS_DIR / f"{uid}.json").read_text())
        assert (dashboard["uid"], dashboard["title"]) == (uid, title)


def test_the_dashboards_link_to_each_other_keeping_time_and_variables(project_yes: Path) -> None:
    linked = set(contract_dashboards())
    for uid in linked:
        dashboard = json.loads((project_yes / DASHBOARDS_DIR / f"{uid}.json").read_text())
        links = dashboard["links"]
        assert {link["url"] for link in links} == {f"/d/{other}" for other in linked - {uid}}, uid
        assert all(link["keepTime"] and link["includeVars"] for link in links), uid


def test_the_worker_dashboard_links_back_and_has_its_panels(project_with_worker: Path) -> None:
    worker = json.loads((project_with_worker / WORKER_DASHBOARD).read_text(encoding="utf-8"))
    assert (worker["uid"], worker["title"]) == ("worker", "Worker")
    assert [link["url"] for link in worker["links"]] == ["/d/backend-service"]
    titles = {panel["title"] for panel in panels(worker)}
    assert {
        "Redis up",
        "Backlog",
        "Oldest waiting job",
        "Jobs sent and started by task",
        "Outcomes by task",
        "Dead letters by task",
        "Attempt duration p50 / p95 / p99 by task",
        "Worker logs",
        "Recent job attempts",
    } <= titles
    latency = next(p for p in panels(worker) if p["title"].startswith("Attempt duration"))
    assert all(target.get("exemplar") for target in latency["targets"])


def test_the_database_dashboard_links_back_and_has_its_panels(project_yes: Path) -> None:
    database = json.loads((project_yes / DASHBOARDS[1]).read_text(encoding="utf-8"))
    assert (database["uid"], database["title"]) == ("database", "Database")
    assert [link["url"] for link in database["links"]] == ["/d/backend-service"]
    titles = {panel["title"] for panel in panels(database)}
    assert {
        "Pool: connections in use vs maximum",
        "Connection wait time p95",
        "Checkout timeouts",
        "Statement rate by operation",
        "Statement latency p50 / p95 / p99 by operation",
        "Slow statements by operation",
        "Rollbacks",
        "Database readiness",
        "Recent database traces",
    } <= titles
    latency = next(p for p in panels(database) if p["title"].startswith("Statement latency"))
    assert all(target.get("exemplar") for target in latency["targets"])


def test_dashboard_identity(dashboard: dict[str, Any], schema: dict[str, Any]) -> None:
    assert dashboard["uid"] == "backend-service"
    assert dashboard["title"] == "Backend Service"
    assert dashboard["schemaVersion"] == schema["x-grafana-schema"]["dashboardSchemaVersion"]
    assert dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"


def test_dashboard_matches_the_grafana_schema(
    any_dashboard: dict[str, Any], schema: dict[str, Any]
) -> None:
    assert any_dashboard["schemaVersion"] == schema["x-grafana-schema"]["dashboardSchemaVersion"]
    assert any_dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(any_dashboard), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors)


def error_messages(errors: Iterable[jsonschema.ValidationError]) -> list[str]:
    """Messages of the errors and of the branches of anyOf/oneOf that failed under them."""
    messages = []
    for error in errors:
        messages.append(error.message)
        messages += error_messages(error.context or [])
    return messages


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda d: d["panels"][1]["options"].pop("reduceOptions"), "'reduceOptions' is a required"),
        (lambda d: d["panels"][1].update(type="singlestat"), "'singlestat' is not one of"),
        (lambda d: d.update(schemaVersion="42"), "'42' is not of type 'number'"),
        (
            lambda d: d["templating"]["list"][0].update(refresh_on="load"),
            "'refresh_on' was unexpected",
        ),
    ],
    ids=["missing-panel-option", "unknown-panel-type", "string-schema-version", "unknown-key"],
)
def test_schema_rejects_a_broken_dashboard(
    dashboard: dict[str, Any], schema: dict[str, Any], mutation: Any, expected: str
) -> None:
    broken = json.loads(json.dumps(dashboard))
    mutation(broken)
    messages = error_messages(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert any(expected in message for message in messages), messages


@pytest.mark.slow
def test_schema_is_what_the_pinned_grafana_schema_package_generates(
    node: str, tmp_path: Path
) -> None:
    regenerated = tmp_path / "dashboard.schema.json"
    result = subprocess.run(
        [node, "generate-dashboard-schema.mjs", str(regenerated)],
        cwd=JS_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert regenerated.read_text() == SCHEMA_FILE.read_text(), (
        "tests/js/dashboard.schema.json is stale: run `node generate-dashboard-schema.mjs"
        " dashboard.schema.json` in tests/js and commit it"
    )


def test_schema_package_is_the_grafana_release_compose_runs(
    project_yes: Path, schema: dict[str, Any]
) -> None:
    compose_file = yaml.safe_load((project_yes / "compose.yml").read_text(encoding="utf-8"))
    image = compose_file["services"]["grafana"]["image"]
    assert image.startswith("grafana/grafana:"), image
    grafana_version = image.split(":", 1)[1]
    package = json.loads((JS_DIR / "package.json").read_text(encoding="utf-8"))
    assert package["dependencies"]["@grafana/schema"] == grafana_version
    assert schema["x-grafana-schema"]["version"] == grafana_version


def test_panel_ids_are_unique_and_panels_do_not_overlap(any_dashboard: dict[str, Any]) -> None:
    every_panel = [
        *any_dashboard["panels"],
        *(p for row in any_dashboard["panels"] for p in row.get("panels", [])),
    ]
    ids = [panel["id"] for panel in every_panel]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for panel in every_panel:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


# --- panels and variables ---------------------------------------------------------------


def squeeze(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def prom(queries: list[Query], panel: str) -> list[str]:
    found = [squeeze(q.expr) for q in queries if q.source == panel and q.language == "promql"]
    assert found, f"no panel {panel!r} with PromQL"
    return found


def test_required_panels_ask_for_what_their_title_says(queries: list[Query]) -> None:
    (by_endpoint,) = prom(queries, "Request rate by endpoint")
    assert "sumby(endpoint)(rate(http_requests_total{" in by_endpoint
    (error_ratio,) = prom(queries, "Error ratio (5xx / all)")
    numerator, denominator = error_ratio.split(")/", 1)
    assert 'status=~"5.."' in numerator and "http_requests_total" in denominator
    assert "status" not in denominator
    (in_flight,) = prom(queries, "Requests in flight")
    assert "active_requests{" in in_flight
    (by_status,) = prom(queries, "Responses by status code")
    assert "sumby(status)(rate(http_requests_total{" in by_status
    (slowest,) = prom(queries, "Slowest endpoints (p95)")
    assert (
        "histogram_quantile(0.95,sumby(le,endpoint)(rate(http_request_duration_seconds_bucket{"
        in slowest
    )
    (cpu,) = prom(queries, "Process CPU")
    assert cpu.startswith("rate(process_cpu_seconds_total{")
    (memory,) = prom(queries, "Process memory")
    assert "process_resident_memory_bytes{" in memory


def test_latency_panel_shows_p50_p95_p99_with_exemplars(queries: list[Query]) -> None:
    latency = [q for q in queries if q.source == "Latency p50 / p95 / p99"]
    quantiles = sorted(
        float(re.match(r"histogram_quantile\(([\d.]+),", q.expr)[1])  # type: ignore[index]
        for q in latency
    )
    assert quantiles == [0.5, 0.95, 0.99]
    assert all("http_request_duration_seconds_bucket" in q.expr for q in latency)
    assert all(q.exemplar for q in latency), "exemplars link latency to traces"


def test_logs_and_traces_panels(dashboard: dict[str, Any], queries: list[Query]) -> None:
    panel_types = {panel["title"]: panel["type"] for panel in panels(dashboard)}
    (volume,) = (q for q in queries if q.source == "Log volume by level")
    assert volume.language == "logql"
    assert squeeze(volume.expr).startswith('sumby(level)(count_over_time({service="backend"}')
    assert panel_types["Backend logs"] == "logs"
    (logs,) = (q for q in queries if q.source == "Backend logs")
    assert logs.language == "logql" and "| json" in logs.expr
    assert panel_types["Recent traces"] == "table"
    (traces,) = (q for q in queries if q.source == "Recent traces")
    assert traces.language == "traceql"
    assert squeeze(traces.expr) == '{resource.service.name="backend"}'


def test_log_panels_keep_the_json_line_the_trace_link_reads(queries: list[Query]) -> None:
    """Loki's derived field finds "trace_id" in the raw JSON line; reformatting drops it."""
    for query in queries:
        if query.language == "logql":
            assert "line_format" not in query.expr, query.source


def test_template_variables(dashboard: dict[str, Any], queries: list[Query]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"job", "endpoint"}
    job = next(q for q in queries if q.source == "variable job")
    assert job.expr in {"app_info", "up"} and job.ref_id == "job"
    assert variables["job"]["current"]["value"] == "backend", "the contract's job name"
    endpoint = next(q for q in queries if q.source == "variable endpoint")
    assert endpoint.template == 'label_values(http_requests_total{job="$job"}, endpoint)'
    assert variables["endpoint"]["includeAll"] and variables["endpoint"]["allValue"] == ".*"
    promql = [q for q in queries if q.language == "promql" and not q.source.startswith("variable")]
    assert all('job="$job"' in q.template for q in promql), "every panel follows the service"
    uses_endpoint = [q for q in promql if 'endpoint=~"$endpoint"' in q.template]
    assert {q.source for q in uses_endpoint} >= {
        "Request rate by endpoint",
        "Latency p50 / p95 / p99",
    }


def test_undefined_variable_is_an_error(tmp_path: Path, dashboard: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(dashboard))
    broken["panels"][1]["targets"][0]["expr"] = 'sum(rate(http_requests_total{job="$jobb"}[1m]))'
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(KeyError, match=r"\$jobb"):
        dashboard_queries(path)


def datasource_refs(node: Any) -> Iterable[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def test_every_datasource_is_a_provisioned_one(
    project_yes: Path, dashboard: dict[str, Any], any_dashboard: dict[str, Any]
) -> None:
    provisioned = {
        source["uid"]: source["type"]
        for path in sorted((project_yes / DATASOURCES).glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    }
    assert {ref["uid"] for ref in datasource_refs(dashboard)} == {"prometheus", "loki", "tempo"}
    refs = list(datasource_refs(any_dashboard))
    for ref in refs:
        assert provisioned.get(ref["uid"]) == ref["type"], ref


def test_provider_loads_the_folder_compose_mounts(project_yes: Path) -> None:
    providers = yaml.safe_load((project_yes / DASHBOARD_PROVIDERS).read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose_file = yaml.safe_load((project_yes / "compose.yml").read_text(encoding="utf-8"))
    mounts = dict(
        volume.split(":")[:2] for volume in compose_file["services"]["grafana"]["volumes"]
    )
    assert mounts["./observability/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./observability/grafana/provisioning"] == "/etc/grafana/provisioning"


# --- every query: grammar, names, the pinned Prometheus ------------------------------


def test_every_query_parses_with_the_official_grammar(
    analysed: list[tuple[Query, dict[str, Any]]],
) -> None:
    failures = [
        f"{q.source} [{q.ref_id}] {q.expr}: {a['errors']}" for q, a in analysed if a["errors"]
    ]
    assert not failures, "\n".join(failures)
    assert {q.language for q, _ in analysed} <= {"promql", "logql", "traceql"}


def test_every_query_uses_only_contract_names(analysed: list[tuple[Query, dict[str, Any]]]) -> None:
    failures = [
        f"{q.source} [{q.ref_id}]: {problems}"
        for q, a in analysed
        if (problems := UNKNOWN_NAMES[q.language](a))
    ]
    assert not failures, "\n".join(failures)


# A query naming something nobody writes, and what the check must report.
MISNAMED = [
    ("promql", 'sum(rate(http_requests_totl{job="backend"}[1m]))', "metric http_requests_totl"),
    ("promql", "sum by (route) (rate(http_requests_total[1m]))", "label route"),
    ("promql", "sum by (le) (rate(http_request_duration_seconds_sum[1m]))", "label le"),
    ("logql", '{app="backend"} | json', "stream label app"),
    ("logql", '{service="backend"} | json | latency_ms > 5', "field latency_ms"),
    ("logql", '{service="backend"} | json | line_format "{{.msg}}"', "field msg"),
    ("traceql", '{resource.service="backend"}', "attribute resource.service"),
]
BROKEN = [
    ("promql", "sum(rate(http_requests_total[1m])"),
    ("logql", '{service="backend"} | json |'),
    ("logql", 'count_over_time({service="backend"})'),
    ("traceql", '{resource.service.name="backend" &&}'),
]


@pytest.fixture(scope="module")
def negative_analyses(node: str) -> list[dict[str, Any]]:
    """One parser run for every negative case below."""
    return parse_queries(node, [(language, expr) for language, expr, *_ in MISNAMED + BROKEN])


@pytest.mark.parametrize("case", range(len(MISNAMED)), ids=[problem for *_, problem in MISNAMED])
def test_name_check_catches_a_name_nobody_writes(
    negative_analyses: list[dict[str, Any]], case: int
) -> None:
    language, expr, problem = MISNAMED[case]
    analysis = negative_analyses[case]
    assert not analysis["errors"], expr
    assert problem in UNKNOWN_NAMES[language](analysis)


@pytest.mark.parametrize("case", range(len(BROKEN)), ids=[expr for _, expr in BROKEN])
def test_grammar_check_catches_a_broken_query(
    negative_analyses: list[dict[str, Any]], case: int
) -> None:
    analysis = negative_analyses[len(MISNAMED) + case]
    assert analysis["errors"], BROKEN[case][1]


def promtool_check(queries: Iterable[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Prometheus' own parser (the pinned promtool) reads each query as a recording rule."""
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": e} for n, e in enumerate(queries)
                ],
            }
        ]
    }
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    return subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_promql_query_parses_in_prometheus(any_queries: list[Query], tmp_path: Path) -> None:
    result = promtool_check((q.expr for q in any_queries if q.language == "promql"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_catches_a_function_prometheus_lacks(tmp_path: Path) -> None:
    result = promtool_check(["no_such_function(rate(http_requests_total[1m]))"], tmp_path)
    assert result.returncode != 0
    assert "no_such_function" in result.stdout + result.stderr


# --- the SLO dashboard against the SLO rules ---------------------------------------------

BURN_CONDITION = re.compile(
    r"job:slo_errors_per_request:ratio_rate(\w+)\s*>\s*on \(job, slo\) \(([\d.]+) \*"
)


def slo_alerts(project: Path) -> dict[str, tuple[set[str], float]]:
    """Each burn-rate alert of backend-slos.yml: its two windows and its burn rate."""
    rules = yaml.safe_load(
        (project / "observability/prometheus/rules/backend-slos.yml").read_text(encoding="utf-8")
    )
    alerts = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                conditions = BURN_CONDITION.findall(rule["expr"])
                assert len(conditions) == 2, rule["alert"]
                (factor,) = {float(factor) for _, factor in conditions}
                alerts[rule["alert"]] = ({window for window, _ in conditions}, factor)
    return alerts


def test_each_burn_rate_panel_shows_its_alert_windows_against_its_threshold(
    project_yes: Path,
) -> None:
    slo = json.loads((project_yes / DASHBOARDS_DIR / "slo.json").read_text(encoding="utf-8"))
    alerts = slo_alerts(project_yes)
    assert len(alerts) == 4
    for alert, (windows, factor) in alerts.items():
        (panel,) = [p for p in panels(slo) if p["title"].startswith(f"{alert}:")]
        shown = {
            window
            for target in panel["targets"]
            for window in re.findall(r"ratio_rate(\w+)\{", target["expr"])
        }
        assert shown == windows, alert
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [step["value"] for step in steps[1:]] == [factor], alert
    (alert_list,) = [p for p in panels(slo) if p["type"] == "alertlist"]
    options = alert_list["options"]
    assert all(alert.startswith(options["alertName"]) for alert in alerts)
    assert options["showInactiveAlerts"] and all(options["stateFilter"].values())
    # The panel names its rule source by the datasource's name, not its uid.
    datasources = yaml.safe_load(
        (project_yes / DATASOURCES / "datasources.yml").read_text(encoding="utf-8")
    )["datasources"]
    (prometheus,) = [source for source in datasources if source["uid"] == "prometheus"]
    assert options["datasource"] == prometheus["name"]
    assert prometheus["jsonData"]["manageAlerts"] is True
    (conditions,) = [p for p in panels(slo) if p["title"] == "Burn-rate alert conditions"]
    for target in conditions["targets"]:
        windows = set(re.findall(r"ratio_rate(\w+)\{", target["expr"]))
        factors = {float(f) for f in re.findall(r"> bool ([\d.]+)", target["expr"])}
        assert (windows, factors.pop()) in alerts.values() and not factors, target["expr"]
