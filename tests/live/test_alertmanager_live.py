"""Issue 19: an alert the real Prometheus fires reaches a webhook through the rendered
Alertmanager, started by its own start.sh with compose's flags, with its runbook link."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import PINNED_BUILD_HINT, require_tool, resolved_compose

from harness.processes import ManagedProcess, free_port, wait_until

from .prometheus_server import running_prometheus

pytestmark = pytest.mark.slow

# A rule that fires on the data of this test: Prometheus scraping itself.
TEST_RULE = {
    "alert": "LiveTestPrometheusUp",
    "expr": 'up{job="prometheus"} == 1',
    "labels": {"severity": "page"},
    "annotations": {
        "summary": "Prometheus scrapes itself",
        "description": "Fired on purpose by the live test.",
        "runbook": "observability/README.md#runbook-backendtargetmissing",
    },
}


class WebhookReceiver:
    """An HTTP server recording the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        payloads = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                payloads.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    """The rendered start.sh, run with compose's command and environment, listening here."""

    def __init__(self, project: Path, workdir: Path, webhook_url: str) -> None:
        require_tool("alertmanager", PINNED_BUILD_HINT)  # start.sh runs it from PATH
        workdir.mkdir(parents=True)
        service = resolved_compose(project)["services"]["alertmanager"]
        self.address = f"127.0.0.1:{free_port()}"
        self.http = httpx.Client(base_url=f"http://{self.address}", timeout=10)
        self.process = ManagedProcess(
            "alertmanager",
            [
                "sh",
                project / "observability/alertmanager/start.sh",
                *service["command"],
                f"--web.listen-address={self.address}",
            ],
            log_dir=workdir,
            cwd=workdir,
            env={**os.environ, **service["environment"], "ALERT_WEBHOOK_URL": webhook_url},
        )

        def ready() -> bool:
            self.process.assert_running()
            return self.http.get("/-/ready").status_code == 200

        wait_until(ready, 30, "Alertmanager to be ready")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = self.http.post("/api/v2/alerts", json=alerts)
        assert response.status_code == 200, response.text

    def alerts(self) -> list[dict[str, Any]]:
        response = self.http.get("/api/v2/alerts")
        assert response.status_code == 200, response.text
        return list(response.json())

    def stop(self) -> None:
        self.http.close()
        self.process.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alertmanager(
    live_project: Path, receiver: WebhookReceiver, live_workdir: Path
) -> Iterator[Alertmanager]:
    server = Alertmanager(live_project, live_workdir / "alertmanager", receiver.url)
    yield server
    server.stop()


def test_an_alert_prometheus_fires_reaches_the_webhook_with_its_runbook(
    live_project: Path, alertmanager: Alertmanager, receiver: WebhookReceiver, live_workdir: Path
) -> None:
    workdir = live_workdir / "prometheus-alerting"
    workdir.mkdir()
    rule_file = workdir / "live-test-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "live", "rules": [TEST_RULE]}]}))
    with running_prometheus(
        live_project, {}, workdir, alertmanager=alertmanager.address, extra_rule_files=[rule_file]
    ):

        def delivered() -> dict[str, Any] | None:
            return next(
                (
                    payload
                    for payload in receiver.payloads
                    if payload["commonLabels"].get("alertname") == TEST_RULE["alert"]
                ),
                None,
            )

        # The rule is evaluated every 5 s; the page route waits 30 s to gather a group.
        payload = wait_until(delivered, 90, "the alert at the webhook", interval=1)

    assert payload["receiver"] == "page"
    assert payload["status"] == "firing"
    assert payload["groupLabels"] == {"alertname": TEST_RULE["alert"], "job": "prometheus"}
    (alert,) = payload["alerts"]
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"] == TEST_RULE["annotations"]
    assert alert["annotations"]["runbook"] == "observability/README.md#runbook-backendtargetmissing"


def slo_alert(severity: str, slo: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": f"LiveTestBurn{severity.title()}",
            "job": "backend",
            "severity": severity,
            "slo": slo,
        },
        "annotations": {"summary": f"{severity} {slo}"},
    }


def test_a_page_mutes_the_ticket_of_its_own_slo_only(alertmanager: Alertmanager) -> None:
    alertmanager.post_alerts(
        [
            slo_alert("page", "availability"),
            slo_alert("ticket", "availability"),
            slo_alert("ticket", "latency"),
        ]
    )

    def states() -> dict[tuple[str, str], bool] | None:
        found = {
            (alert["labels"]["severity"], alert["labels"]["slo"]): bool(
                alert["status"]["inhibitedBy"]
            )
            for alert in alertmanager.alerts()
            if alert["labels"]["alertname"].startswith("LiveTestBurn")
        }
        return found if len(found) == 3 else None

    assert wait_until(states, 10, "the three alerts in Alertmanager") == {
        ("page", "availability"): False,
        ("ticket", "availability"): True,
        ("ticket", "latency"): False,
    }


def test_without_a_webhook_url_alerts_are_kept_and_no_receiver_sends(
    live_project: Path, live_workdir: Path
) -> None:
    alertmanager = Alertmanager(live_project, live_workdir / "alertmanager-no-url", "")
    try:
        status = alertmanager.http.get("/api/v2/status").json()
        receivers = yaml.safe_load(status["config"]["original"])["receivers"]
        assert [receiver["name"] for receiver in receivers] == ["page", "ticket"]
        integrations = [
            key for receiver in receivers for key in receiver if key.endswith("configs")
        ]
        assert integrations == [], "a receiver would send"
        alertmanager.post_alerts([slo_alert("page", "availability")])
        (kept,) = wait_until(alertmanager.alerts, 10, "the alert to be kept")
        assert kept["receivers"] == [{"name": "page"}]
        assert kept["status"]["state"] == "active"
    finally:
        alertmanager.stop()
