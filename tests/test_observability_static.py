"""Static proof of the observability stack: real promtool runs on the rendered files, and
every name one config takes from another checked against the file that owns it.

The ports, labels and field names below come from docs/contract.md; a change there must
change them here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from alloy_syntax import (
    ALLOY_COMPONENTS,
    AlloySyntaxError,
    Block,
    Reference,
    component,
    parse,
    references,
)
from conftest import COOKIECUTTER_JSON, PINNED_BUILD_HINT, require_tool, resolved_compose
from contract import contract_section, loki_labels, structured_metadata_keys

BACKEND_PORT = 8000  # the default answer
LOG_COLLECTORS = COOKIECUTTER_JSON["log_collector"]
CORE_STACK = {"prometheus", "alertmanager", "loki", "tempo", "grafana"}
DATASOURCE_UIDS = {"prometheus", "alertmanager", "loki", "tempo"}
EXEMPLAR_LABEL = "trace_id"
ALERTS = {"BackendTargetMissing", "BackendNotReady", "BackendHighErrorRatio"}
# The multiwindow, multi-burn-rate alerts of backend-slos.yml, named by their long window.
SLO_ALERTS = {f"BackendErrorBudgetBurn{window}" for window in ("1h", "6h", "1d", "3d")}
# database=postgres adds its own file of alerts (database-alerts.yml).
DATABASE_ALERTS = {"DatabasePoolExhausted", "DatabaseNotReady", "DatabaseSlowStatementsSurging"}
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


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def host_port(address: str) -> tuple[str, int]:
    """`host:port` or a URL, as (host, port)."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    assert parts.hostname and parts.port, f"no host:port in {address!r}"
    return parts.hostname, parts.port


def listening_ports(project: Path) -> dict[str, set[int]]:
    """The port(s) each compose service listens on, read from the configs that set them."""
    compose_file = load(project / "compose.yml")
    backend_ports = {
        int(str(mapping).rsplit(":", 1)[1])
        for mapping in compose_file["services"]["backend"]["ports"]
    }
    loki = load(project / "observability/loki/loki.yml")
    tempo = load(project / "observability/tempo/tempo.yml")
    otlp = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    return {
        "backend": backend_ports,
        "prometheus": {9090},  # the image's default --web.listen-address
        "alertmanager": {9093},  # the image's default --web.listen-address
        "loki": {loki["server"]["http_listen_port"]},
        **collector_ports(project, compose_file),
        "tempo": {
            tempo["server"]["http_listen_port"],
            host_port(otlp["grpc"]["endpoint"])[1],
            host_port(otlp["http"]["endpoint"])[1],
        },
        "grafana": {3000},  # the image's default http_port
    }


def scrape_targets(prometheus_config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for job in prometheus_config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                yield job["job_name"], target


def unreachable_targets(prometheus_config: dict[str, Any], ports: dict[str, set[int]]) -> list[str]:
    """Scrape targets that name no compose service, or a port that service does not listen on."""
    wrong = []
    for job, target in scrape_targets(prometheus_config):
        host, port = host_port(target)
        service = "prometheus" if host == "localhost" and job == "prometheus" else host
        if port not in ports.get(service, set()):
            wrong.append(f"{job}: {target}")
    return wrong


def datasource_references(node: Any) -> Iterator[str]:
    """Every `datasourceUid` value anywhere inside a datasource's settings."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid":
                yield value
            else:
                yield from datasource_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_references(item)


def collector_of(compose_file: dict[str, Any]) -> str:
    (collector,) = set(LOG_COLLECTORS) & set(compose_file["services"])
    return collector


def collector_ports(project: Path, compose_file: dict[str, Any]) -> dict[str, set[int]]:
    """The log collector's HTTP port: Promtail's from its config, Alloy's from its flags."""
    collector = collector_of(compose_file)
    if collector == "promtail":
        promtail = load(project / "observability/promtail/promtail.yml")
        return {"promtail": {promtail["server"]["http_listen_port"]}}
    (address,) = [
        flag.split("=", 1)[1]
        for flag in compose_file["services"]["alloy"]["command"]
        if flag.startswith("--server.http.listen-addr=")
    ]
    return {"alloy": {host_port(address)[1]}}


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


def test_promtool_accepts_the_config_and_finds_the_rules(project_yes: Path) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    result = run(
        [promtool, "check", "config", "observability/prometheus/prometheus.yml"], project_yes
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = list((project_yes / "observability/prometheus/rules").glob("*.yml"))
    assert f"{len(rule_files)} rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules(project_yes: Path) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    rule_files = sorted((project_yes / "observability/prometheus/rules").glob("*.yml"))
    assert rule_files
    result = run([promtool, "check", "rules", *map(str, rule_files)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts_pass(project_yes: Path) -> None:
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    rules_dir = project_yes / "observability/prometheus/rules"
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

# What the components config.alloy uses export (their reference pages, Alloy v1.21).
ALLOY_EXPORTS = {
    "discovery.docker": {"targets"},
    "discovery.relabel": {"output", "rules"},
    "loki.source.docker": set(),
    "loki.process": {"receiver"},
    "loki.write": {"receiver"},
}
DOCKER_SOCKET = "/var/run/docker.sock"
ALLOY_CONFIG = "observability/alloy/config.alloy"


@dataclass(frozen=True)
class LogPipeline:
    """What a collector config makes of the containers' logs, in either tool's terms."""

    docker_host: str
    project_filter: tuple[str, ...]
    # Each stream label made by relabelling: (target label, source label, regex or None).
    relabelled: tuple[tuple[str, str, str | None], ...]
    json_selector: str
    json_fields: tuple[tuple[str, str], ...]
    timestamp: tuple[str, str]
    labels: frozenset[str]
    structured_metadata: frozenset[str]
    push_url: str


def promtail_pipeline(config: dict[str, Any]) -> LogPipeline:
    (job,) = config["scrape_configs"]
    (discovery,) = job["docker_sd_configs"]
    (label_filter,) = discovery["filters"]
    assert label_filter["name"] == "label"
    (match,) = [stage["match"] for stage in job["pipeline_stages"]]
    stages = {name: body for stage in match["stages"] for name, body in stage.items()}
    (client,) = config["clients"]
    return LogPipeline(
        docker_host=discovery["host"],
        project_filter=tuple(label_filter["values"]),
        relabelled=tuple(
            (rule["target_label"], *rule["source_labels"], rule.get("regex"))
            for rule in job["relabel_configs"]
        ),
        json_selector=match["selector"],
        json_fields=tuple(sorted(stages["json"]["expressions"].items())),
        timestamp=(stages["timestamp"]["source"], stages["timestamp"]["format"]),
        labels=frozenset(stages["labels"]),
        structured_metadata=frozenset(stages["structured_metadata"]),
        push_url=client["url"],
    )


def alloy_pipeline(blocks: list[Block]) -> LogPipeline:
    discovery = component(blocks, "discovery.docker")
    (label_filter,) = discovery.children("filter")
    assert label_filter.attributes["name"] == "label"
    match = component(blocks, "loki.process").child("stage.match")
    timestamp = match.child("stage.timestamp").attributes
    return LogPipeline(
        docker_host=discovery.attributes["host"],
        project_filter=tuple(label_filter.attributes["values"]),
        relabelled=tuple(
            (
                rule.attributes["target_label"],
                *rule.attributes["source_labels"],
                rule.attributes.get("regex"),
            )
            for rule in component(blocks, "discovery.relabel").children("rule")
        ),
        json_selector=match.attributes["selector"],
        json_fields=tuple(sorted(match.child("stage.json").attributes["expressions"].items())),
        timestamp=(timestamp["source"], timestamp["format"]),
        labels=frozenset(match.child("stage.labels").attributes["values"]),
        structured_metadata=frozenset(
            match.child("stage.structured_metadata").attributes["values"]
        ),
        push_url=component(blocks, "loki.write").child("endpoint").attributes["url"],
    )


def log_pipeline(project: Path) -> LogPipeline:
    if collector_of(load(project / "compose.yml")) == "promtail":
        return promtail_pipeline(load(project / "observability/promtail/promtail.yml"))
    return alloy_pipeline(parse((project / ALLOY_CONFIG).read_text()))


# Alloy's pipeline, in order: each component reads the export of the one before it.
ALLOY_WIRING = [
    ("discovery.relabel", "targets", "discovery.docker", "targets"),
    ("loki.source.docker", "targets", "discovery.relabel", "output"),
    ("loki.source.docker", "forward_to", "loki.process", "receiver"),
    ("loki.process", "forward_to", "loki.write", "receiver"),
]


def alloy_wiring_problems(blocks: list[Block]) -> list[str]:
    problems = []
    for reader, attribute, source, export in ALLOY_WIRING:
        value = component(blocks, reader).attributes.get(attribute)
        label = component(blocks, source).label
        expected = Reference(f"{source}.{label}.{export}")
        if value not in (expected, [expected]):
            problems.append(f"alloy {reader}.{attribute} = {value!r}, expected {expected.path}")
    host = component(blocks, "loki.source.docker").attributes.get("host")
    if host != f"unix://{DOCKER_SOCKET}":
        problems.append(f"alloy loki.source.docker reads {host!r}")
    return problems


def collector_problems(project: Path) -> list[str]:
    """Where the collector disagrees with compose, Loki, Prometheus and docs/contract.md."""
    compose_file = load(project / "compose.yml")
    collector = collector_of(compose_file)
    pipeline = log_pipeline(project)
    loki_port = load(project / "observability/loki/loki.yml")["server"]["http_listen_port"]
    metadata = structured_metadata_keys()
    expected = {
        "docker_host": f"unix://{DOCKER_SOCKET}",
        "project_filter": (f"com.docker.compose.project={compose_file['name']}",),
        "relabelled": (
            ("service", "__meta_docker_container_label_com_docker_compose_service", None),
            ("container", "__meta_docker_container_name", "/(.*)"),
        ),
        "json_selector": '{service="backend"}',
        "json_fields": tuple(sorted((name, name) for name in {"timestamp", "level"} | metadata)),
        "timestamp": ("timestamp", "RFC3339Nano"),
        "labels": frozenset(loki_labels() - {"service", "container"}),
        "structured_metadata": frozenset(metadata),
        "push_url": f"http://loki:{loki_port}/loki/api/v1/push",
    }
    problems = [
        f"{collector} {name}: {getattr(pipeline, name)!r}, expected {value!r}"
        for name, value in expected.items()
        if getattr(pipeline, name) != value
    ]
    if {target for target, *_ in pipeline.relabelled} | pipeline.labels != loki_labels():
        problems.append(f"{collector} makes other stream labels than docs/contract.md lists")
    if pipeline.labels & pipeline.structured_metadata:
        problems.append(f"{collector} makes ids labels")
    service = compose_file["services"][collector]
    if f"{DOCKER_SOCKET}:{DOCKER_SOCKET}:ro" not in service["volumes"]:
        problems.append(f"{collector} does not mount the Docker socket read-only")
    if collector == "alloy":
        problems += alloy_wiring_problems(parse((project / ALLOY_CONFIG).read_text()))
        flags = service["command"]
        if "--disable-reporting" not in flags:
            problems.append("alloy reports usage")
        storage = [flag.split("=", 1)[1] for flag in flags if flag.startswith("--storage.path=")]
        named = {f"{volume}:{path}" for volume in compose_file["volumes"] for path in storage}
        if not storage or not named & set(service["volumes"]):
            problems.append(f"alloy keeps its positions ({storage}) outside a named volume")
    prometheus = load(project / "observability/prometheus/prometheus.yml")
    targets = [target for job, target in scrape_targets(prometheus) if job == collector]
    ports = collector_ports(project, compose_file)[collector]
    if [host_port(target) for target in targets] != [(collector, port) for port in ports]:
        problems.append(f"Prometheus job {collector!r} scrapes {targets}, not {collector}:{ports}")
    return problems


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


def alloy_structure_problems(source: str) -> list[str]:
    """Unknown components, duplicate or missing labels, and references to undefined ones."""
    try:
        blocks = parse(source)
    except AlloySyntaxError as error:
        return [f"syntax: {error}"]
    problems = [
        f"line {block.line}: unknown component {block.name}"
        for block in blocks
        if block.name not in ALLOY_COMPONENTS
    ]
    defined: dict[str, str] = {}
    for block in blocks:
        if block.label is None:
            problems.append(f"line {block.line}: component {block.name} has no label")
        elif f"{block.name}.{block.label}" in defined:
            problems.append(f"line {block.line}: {block.name} {block.label!r} defined twice")
        else:
            defined[f"{block.name}.{block.label}"] = block.name
    for block in blocks:
        for reference in references(block):
            instance, _, export = reference.path.rpartition(".")
            if instance not in defined:
                problems.append(f"line {block.line}: {reference.path} names no defined component")
            elif export not in ALLOY_EXPORTS.get(defined[instance], set()):
                problems.append(f"line {block.line}: {defined[instance]} exports no {export!r}")
    return problems


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
