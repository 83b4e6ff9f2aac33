"""Every pinned image, action and tool version has its row of evidence in docs/versions.md,
each row is pinned somewhere, and uv is one version everywhere."""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from conftest import (
    CHOICE_COMBINATIONS,
    PINNED_BUILD_HINT,
    TEMPLATE_DIR,
    UNDER_CI,
    require_tool,
)
from kubernetes_checks import (
    K8S_SCRIPT,
    applied_objects,
    kind_node_image,
    pod_specs,
    tool_versions,
    upstream_charts,
)

VERSIONS_DOC = TEMPLATE_DIR / "docs" / "versions.md"
# A row's first cell: `pin`, for an action `owner/name@sha` (vX.Y.Z).
ROW = re.compile(r"^\| `(?P<pin>[^`]+)`(?: \((?P<tag>v[\d.]+)\))? \|", re.MULTILINE)
ACTION = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40})  # (?P<tag>v[\d.]+)$")
EXACT_TAG = re.compile(r":v?\d+\.\d+\.\d+(-[a-z0-9]+)*(@sha256:[0-9a-f]{64})?$")
# PostgreSQL numbers its releases major.minor: 18.6 is one exact release.
EXACT_POSTGRES_TAG = re.compile(
    r"^(postgres|ghcr\.io/cloudnative-pg/postgresql):\d+\.\d+(-[a-z0-9]+)*$"
)


def evidence_rows() -> dict[str, str | None]:
    return {match["pin"]: match["tag"] for match in ROW.finditer(VERSIONS_DOC.read_text())}


def compose_images(project: Path) -> Iterator[str]:
    compose = yaml.safe_load((project / "compose.yml").read_text())
    for service in compose["services"].values():
        if "build" not in service:  # the backend's image is built here, not pulled
            yield service["image"]


def dockerfile_images(dockerfile: Path) -> Iterator[str]:
    stages: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if match := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            if match[1] not in stages:
                yield match[1]
            if match[2]:
                stages.add(match[2])
        for source in re.findall(r"--from=(\S+)", line):
            if source not in stages:
                yield source


def workflow_service_images(workflow: Path) -> Iterator[str]:
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    for job in jobs.values():
        for service in job.get("services", {}).values():
            yield service["image"]


def workflow_actions(workflow: Path) -> Iterator[str]:
    for line in workflow.read_text().splitlines():
        if match := re.match(r"\s*-?\s*uses:\s*(.+)$", line):
            yield match[1].strip()


def uv_pins(project: Path) -> Iterator[str]:
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    yield f"uv=={workflow['env']['UV_VERSION']}"


def kubernetes_pins(project: Path) -> dict[str, set[str]]:
    """The images, charts and tools of deploy/kubernetes (kubernetes=yes)."""
    if not (project / K8S_SCRIPT).exists():
        return {"images": set(), "tools": set()}
    applied = applied_objects(project)
    return {
        "images": {
            kind_node_image(project),
            *(item["spec"]["imageName"] for item in applied if item["kind"] == "Cluster"),
            *(
                container["image"]
                for _, pod in pod_specs(applied)
                for container in pod["containers"]
            ),
        },
        "tools": {
            *(f"{chart['chart']} {chart['version']}" for chart in upstream_charts(project)),
            *(f"{tool} {version}" for tool, version in tool_versions(project).items()),
        },
    }


def pins_of(project: Path) -> dict[str, set[str]]:
    kubernetes = kubernetes_pins(project)
    return {
        "images": {
            *compose_images(project),
            *dockerfile_images(project / "backend/Dockerfile"),
            *workflow_service_images(project / ".github/workflows/ci.yml"),
            *kubernetes["images"],
        },
        "actions": set(workflow_actions(project / ".github/workflows/ci.yml")),
        "tools": set(uv_pins(project)) | kubernetes["tools"],
    }


def template_pins() -> dict[str, set[str]]:
    makefile = (TEMPLATE_DIR / "Makefile").read_text()
    (bootstrap_uv,) = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    (helm3,) = re.findall(
        r"^helm3_version=(v[\d.]+)$", (TEMPLATE_DIR / ".ci/run").read_text(), re.M
    )
    return {
        "images": set(),
        "actions": set(workflow_actions(TEMPLATE_DIR / ".github/workflows/ci.yml")),
        "tools": {f"uv=={bootstrap_uv}", f"helm {helm3}"},
    }


@pytest.fixture(scope="module")
def every_pin(render_once: Callable[..., Path]) -> dict[str, set[str]]:
    """The pins of every rendering (each combination of choices) and of this repository."""
    pins = template_pins()
    for answers in CHOICE_COMBINATIONS:
        for kind, found in pins_of(render_once(**answers)).items():
            pins[kind] |= found
    return pins


def test_every_pin_has_its_row_of_evidence(every_pin: dict[str, set[str]]) -> None:
    rows = evidence_rows()
    missing = sorted(pin for pin in every_pin["images"] | every_pin["tools"] if pin not in rows)
    for action in every_pin["actions"]:
        match = ACTION.match(action)
        assert match, f"{action}: not pinned as owner/name@<40-hex sha>  # vX.Y.Z"
        pin = f"{match['action']}@{match['sha']}"
        if rows.get(pin, "absent") != match["tag"]:
            missing.append(f"{pin} ({match['tag']})")
    assert not missing, f"pins without a row in docs/versions.md: {missing}"


def test_every_row_of_evidence_is_pinned_somewhere(every_pin: dict[str, set[str]]) -> None:
    pinned = every_pin["images"] | every_pin["tools"]
    pinned |= {action.split("  #")[0] for action in every_pin["actions"]}
    assert sorted(set(evidence_rows()) - pinned) == []


def test_images_are_pinned_to_an_exact_release(every_pin: dict[str, set[str]]) -> None:
    for image in every_pin["images"]:
        postgres = image.startswith(("postgres:", "ghcr.io/cloudnative-pg/postgresql:"))
        exact = EXACT_POSTGRES_TAG if postgres else EXACT_TAG
        assert exact.search(image), f"{image} is not pinned to an exact version"


def test_the_evidence_check_sees_a_pin_that_has_no_row(tmp_path: Path) -> None:
    """What the checks above rely on: a pin that is not in the table is found and missing."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM example/tool:1.2.3 AS tool\nFROM python:3.99.0-slim\n")
    dockerfile.write_text(dockerfile.read_text() + "COPY --from=tool /x /x\n")
    found = set(dockerfile_images(dockerfile))
    assert found == {"example/tool:1.2.3", "python:3.99.0-slim"}
    assert found.isdisjoint(evidence_rows())


def test_ci_tests_against_the_database_image_compose_runs(project: Path) -> None:
    compose = yaml.safe_load((project / "compose.yml").read_text())["services"]
    ci_images = set(workflow_service_images(project / ".github/workflows/ci.yml"))
    assert ci_images == ({compose["postgres"]["image"]} if "postgres" in compose else set())


def test_uv_is_one_version_everywhere(project: Path) -> None:
    """The image the backend is built with, the rendered CI's uv, this repository's bootstrap
    and the uv of its test group: one version, bumped together."""
    (uv_image,) = (i for i in dockerfile_images(project / "backend/Dockerfile") if "/uv:" in i)
    test_group = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text())["dependency-groups"]
    (test_uv,) = (pin for pin in test_group["test"] if pin.startswith("uv=="))
    versions = {
        "backend/Dockerfile": uv_image.rsplit(":", 1)[1],
        "rendered CI": next(uv_pins(project)).removeprefix("uv=="),
        "Makefile": next(
            pin.removeprefix("uv==") for pin in template_pins()["tools"] if pin.startswith("uv==")
        ),
        "pyproject.toml test group": test_uv.removeprefix("uv=="),
    }
    assert len(set(versions.values())) == 1, versions


def test_observability_readme_lists_the_stack_images_as_compose_pins_them(
    project_yes: Path,
) -> None:
    readme = (project_yes / "observability/README.md").read_text()
    listed = set(re.findall(r"^\| `[\w-]+` \| `([^`]+)` \|", readme, re.MULTILINE))
    compose = yaml.safe_load((project_yes / "compose.yml").read_text())["services"]
    stack = {"prometheus", "alertmanager", "loki", "tempo", "grafana"}
    stack |= {"promtail", "alloy"} & set(compose)
    assert listed == {compose[name]["image"] for name in stack}
    versions_section = readme.split("## Versions", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([^`]+)` \|", versions_section, re.MULTILINE)) == listed


@pytest.mark.parametrize(
    ("tool", "service"),
    [
        ("promtool", "prometheus"),
        ("prometheus", "prometheus"),
        ("amtool", "alertmanager"),
        ("alertmanager", "alertmanager"),
    ],
)
def test_the_tests_run_the_compose_pins(project_yes: Path, tool: str, service: str) -> None:
    """Rules, configs and live checks are proven with the release compose runs, not an older
    one that accepts other spellings (Debian's Prometheus is 2.x, its Alertmanager 0.25)."""
    compose = yaml.safe_load((project_yes / "compose.yml").read_text())["services"]
    pinned = compose[service]["image"].rsplit(":v", 1)[1]
    binary = require_tool(tool, PINNED_BUILD_HINT)
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"version (\S+) ", result.stdout + result.stderr)
    if found is None or found.group(1) != pinned:
        message = f"{binary} is {found and found.group(1)}, compose pins {pinned}"
        if UNDER_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
