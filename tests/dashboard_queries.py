"""Every query of a Grafana dashboard, with its variables replaced by concrete values,
ready to parse or to run against a real Prometheus, Loki or Tempo.

The dashboard's own variables take their saved value (`current`; "All" gives the
variable's `allValue`); Grafana's built-in interval variables take the values below.
A query naming any other variable is an error, so an undefined variable cannot hide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path("observability/grafana/dashboards")
# Every dashboard a rendered project provisions, named by its uid (database=postgres adds
# `database`); the dashboard tests, static and live, run on each.
DASHBOARD_UIDS = ["backend-service", "database", "slo", "log-explorer", "trace-explorer"]
DASHBOARDS = [DASHBOARDS_DIR / f"{uid}.json" for uid in DASHBOARD_UIDS]
# worker=taskiq adds the Worker dashboard; its live proof runs with a worker
# (tests/live/test_worker_live.py).
WORKER_DASHBOARD = DASHBOARDS_DIR / "worker.json"
# Grafana's built-in variables, as a short time range would set them.
BUILTIN_VALUES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__auto": "1m",
    "__range": "1h",
}
LANGUAGE_BY_DATASOURCE = {"prometheus": "promql", "loki": "logql", "tempo": "traceql"}
# $name, ${name}, ${name:format} and the deprecated [[name]].
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\s*\)$", re.DOTALL)


@dataclass(frozen=True)
class Query:
    source: str  # panel title, or "variable <name>"
    ref_id: str
    datasource_type: str
    datasource_uid: str
    language: str  # promql, logql or traceql
    template: str  # as written in the dashboard
    expr: str  # with every variable replaced
    exemplar: bool = False
    instant: bool = False


def substitute(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"undefined variable ${name} in {template!r}")
        return values[name]

    return VARIABLE.sub(replace, template)


def variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    values = dict(BUILTIN_VALUES)
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else "|".join(current)
        if current == "$__all":
            current = variable["allValue"]
        values[variable["name"]] = current
    return values


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows (collapsed rows keep theirs)."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") != "row":
            yield panel
        yield from panel.get("panels", [])


# What Grafana's Tempo datasource asks Prometheus for a service map: each of these series with
# the target's selector, summed by client and server.
SERVICE_MAP_SERIES = (
    "traces_service_graph_request_total",
    "traces_service_graph_request_failed_total",
    "traces_service_graph_request_server_seconds_sum",
    "traces_service_graph_request_server_seconds_bucket",
)


def _service_map_queries(
    panel: dict[str, Any], target: dict[str, Any], values: dict[str, str]
) -> list[Query]:
    selectors = target.get("serviceMapQuery") or ["{}"]
    if isinstance(selectors, str):
        selectors = [selectors]
    return [
        Query(
            source=panel["title"],
            ref_id=target["refId"],
            datasource_type="prometheus",
            datasource_uid=(target.get("datasource") or panel["datasource"])["uid"],
            language="promql",
            template=selector,
            expr=f"sum by (client, server) (rate({series}{substitute(selector, values)}[1h]))",
        )
        for selector in selectors
        for series in SERVICE_MAP_SERIES
    ]


def _target_queries(
    panel: dict[str, Any], target: dict[str, Any], values: dict[str, str]
) -> list[Query]:
    if target.get("queryType") == "serviceMap":
        return _service_map_queries(panel, target, values)
    return [_target_query(panel, target, values)]


def _target_query(panel: dict[str, Any], target: dict[str, Any], values: dict[str, str]) -> Query:
    datasource = target.get("datasource") or panel["datasource"]
    language = LANGUAGE_BY_DATASOURCE[datasource["type"]]
    template = target["query"] if language == "traceql" else target["expr"]
    return Query(
        source=panel["title"],
        ref_id=target["refId"],
        datasource_type=datasource["type"],
        datasource_uid=datasource["uid"],
        language=language,
        template=template,
        expr=substitute(template, values),
        exemplar=bool(target.get("exemplar", False)),
        instant=bool(target.get("instant", False)),
    )


def _variable_query(variable: dict[str, Any], values: dict[str, str]) -> Query:
    """A `label_values(selector, label)` variable as the selector it asks Prometheus about."""
    query = variable["query"]
    template = query["query"] if isinstance(query, dict) else query
    match = LABEL_VALUES.match(template.strip())
    if match is None:
        raise ValueError(f"variable {variable['name']}: not label_values(selector, label)")
    datasource = variable["datasource"]
    return Query(
        source=f"variable {variable['name']}",
        ref_id=match["label"],
        datasource_type=datasource["type"],
        datasource_uid=datasource["uid"],
        language=LANGUAGE_BY_DATASOURCE[datasource["type"]],
        template=template,
        expr=substitute(match["selector"].strip(), values),
        instant=True,
    )


def dashboard_queries(path: Path) -> list[Query]:
    """The queries of the panels and of the query variables of the dashboard at `path`.

    A variable query's `ref_id` is the label whose values it lists; a Tempo service map is
    the PromQL Grafana sends for it.
    """
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    values = variable_values(dashboard)
    queries = [
        query
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        for query in _target_queries(panel, target, values)
    ]
    queries += [
        _variable_query(variable, values)
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable["type"] == "query"
    ]
    return queries
