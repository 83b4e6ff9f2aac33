"""Static proof of the observability stack: real promtool runs on the rendered files, and
every name one config takes from another checked against the file that owns it.

The ports, labels and field names below come from docs/contract.md; a change there must
change them here.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from alloy_syntax import parse
from conftest import COOKIECUTTER_JSON, PINNED_BUILD_HINT, require_tool, resolved_compose
from contract import contract_section
from stack_checks import (
    ALLOY_CONFIG,
    ALLOY_EXPORTS,
    DOCKER_SOCKET,
    LOG_COLLECTORS,
    alloy_structure_problems,
    collector_of,
    collector_problems,
    datasource_references,
    host_port,
    listening_ports,
    load,
    log_pipeline,
    run,
    scrape_targets,
    unreachable_targets,
)

BACKEND_PORT = 8000  # the default answer
CORE_STACK = {"prometheus", "alertmanager", "loki", "tempo", "grafana"}
DATASOURCE_UIDS = {"prometheus", "alertmanager", "loki", "tempo"}
EXEMPLAR_LABEL = "trace_id"
ALERTS = {"BackendTargetMissing", "BackendNotReady", "BackendHighErrorRatio"}
# The multiwindow, multi-burn-rate alerts of backend-slos.yml, named by their long window.
SLO_ALERTS = {f"BackendErrorBudgetBurn{window}" for window in ("1h", "6h", "1d", "3d")}
# database=postgres adds its own file of alerts (database-alerts.yml).
DATABASE_ALERTS = {"DatabasePoolExhausted", "DatabaseNotReady", "DatabaseSlowStatementsSurging"}
# worker=taskiq adds worker-alerts.yml.
WORKER_ALERTS = {
    "WorkerTargetMissing",
    "RedisDown",
    "JobBacklogTooOld",
    "JobsFailing",
    "JobRetriesSurging",
    "DeadLettersGrowing",
}
# Images with an HTTP probe tool: busybox wget in Prometheus's and Alertmanager's, curl in
# Grafana's. Loki 3.7
# is distroless, Alloy's is Ubuntu with neither curl nor wget (its Dockerfile), and Tempo and
# Promtail are not relied on to have one.
IMAGES_WITH_A_PROBE_TOOL = {"prometheus", "alertmanager", "grafana"}
EXACT_TAG = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+$")
# A backend log line as docs/contract.md describes it.
BACKEND_LOG_LINE = (
    '{"timestamp": "2026-11-22T03:58:00.123456Z", "level": "info", "message": "request completed",'
    ' "logger": "app.access", "service": "backend", "environment": "development",'
    ' "request_id": "4f1c2d", "trace_id": "0af7651916cd43dd8448eb211c80319c",'
    ' "span_id": "b7ad6b7169203331", "status": 200}'
)


@pytest.fixture(scope="module")
def stack(project_with_collector: Path) -> dict[str, Any]:
    """The "yes" defaults' stack configs, once with each log collector."""
    project = project_with_collector
    observability = project / "observability"
    compose_file = load(project / "compose.yml")
    collector = collector_of(compose_file)
    return {
        "project": project,
        "collector": collector,
        "services": CORE_STACK | {collector},
        "compose": compose_file,
        "resolved": resolved_compose(project),
        "prometheus": load(observability / "prometheus/prometheus.yml"),
        # Every rule of every rule file, whatever its group.
        "rules": [
            rule
            for path in sorted((observability / "prometheus/rules").glob("*.yml"))
            for group in load(path)["groups"]
            for rule in group["rules"]
        ],
        "loki": load(observability / "loki/loki.yml"),
        "tempo": load(observability / "tempo/tempo.yml"),
        "datasources": {
            source["uid"]: source
            for source in load(observability / "grafana/provisioning/datasources/datasources.yml")[
                "datasources"
            ]
        },
    }


# --- Prometheus, for real -------------------------------------------------------------


@pytest.fixture(scope="module", params=["defaults", "with-worker"])
def project_rules(
    request: pytest.FixtureRequest, project_yes: Path, project_with_worker: Path
) -> Path:
    """The defaults' rules, and the worker's added to them."""
    return project_yes if request.param == "defaults" else project_with_worker


def test_promtool_accepts_the_config_and_finds_the_rules(project_rules: Path) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    result = run(
        [promtool, "check", "config", "observability/prometheus/prometheus.yml"], project_rules
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = list((project_rules / "observability/prometheus/rules").glob("*.yml"))
    assert f"{len(rule_files)} rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules(project_rules: Path) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    rule_files = sorted((project_rules / "observability/prometheus/rules").glob("*.yml"))
    assert rule_files
    result = run([promtool, "check", "rules", *map(str, rule_files)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts_pass(project_rules: Path) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    rules_dir = project_rules / "observability/prometheus/rules"
    tests = sorted(path.name for path in (rules_dir / "tests").glob("*.test.yml"))
    # One unit-test file per rule file.
    assert tests == sorted(f"{path.stem}.test.yml" for path in rules_dir.glob("*.yml"))
    result = run([promtool, "test", "rules", *tests], rules_dir / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def slow(values: tuple[str, str, str]) -> Any:
    """A mutant of the SLO rules: their unit tests take seconds per run, so the slow tier."""
    return pytest.param(*values, marks=pytest.mark.slow)


@pytest.mark.parametrize(
    ("rules_file", "original", "mutant"),
    [
        ("backend-alerts", "for: 2m", "for: 10m"),  # readiness alert too slow
        ("backend-alerts", 'up{job="backend"} == 0 or ', ""),  # a down target no longer alerts
        slow(("backend-slos", "expr: vector(0.995)", "expr: vector(0.99)")),  # availability target
        slow(("backend-slos", 'le: "0.5"', 'le: "0.25"')),  # latency threshold bucket changed
        slow(  # the latency SLI counts every bucket
            (
                "backend-slos",
                'rate(http_request_duration_seconds_bucket{job="backend"}[5m]) and on (job, le)'
                " job:slo_latency_threshold:seconds",
                'rate(http_request_duration_seconds_bucket{job="backend"}[5m])',
            )
        ),
        slow(  # fast page too lax
            (
                "backend-slos",
                "job:slo_errors_per_request:ratio_rate1h > on (job, slo) (14.4 *",
                "job:slo_errors_per_request:ratio_rate1h > on (job, slo) (18 *",
            )
        ),
        slow(  # fast page without its short window
            (
                "backend-slos",
                "job:slo_errors_per_request:ratio_rate5m > on (job, slo) (14.4 *",
                "job:slo_errors_per_request:ratio_rate1h > on (job, slo) (14.4 *",
            )
        ),
        slow(  # 6h page on the wrong long window
            (
                "backend-slos",
                "job:slo_errors_per_request:ratio_rate6h > on (job, slo) (6 *",
                "job:slo_errors_per_request:ratio_rate30m > on (job, slo) (6 *",
            )
        ),
        slow(  # 3d ticket on the wrong long window
            (
                "backend-slos",
                "job:slo_errors_per_request:ratio_rate3d > on (job, slo) (1 *",
                "job:slo_errors_per_request:ratio_rate6h > on (job, slo) (1 *",
            )
        ),
        slow(("backend-slos", "for: 3h", "for: 4h")),  # slow-burn ticket too slow
        ("backend-alerts", "> 0.02", "> 0.05"),  # the 5xx ratio ticket too lax
        ("backend-alerts", "for: 15m", "for: 10m"),  # the 5xx ratio ticket fires on a spike
        ("database-alerts", "> 0.05", "> 0.15"),  # slow statements threshold too lax
        ("database-alerts", "for: 2m", "for: 10m"),  # database readiness alert too slow
        ("database-alerts", "              > 0\n", "              > 1e9\n"),  # timeouts ignored
    ],
)
def test_the_alert_unit_tests_catch_a_weakened_rule(
    project_yes: Path, tmp_path: Path, rules_file: str, original: str, mutant: str
) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    rules = shutil.copytree(project_yes / "observability/prometheus/rules", tmp_path / "rules")
    alerts_file = rules / f"{rules_file}.yml"
    text = alerts_file.read_text(encoding="utf-8")
    assert text.count(original) == 1, original
    alerts_file.write_text(text.replace(original, mutant), encoding="utf-8")
    result = run([promtool, "test", "rules", f"{rules_file}.test.yml"], rules / "tests")
    assert result.returncode != 0, f"the unit tests still pass with {mutant!r}"


def test_the_worker_adds_its_alerts_each_with_its_runbook(project_with_worker: Path) -> None:
    observability = project_with_worker / "observability"
    (group,) = load(observability / "prometheus/rules/worker-alerts.yml")["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == WORKER_ALERTS
    readme = (observability / "README.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, re.MULTILINE)
    }
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert (page, anchor in anchors) == ("observability/README.md", True), name
    jobs = load(observability / "prometheus/prometheus.yml")["scrape_configs"]
    (worker,) = [job for job in jobs if job["job_name"] == "worker"]
    assert worker["static_configs"] == [{"targets": ["worker:8001"]}]


def test_alerts_are_the_baseline_ones_with_their_annotations(
    stack: dict[str, Any],
) -> None:
    alerts = {rule["alert"]: rule for rule in stack["rules"] if "alert" in rule}
    assert set(alerts) == ALERTS | SLO_ALERTS | DATABASE_ALERTS  # the defaults have postgres
    readme = (stack["project"] / "observability/README.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, re.MULTILINE)
    }
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "observability/README.md", name
        assert anchor in anchors, f"{name}: no README section for #{anchor}"


def test_the_rules_record_exactly_the_series_the_contract_lists(stack: dict[str, Any]) -> None:
    recorded = {rule["record"] for rule in stack["rules"] if "record" in rule}
    assert recorded == set(re.findall(r"`(job:\w+:\w+)`", contract_section("Prometheus")))


def test_the_latency_threshold_is_a_bucket_of_the_backend_histogram(stack: dict[str, Any]) -> None:
    (threshold,) = [
        rule for rule in stack["rules"] if rule.get("record") == "job:slo_latency_threshold:seconds"
    ]
    value = float(re.fullmatch(r"vector\(([\d.]+)\)", threshold["expr"])[1])  # type: ignore[index]
    assert float(threshold["labels"]["le"]) == value
    metrics = (stack["project"] / "backend/app/observability/metrics.py").read_text()
    buckets = re.search(r"^DURATION_BUCKETS = \(([^)]*)\)", metrics, re.M)
    assert buckets and value in {float(bucket) for bucket in buckets[1].split(",")}
    latency_sli = [
        rule["expr"]
        for rule in stack["rules"]
        if rule.get("record", "").startswith("job:slo_errors_per_request:ratio_rate")
        and rule.get("labels", {}).get("slo") == "latency"
    ]
    assert len(latency_sli) == 7
    assert all("and on (job, le) job:slo_latency_threshold:seconds" in expr for expr in latency_sli)


def test_prometheus_loads_the_rules_but_not_their_unit_tests(
    stack: dict[str, Any],
) -> None:
    prometheus_dir = stack["project"] / "observability/prometheus"
    loaded = {
        path
        for pattern in stack["prometheus"]["rule_files"]
        for path in prometheus_dir.glob(pattern)
    }
    assert prometheus_dir / "rules/backend-alerts.yml" in loaded
    assert not any("tests" in path.parts for path in loaded)


# --- Compose ----------------------------------------------------------------------------


def test_compose_runs_exactly_the_stack_services_with_exact_image_versions(
    stack: dict[str, Any],
) -> None:
    services = stack["compose"]["services"]
    # The database's services come with database=postgres (tests/test_static_tools.py).
    assert set(services) - {"postgres", "migrate"} == {"backend"} | stack["services"]
    for name in stack["services"]:
        image = services[name]["image"]
        assert EXACT_TAG.match(image), f"{name}: {image} is not pinned to an exact version"


def test_only_grafana_and_the_backend_listen_beyond_localhost(stack: dict[str, Any]) -> None:
    services = stack["compose"]["services"]
    assert services["grafana"]["ports"] == ["3000:3000"]
    for mapping in services[stack["collector"]].get("ports", []):
        assert str(mapping).startswith("127.0.0.1:"), f"{stack['collector']} publishes {mapping}"
    for name in ("prometheus", "alertmanager", "loki", "tempo"):
        for mapping in services[name]["ports"]:
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping}"


def test_start_order_and_healthchecks(stack: dict[str, Any]) -> None:
    services = stack["compose"]["services"]
    waits_for = set(services["backend"].get("depends_on", {}))
    assert not waits_for & stack["services"], "the backend must not wait for the stack"
    grafana_needs = services["grafana"]["depends_on"]
    assert set(grafana_needs) == DATASOURCE_UIDS
    for name, condition in grafana_needs.items():
        expected = "service_healthy" if name in IMAGES_WITH_A_PROBE_TOOL else "service_started"
        assert condition["condition"] == expected, name
    for name in stack["services"]:
        assert ("healthcheck" in services[name]) == (name in IMAGES_WITH_A_PROBE_TOOL), name


def test_every_stack_service_keeps_its_data_in_a_named_volume(stack: dict[str, Any]) -> None:
    named = set(stack["compose"]["volumes"])
    for name in stack["services"]:
        sources = {
            str(volume).split(":", 1)[0] for volume in stack["compose"]["services"][name]["volumes"]
        }
        assert sources & named, f"{name} has no named volume"


def test_grafana_settings(stack: dict[str, Any]) -> None:
    environment = stack["compose"]["services"]["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert environment["GF_ANALYTICS_REPORTING_ENABLED"] == "false"
    assert environment["GF_ANALYTICS_CHECK_FOR_UPDATES"] == "false"
    dashboards_mount = next(
        volume.split(":")[1]
        for volume in stack["compose"]["services"]["grafana"]["volumes"]
        if volume.startswith("./observability/grafana/dashboards:")
    )
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_mount}/backend-service.json"


# --- Names one file takes from another -------------------------------------------------


def test_every_scrape_target_is_a_listening_compose_service(stack: dict[str, Any]) -> None:
    assert {job["job_name"] for job in stack["prometheus"]["scrape_configs"]} == {
        "backend",
        *stack["services"],
    }
    assert ("backend", f"backend:{BACKEND_PORT}") in set(scrape_targets(stack["prometheus"]))
    assert unreachable_targets(stack["prometheus"], listening_ports(stack["project"])) == []


def test_prometheus_sends_alerts_to_the_compose_alertmanager(stack: dict[str, Any]) -> None:
    (alertmanagers,) = stack["prometheus"]["alerting"]["alertmanagers"]
    targets = [target for static in alertmanagers["static_configs"] for target in static["targets"]]
    ports = listening_ports(stack["project"])
    assert [host_port(target) for target in targets] == [
        ("alertmanager", port) for port in ports["alertmanager"]
    ]


def test_the_target_check_catches_a_wrong_port(stack: dict[str, Any]) -> None:
    mutant = yaml.safe_load(yaml.safe_dump(stack["prometheus"]))
    mutant["scrape_configs"][0]["static_configs"][0]["targets"] = ["backend:9999"]
    assert unreachable_targets(mutant, listening_ports(stack["project"])) == [
        "backend: backend:9999"
    ]


def test_published_ports_are_ports_the_services_listen_on(stack: dict[str, Any]) -> None:
    ports = listening_ports(stack["project"])
    for name in stack["services"]:
        for mapping in stack["compose"]["services"][name].get("ports", []):
            assert int(str(mapping).rsplit(":", 1)[1]) in ports[name], f"{name}: {mapping}"


def test_datasources_have_fixed_uids_and_reach_listening_services(stack: dict[str, Any]) -> None:
    datasources = stack["datasources"]
    assert set(datasources) == DATASOURCE_UIDS
    ports = listening_ports(stack["project"])
    for uid, source in datasources.items():
        host, port = host_port(source["url"])
        assert host == uid and port in ports[host], f"{uid}: {source['url']}"
        for reference in datasource_references(source.get("jsonData", {})):
            assert reference in datasources, f"{uid} links to a missing datasource {reference!r}"


def test_one_exemplar_label_from_backend_and_tempo_to_grafana(stack: dict[str, Any]) -> None:
    destinations = stack["datasources"]["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations == [{"name": EXEMPLAR_LABEL, "datasourceUid": "tempo"}]
    generator = stack["tempo"]["overrides"]["defaults"]["metrics_generator"]
    assert generator["trace_id_label_name"] == EXEMPLAR_LABEL


def test_loki_derived_field_finds_the_trace_id_in_a_backend_line(stack: dict[str, Any]) -> None:
    (field,) = stack["datasources"]["loki"]["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == "tempo"
    match = re.search(field["matcherRegex"], BACKEND_LOG_LINE)
    assert match and match.group(1) == "0af7651916cd43dd8448eb211c80319c"


def test_traces_link_to_logs_and_metrics_by_service(stack: dict[str, Any]) -> None:
    tempo = stack["datasources"]["tempo"]["jsonData"]
    backend_environment = stack["resolved"]["services"]["backend"]["environment"]
    service_name = backend_environment["OTEL_SERVICE_NAME"]
    assert service_name == "backend", "service.name must be the compose service, i.e. Loki's label"
    assert tempo["tracesToLogsV2"]["filterByTraceID"] is True
    for link in ("tracesToLogsV2", "tracesToMetrics"):
        assert {"key": "service.name", "value": "service"} in tempo[link]["tags"], link
    for query in tempo["tracesToMetrics"]["queries"]:
        assert re.search(
            r"traces_spanmetrics_(calls_total|latency_bucket)\{\$\$__tags", query["query"]
        )
    assert tempo["serviceMap"]["datasourceUid"] == "prometheus"
    assert tempo["nodeGraph"]["enabled"] is True


def test_backend_exports_to_tempo_otlp_grpc_receiver(stack: dict[str, Any]) -> None:
    environment = stack["resolved"]["services"]["backend"]["environment"]
    endpoint = environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
    receivers = stack["tempo"]["distributor"]["receivers"]["otlp"]["protocols"]
    grpc_host, grpc_port = host_port(receivers["grpc"]["endpoint"])
    http_host, _ = host_port(receivers["http"]["endpoint"])
    assert grpc_host == http_host == "0.0.0.0", (
        "receivers must listen beyond the container's loopback"
    )
    assert host_port(endpoint) == ("tempo", grpc_port)


def test_tempo_remote_writes_span_metrics_with_exemplars_into_prometheus(
    stack: dict[str, Any],
) -> None:
    (remote_write,) = stack["tempo"]["metrics_generator"]["storage"]["remote_write"]
    assert remote_write["send_exemplars"] is True
    url = urlsplit(remote_write["url"])
    assert (url.hostname, url.port, url.path) == ("prometheus", 9090, "/api/v1/write")
    flags = stack["compose"]["services"]["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in flags
    assert "--enable-feature=exemplar-storage" in flags
    assert any(flag.startswith("--storage.tsdb.retention.time=") for flag in flags)
    processors = stack["tempo"]["overrides"]["defaults"]["metrics_generator"]["processors"]
    assert set(processors) == {"service-graphs", "span-metrics"}


# --- The log collector: Promtail or Alloy, the same streams in Loki ------------------


def test_the_collector_reads_only_this_project_and_keeps_ids_out_of_labels(
    stack: dict[str, Any],
) -> None:
    assert collector_problems(stack["project"]) == []


def test_both_collectors_make_the_same_streams(render_once: Callable[..., Path]) -> None:
    """The dashboards' LogQL serves both: the same labels, metadata, fields and filter."""
    promtail, alloy = (
        render_once(include_observability="yes", log_collector=collector)
        for collector in LOG_COLLECTORS
    )
    assert log_pipeline(promtail) == log_pipeline(alloy)
    dashboards = "observability/grafana/dashboards"
    assert {path.name: path.read_bytes() for path in (promtail / dashboards).iterdir()} == {
        path.name: path.read_bytes() for path in (alloy / dashboards).iterdir()
    }


# One change at a time, on either side of the Alloy config: each must be caught.
ALLOY_MUTANTS = [
    (
        ALLOY_CONFIG,
        "targets    = discovery.relabel.compose.output",
        "targets    = discovery.docker.compose.targets",
    ),
    (
        ALLOY_CONFIG,
        "forward_to = [loki.process.compose.receiver]",
        "forward_to = [loki.write.loki.receiver]",
    ),
    (ALLOY_CONFIG, '"com.docker.compose.project=', '"com.docker.compose.project=other-'),
    (ALLOY_CONFIG, 'target_label  = "service"', 'target_label  = "compose_service"'),
    (ALLOY_CONFIG, '        request_id = "",\n', '        correlation_id = "",\n'),
    (
        ALLOY_CONFIG,
        "    values = {\n        level",
        '    values = {\n        route = "",\n        level',
    ),
    (ALLOY_CONFIG, "http://loki:3100/loki/api/v1/push", "http://loki:3101/loki/api/v1/push"),
    (ALLOY_CONFIG, 'format = "RFC3339Nano"', 'format = "Unix"'),
    (
        "compose.yml",
        "--server.http.listen-addr=0.0.0.0:12345",
        "--server.http.listen-addr=0.0.0.0:12346",
    ),
    ("observability/prometheus/prometheus.yml", '"alloy:12345"', '"alloy:9080"'),
    ("compose.yml", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}:ro", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}"),
    ("observability/prometheus/prometheus.yml", "job_name: alloy", "job_name: logs"),
    ("compose.yml", "      - --disable-reporting\n", ""),
    ("compose.yml", "--storage.path=/var/lib/alloy/data", "--storage.path=/tmp/alloy"),
]


@pytest.fixture(scope="module")
def project_alloy(render_once: Callable[..., Path]) -> Path:
    return render_once(include_observability="yes", log_collector="alloy")


@pytest.mark.parametrize(("path", "original", "mutant"), ALLOY_MUTANTS)
def test_a_change_on_either_side_of_the_alloy_config_is_caught(
    project_alloy: Path, tmp_path: Path, path: str, original: str, mutant: str
) -> None:
    project = shutil.copytree(project_alloy, tmp_path / "project")
    text = (project / path).read_text()
    assert text.count(original) == 1, original
    (project / path).write_text(text.replace(original, mutant))
    assert collector_problems(project) != []


@pytest.mark.parametrize("collector", COOKIECUTTER_JSON["log_collector"])
def test_the_collector_parses_the_workers_json_lines_too(
    render_once: Callable[..., Path], collector: str
) -> None:
    project = render_once(worker="taskiq", log_collector=collector)
    assert collector_problems(project) == []
    assert log_pipeline(project).json_selector == '{service=~"backend|worker"}'


def test_the_alloy_config_is_well_formed(project_alloy: Path) -> None:
    source = (project_alloy / ALLOY_CONFIG).read_text()
    assert alloy_structure_problems(source) == []
    assert {block.name for block in parse(source)} <= set(ALLOY_EXPORTS)


@pytest.mark.parametrize(
    ("original", "mutant", "expected"),
    [
        ('loki.write "loki" {\n  endpoint {', 'loki.write "loki" {\n  endpoint {{', "syntax"),
        ('url = "http://loki', 'url = "http://loki\\q', "syntax"),
        (
            'loki.process "compose" {',
            'loki.processor "compose" {',
            "unknown component loki.processor",
        ),
        (
            "[loki.write.loki.receiver]",
            "[loki.write.default.receiver]",
            "names no defined component",
        ),
        (
            "discovery.relabel.compose.output",
            "discovery.relabel.compose.targets",
            "exports no 'targets'",
        ),
        ('loki.write "loki" {', "loki.write {", "has no label"),
    ],
    ids=[
        "unbalanced",
        "bad-escape",
        "unknown-component",
        "undefined-reference",
        "unknown-export",
        "no-label",
    ],
)
def test_the_alloy_structure_check_catches_a_broken_config(
    project_alloy: Path, original: str, mutant: str, expected: str
) -> None:
    source = (project_alloy / ALLOY_CONFIG).read_text()
    assert source.count(original) == 1, original
    problems = alloy_structure_problems(source.replace(original, mutant))
    assert any(expected in problem for problem in problems), problems


# --- Configs written for the pinned versions -------------------------------------------


def test_loki_config_is_the_loki_3_single_binary_shape(stack: dict[str, Any]) -> None:
    loki = stack["loki"]
    assert loki["auth_enabled"] is False
    (schema,) = loki["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == (
        "tsdb",
        "v13",
        "filesystem",
    )
    assert loki["limits_config"]["allow_structured_metadata"] is True
    assert loki["limits_config"]["retention_period"]
    compactor = loki["compactor"]
    assert compactor["retention_enabled"] is True
    # Loki 3 refuses retention without a delete request store; `shared_store` is gone.
    assert compactor["delete_request_store"] == "filesystem"
    assert "shared_store" not in compactor
    assert not {"table_manager", "chunk_store_config"} & set(loki)
    assert loki["common"]["path_prefix"] == "/loki", (
        "the loki-data volume and the image's owned dir"
    )


def test_tempo_config_has_no_tempo_2_blocks(stack: dict[str, Any]) -> None:
    tempo = stack["tempo"]
    # Removed by Tempo 3.0 (monolithic migration guide): the process refuses them.
    assert not {"ingester", "ingester_client", "compactor", "metrics_generator_client"} & set(tempo)
    processors = tempo["overrides"]["defaults"]["metrics_generator"]["processors"]
    assert "local-blocks" not in processors
    assert "processors" not in tempo["overrides"], "Tempo 3 reads overrides only under `defaults`"
    assert tempo["storage"]["trace"]["backend"] == "local"
    assert tempo["storage"]["trace"]["local"]["path"].startswith("/var/tempo/")
    assert tempo["metrics_generator"]["storage"]["path"].startswith("/var/tempo/")


def test_mounted_data_dirs_are_the_dirs_each_image_owns(stack: dict[str, Any]) -> None:
    owned_dirs = {  # created and chowned in each image for the user it runs as
        "prometheus": "/prometheus",
        "alertmanager": "/alertmanager",
        "loki": "/loki",
        "tempo": "/var/tempo",
        "grafana": "/var/lib/grafana",
    }
    for name, data_dir in owned_dirs.items():
        targets = {
            str(volume).split(":")[1] for volume in stack["compose"]["services"][name]["volumes"]
        }
        assert data_dir in targets, name


def test_answers_reach_the_stack_configs(render_once: Callable[..., Path]) -> None:
    project = render_once(project_name="Shop API", backend_port="8081", grafana_port="3001")
    prometheus = load(project / "observability/prometheus/prometheus.yml")
    assert ("backend", "backend:8081") in set(scrape_targets(prometheus))
    assert unreachable_targets(prometheus, listening_ports(project)) == []
    compose_file = load(project / "compose.yml")
    assert compose_file["services"]["grafana"]["ports"] == ["3001:3000"]
    assert log_pipeline(project).project_filter == ("com.docker.compose.project=shop-api",)
