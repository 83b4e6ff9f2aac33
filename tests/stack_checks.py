"""Checkers of the rendered stack's configs, shared by the tests: the ports each compose
service listens on, the scrape targets, the datasources' links, and what each log collector
makes of the containers' logs (Promtail and Alloy alike), each returning what is wrong.

The ports, labels and field names they expect come from docs/contract.md.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
from conftest import COOKIECUTTER_JSON, env_values
from contract import loki_labels, structured_metadata_keys

LOG_COLLECTORS = COOKIECUTTER_JSON["log_collector"]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# `${NAME:?...}` in compose.yml: compose refuses to start without NAME; and how the rendered
# CI fills one in .env: `sed -i "s/^NAME=$/NAME=$(openssl rand ...)/" .env`.
REQUIRED_BY_COMPOSE = re.compile(r"\$\{(\w+):\?")
FILLED_BY_CI = re.compile(r'sed -i "s/\^(\w+)=\$/')


def unfilled_ci_variables(project: Path) -> list[str]:
    """Each variable that compose requires (or k8s.py reads, for a job that runs it) and
    .env.example leaves empty, which a CI step writing .env from it does not fill."""
    example = env_values((project / ".env.example").read_text())
    required = set(REQUIRED_BY_COMPOSE.findall((project / "compose.yml").read_text()))
    empty = {name for name in required if not example.get(name)}
    k8s_script = project / "deploy/kubernetes/k8s.py"
    k8s_text = k8s_script.read_text() if k8s_script.exists() else ""
    k8s_reads = {name for name in empty if f'"{name}"' in k8s_text}
    problems = []
    for job_name, job in load(project / ".github/workflows/ci.yml")["jobs"].items():
        for step in job["steps"]:
            script = step.get("run", "")
            if "cp .env.example .env" not in script:
                continue
            needed = k8s_reads if "make k8s-up" in script else empty
            missing = needed - set(FILLED_BY_CI.findall(script))
            problems += [f"{job_name}: {name} is left empty" for name in sorted(missing)]
    return problems


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


def json_selector(compose_file: dict[str, Any]) -> str:
    """The stream selector of the lines to parse as JSON: the services that run the
    backend's code (the worker's too, worker=taskiq)."""
    services = [name for name in ("backend", "worker") if name in compose_file["services"]]
    if services == ["backend"]:
        return '{service="backend"}'
    return '{service=~"' + "|".join(services) + '"}'


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
        "json_selector": json_selector(compose_file),
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
