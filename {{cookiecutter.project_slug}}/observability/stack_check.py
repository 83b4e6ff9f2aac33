"""Check a running stack through Grafana's HTTP API: datasources healthy (Alertmanager
answering through Grafana), every dashboard of grafana/dashboards/ provisioned, and
Prometheus, Loki and Tempo each answering a query with backend data{% if cookiecutter.worker == "taskiq" %}; Prometheus scraping
the worker and Loki holding its logs{% endif %}.

Run by `make stack-check` (and CI) after `docker compose up -d --wait`{% if cookiecutter.kubernetes == "yes" %}, and by
`make k8s-check` through port-forwards to the cluster{% endif %}. Standard library
only, so it runs on any Python without installing anything.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Compose publishes both on these ports; GRAFANA_URL and BACKEND_URL name others (a port-forward).
GRAFANA = os.environ.get("GRAFANA_URL", "http://127.0.0.1:{{ cookiecutter.grafana_port }}")
BACKEND = os.environ.get("BACKEND_URL", "http://127.0.0.1:{{ cookiecutter.backend_port }}")
DATASOURCE_UIDS = ("prometheus", "loki", "tempo")
DASHBOARDS = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATA_TIMEOUT_SECONDS = 180
QUERIES = {
    "Prometheus": {
        "datasource": {"uid": "prometheus"},
        "expr": 'sum(http_requests_total{job="backend"})',
        "instant": True,
    },
    "Loki": {
        "datasource": {"uid": "loki"},
        "expr": '{service="backend"} | json',
        "queryType": "range",
        "maxLines": 20,
    },
    "Tempo": {
        "datasource": {"uid": "tempo"},
        "queryType": "traceql",
        "query": '{resource.service.name="backend"}',
        "limit": 20,
    },
{%- if cookiecutter.worker == "taskiq" %}
    "Prometheus (worker)": {
        "datasource": {"uid": "prometheus"},
        "expr": 'up{job="worker"} == 1',
        "instant": True,
    },
    "Loki (worker)": {
        "datasource": {"uid": "loki"},
        "expr": '{service="worker"} | json',
        "queryType": "range",
        "maxLines": 20,
    },
{%- endif %}
}


def admin_credentials(env_file: Path) -> str:
    settings = dict(
        line.split("=", 1)
        for line in env_file.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    pair = f"{settings['GRAFANA_ADMIN_USER']}:{settings['GRAFANA_ADMIN_PASSWORD']}"
    return base64.b64encode(pair.encode()).decode()


def call(url: str, credentials: str | None = None, body: Any = None) -> Any:
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    if credentials:
        request.add_header("Authorization", f"Basic {credentials}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
        request.data = json.dumps(body).encode()
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response) if response.status != 204 else None


def frames_with_values(result: dict[str, Any]) -> int:
    if "error" in result:
        raise RuntimeError(result["error"])
    return sum(
        1
        for frame in result.get("frames", [])
        if any(values for values in frame.get("data", {}).get("values", []))
    )


def main() -> int:
    credentials = admin_credentials(Path(__file__).resolve().parent.parent / ".env")
    failures = []

    for uid in DATASOURCE_UIDS:
        health = call(f"{GRAFANA}/api/datasources/uid/{uid}/health", credentials)
        if health.get("status") != "OK":
            failures.append(f"datasource {uid}: {health}")
    # Grafana's Alertmanager datasource has no health check (no backend plugin): its proxy
    # must reach Alertmanager's API.
    alertmanager_api = f"{GRAFANA}/api/datasources/proxy/uid/alertmanager/api/v2"
    try:
        call(f"{alertmanager_api}/status", credentials)
    except urllib.error.URLError as error:
        failures.append(f"datasource alertmanager: {error}")
    for path in sorted(DASHBOARDS.glob("*.json")):
        expected = json.loads(path.read_text(encoding="utf-8"))
        try:
            found = call(f"{GRAFANA}/api/dashboards/uid/{expected['uid']}", credentials)
        except urllib.error.HTTPError as error:
            failures.append(
                f"dashboard {expected['uid']}: not provisioned ({error.code})"
            )
            continue
        if found["dashboard"]["title"] != expected["title"]:
            failures.append(
                f"dashboard {expected['uid']}: {found['dashboard']['title']!r}"
            )

    for _ in range(20):  # traffic for every signal: metrics, logs, traces
        call(f"{BACKEND}/api/v1/items")
    deadline = time.monotonic() + DATA_TIMEOUT_SECONDS
    waiting = dict(QUERIES)
    errors: dict[str, str] = {}
    while waiting and time.monotonic() < deadline:
        for name, query in list(waiting.items()):
            body = {
                "queries": [{"refId": "A", **query}],
                "from": "now-15m",
                "to": "now",
            }
            try:
                result = call(f"{GRAFANA}/api/ds/query", credentials, body)["results"][
                    "A"
                ]
                if frames_with_values(result):
                    del waiting[name]
                    print(f"ok: {name} returns data through Grafana")
            except (urllib.error.URLError, RuntimeError, KeyError) as error:
                errors[name] = repr(error)
        if waiting:
            time.sleep(3)
    failures += [
        f"{name}: no data ({errors.get(name, 'empty result')})" for name in waiting
    ]

    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
