"""Static proof of the alert routing: the pinned amtool on the rendered Alertmanager config,
its start script run for real, and every label the routes use checked against the rules.

The live delivery of an alert is in tests/live/test_alertmanager_live.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import PINNED_BUILD_HINT, env_keys, require_tool, resolved_compose
from stack_checks import load

ALERTMANAGER_DIR = Path("observability/alertmanager")
RULES_DIR = Path("observability/prometheus/rules")
SEVERITIES = {"page", "ticket"}
# The annotations a notification shows: what fires, why, and what to do.
NOTIFIED_ANNOTATIONS = ("summary", "description", "runbook")
# Commented example lines start with a lower-case key, a list dash or deeper indentation;
# the prose comments start with a capital letter.
COMMENTED_EXAMPLE = re.compile(r"^( *)# (?=[a-z_]+:|- | )", re.MULTILINE)


def amtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("amtool", PINNED_BUILD_HINT)
    return subprocess.run(
        [binary, *map(str, arguments)], capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules(project: Path) -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((project / RULES_DIR).glob("*.yml"))
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def expected_alert_labels(project: Path) -> list[dict[str, str]]:
    """The full label sets the promtool unit tests expect on firing alerts."""
    return [
        {"alertname": case["alertname"], **alert["exp_labels"]}
        for path in sorted((project / RULES_DIR / "tests").glob("*.test.yml"))
        for test in load(path)["tests"]
        for case in test.get("alert_rule_test", [])
        for alert in case.get("exp_alerts", [])
    ]


def receiver_for(config: Path, labels: dict[str, str]) -> str:
    pairs = [f"{name}={value}" for name, value in labels.items()]
    result = amtool("config", "routes", "test", f"--config.file={config}", *pairs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def config_path(project_yes: Path) -> Path:
    return project_yes / ALERTMANAGER_DIR / "alertmanager.yml"


def test_amtool_accepts_the_config(config_path: Path) -> None:
    result = amtool("check-config", config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_commented_examples_are_valid_when_uncommented(
    config_path: Path, tmp_path: Path
) -> None:
    source = config_path.read_text(encoding="utf-8")
    uncommented = COMMENTED_EXAMPLE.sub(r"\1", source)
    examples = tmp_path / "alertmanager.yml"
    examples.write_text(uncommented, encoding="utf-8")
    result = amtool("check-config", examples)
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {receiver["name"]: receiver for receiver in load(examples)["receivers"]}
    integrations = {key for receiver in receivers.values() for key in receiver if key != "name"}
    assert integrations == {
        "webhook_configs", "pagerduty_configs", "slack_configs", "email_configs",
    }  # fmt: skip
    # Each example shows what fires, why and the runbook.
    for receiver in receivers.values():
        for key, configs in receiver.items():
            if key in {"name", "webhook_configs"}:
                continue
            text = yaml.safe_dump(configs)
            for annotation in NOTIFIED_ANNOTATIONS:
                assert f"Annotations.{annotation}" in text, f"{key} leaves out {annotation}"


@pytest.mark.parametrize(
    ("severity", "receiver"), [("page", "page"), ("ticket", "ticket"), ("info", "ticket")]
)
def test_each_severity_reaches_its_receiver(
    config_path: Path, severity: str, receiver: str
) -> None:
    labels = {"alertname": "BackendNotReady", "job": "backend", "severity": severity}
    assert receiver_for(config_path, labels) == receiver


def test_every_alert_has_a_routed_severity_and_the_notified_annotations(
    project_yes: Path, config_path: Path
) -> None:
    rules = alert_rules(project_yes)
    assert {rule["labels"]["severity"] for rule in rules} == SEVERITIES
    routed = {
        matcher for route in load(config_path)["route"]["routes"] for matcher in route["matchers"]
    }
    assert routed == {f'severity="{severity}"' for severity in SEVERITIES}
    for rule in rules:
        assert set(NOTIFIED_ANNOTATIONS) <= set(rule["annotations"]), rule["alert"]


def test_alerts_carry_the_labels_they_are_grouped_and_inhibited_by(
    project_yes: Path, config_path: Path
) -> None:
    config = load(config_path)
    group_by = set(config["route"]["group_by"])
    assert group_by == {"alertname", "job"}  # the alert and the service (its scrape job)
    fired = expected_alert_labels(project_yes)
    assert {labels["alertname"] for labels in fired} == {
        rule["alert"] for rule in alert_rules(project_yes)
    }, "an alert has no promtool case that fires it"
    for labels in fired:
        assert group_by <= set(labels), labels
    (inhibit,) = config["inhibit_rules"]
    slo_alerts = [labels for labels in fired if "slo" in labels]
    assert {labels["severity"] for labels in slo_alerts} == SEVERITIES
    for labels in slo_alerts:
        assert set(inhibit["equal"]) <= set(labels), labels
    assert inhibit["equal"] == ["job", "slo"]
    assert inhibit["source_matchers"] == ['severity="page"', 'slo=~".+"']
    assert inhibit["target_matchers"] == ['severity="ticket"', 'slo=~".+"']


# --- start.sh, run for real with a stand-in for the alertmanager binary ------------------


def run_start_script(
    project: Path, workdir: Path, webhook_url: str
) -> subprocess.CompletedProcess[str]:
    """start.sh in `workdir` as compose runs it, with an `alertmanager` that prints its
    arguments; returns the finished run."""
    stand_in = workdir / "bin" / "alertmanager"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    environment = {
        **os.environ,
        "PATH": f"{stand_in.parent}{os.pathsep}{os.environ['PATH']}",
        "ALERT_WEBHOOK_URL": webhook_url,
    }
    return subprocess.run(
        ["sh", str(project / ALERTMANAGER_DIR / "start.sh"), "--cluster.listen-address="],
        cwd=workdir, env=environment, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_with_a_webhook_url_both_receivers_post_to_it(
    project_yes: Path, config_path: Path, tmp_path: Path
) -> None:
    url = "https://hooks.example.com/alerts?token=a&b=c"
    result = run_start_script(project_yes, tmp_path, url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "--config.file=alertmanager.yml", "--storage.path=.", "--cluster.listen-address=",
    ]  # fmt: skip
    assert (tmp_path / "webhook-url").read_text(encoding="utf-8").strip() == url
    started = load(tmp_path / "alertmanager.yml")
    assert started == load(config_path)
    for receiver in started["receivers"]:
        assert receiver["webhook_configs"] == [{"url_file": "webhook-url"}], receiver["name"]
    assert amtool("check-config", tmp_path / "alertmanager.yml").returncode == 0


def test_without_a_webhook_url_nothing_is_sent(
    project_yes: Path, config_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "webhook-url").write_text("https://left.over.example.com\n", encoding="utf-8")
    result = run_start_script(project_yes, tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "webhook-url").exists()
    started = load(tmp_path / "alertmanager.yml")
    assert [receiver for receiver in started["receivers"]] == [
        {"name": receiver["name"]} for receiver in load(config_path)["receivers"]
    ], "a receiver still has an integration"
    original = load(config_path)
    assert {key: started[key] for key in ("route", "inhibit_rules")} == {
        key: original[key] for key in ("route", "inhibit_rules")
    }
    check = amtool("check-config", tmp_path / "alertmanager.yml")
    assert check.returncode == 0, check.stdout + check.stderr


# --- Compose and the other files that name it --------------------------------------------


def test_compose_runs_start_sh_from_the_mounted_folder_with_the_env_url(
    project_yes: Path,
) -> None:
    service = resolved_compose(project_yes)["services"]["alertmanager"]
    (mount,) = [volume for volume in service["volumes"] if volume["type"] == "bind"]
    assert Path(mount["source"]) == (project_yes / ALERTMANAGER_DIR).resolve()
    assert mount["read_only"] is True
    assert service["entrypoint"] == ["/bin/sh", f"{mount['target']}/start.sh"]
    (data,) = [volume for volume in service["volumes"] if volume["type"] == "volume"]
    # start.sh writes into its working directory: the image's data folder, kept in a volume.
    assert data["target"] == "/alertmanager"
    assert service["environment"] == {"ALERT_WEBHOOK_URL": ""}
    assert "--cluster.listen-address=" in service["command"]
    env_example = (project_yes / ".env.example").read_text(encoding="utf-8")
    assert "ALERT_WEBHOOK_URL" in env_keys(env_example)
    assert re.search(r"^ALERT_WEBHOOK_URL=$", env_example, re.MULTILINE)


def test_nothing_of_alertmanager_without_observability(project_no: Path) -> None:
    assert not (project_no / "observability").exists()
    for path in (project_no / "compose.yml", project_no / ".env.example", project_no / "README.md"):
        assert "alertmanager" not in path.read_text(encoding="utf-8").lower(), path
        assert "ALERT_WEBHOOK_URL" not in path.read_text(encoding="utf-8"), path


# --- Kubernetes: kube-prometheus-stack's Alertmanager gets the same configuration --------


@pytest.fixture(scope="module")
def k8s_script(render_once: Callable[..., Path]) -> ModuleType:
    """deploy/kubernetes/k8s.py of a kubernetes=yes render, imported (standard library only)."""
    path = render_once(kubernetes="yes") / "deploy/kubernetes/k8s.py"
    spec = importlib.util.spec_from_file_location("k8s_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while they are made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_cluster_gets_compose_s_routing_with_the_url_in_place_of_its_file(
    k8s_script: ModuleType, tmp_path: Path
) -> None:
    url = "https://hooks.example.com/alerts?token=a&b=c"
    config = tmp_path / "alertmanager.yaml"
    config.write_text(k8s_script.alertmanager_config(url), encoding="utf-8")
    assert amtool("check-config", config).returncode == 0
    compose = load(k8s_script.ALERTMANAGER_CONFIG)
    cluster = load(config)
    assert {key: cluster[key] for key in ("route", "inhibit_rules")} == {
        key: compose[key] for key in ("route", "inhibit_rules")
    }
    assert [receiver["webhook_configs"] for receiver in cluster["receivers"]] == [
        [{"url": url}] for _ in compose["receivers"]
    ]


def test_without_a_url_the_cluster_config_is_what_start_sh_starts_with(
    k8s_script: ModuleType, tmp_path: Path
) -> None:
    project = k8s_script.PROJECT_DIR
    result = run_start_script(project, tmp_path, "")
    assert result.returncode == 0, result.stderr
    started = (tmp_path / "alertmanager.yml").read_text(encoding="utf-8")
    assert k8s_script.alertmanager_config("") == started
    assert "webhook_configs" not in started
