"""What the Kubernetes tests share: the renders with kubernetes=yes, the chart's synced copy,
`helm template` and the checks of the objects it renders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from conftest import COOKIECUTTER_JSON, DATABASE_AND_OBSERVABILITY, WITH_WORKER

DEPLOY = Path("deploy/kubernetes")
CHART = DEPLOY / "chart"
K8S_SCRIPT = DEPLOY / "k8s.py"
RELEASE = "my-service"  # the default project_slug: the release and its namespace
# Every rendering with different Kubernetes files: each database/observability combination,
# the worker's two, and the other log collector (the cluster collects with Alloy either way).
KUBERNETES_VARIANTS = [
    *({"kubernetes": "yes", **answers} for answers in DATABASE_AND_OBSERVABILITY),
    *({"kubernetes": "yes", **answers} for answers in WITH_WORKER),
    {"kubernetes": "yes", "log_collector": COOKIECUTTER_JSON["log_collector"][1]},
]
# The paths the chart's probes ask, in the order startup, liveness, readiness.
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
# What k8s.py pins: the kind node image, each tool's version in TOOLS, and each
# UpstreamChart(release, chart, repository, version, namespace, values file).
KIND_NODE_IMAGE = re.compile(r'^KIND_NODE_IMAGE = "(?P<image>[^"]+)"$', re.MULTILINE)
K8S_TOOL = re.compile(r'^    "(?P<tool>kind|helm|kubectl)": "(?P<version>v[\d.]+), ', re.MULTILINE)
UPSTREAM_CHART = re.compile(
    r'UpstreamChart\(\s*"[\w-]+",\s*"(?P<chart>[\w-]+)",\s*"[^"]+",\s*"(?P<version>[^"]+)",'
    r'\s*"[\w-]+",\s*"(?P<values>[\w.-]+)"'
)


def kind_node_image(project: Path) -> str:
    (match,) = KIND_NODE_IMAGE.finditer((project / K8S_SCRIPT).read_text())
    return match["image"]


def tool_versions(project: Path) -> dict[str, str]:
    """kind, helm and kubectl, each with the version k8s.py names."""
    text = (project / K8S_SCRIPT).read_text()
    return {match["tool"]: match["version"] for match in K8S_TOOL.finditer(text)}


def upstream_charts(project: Path) -> list[dict[str, str]]:
    """Each official chart k8s.py installs: its `chart`, `version` and `values` file."""
    text = (project / K8S_SCRIPT).read_text()
    return [match.groupdict() for match in UPSTREAM_CHART.finditer(text)]


def load_all(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def applied_objects(project: Path) -> list[dict[str, Any]]:
    """What k8s.py applies with kubectl outside the service's release: the PostgreSQL cluster
    with postgres, Redis with the worker."""
    paths = sorted((project / DEPLOY).glob("postgres/*.yaml"))
    paths += sorted((project / DEPLOY).glob("redis/*.yaml"))
    return [item for path in paths for item in load_all(path.read_text())]


def copy_with_synced_chart(project: Path, destination: Path) -> Path:
    """A copy of a rendered project whose chart has what `k8s.py sync` copies into it (only
    with the stack: without it the chart packages no file of the project)."""
    copy = shutil.copytree(project, destination)
    if not (copy / "observability").is_dir():
        return copy
    result = run_k8s_script(copy, "sync")
    assert result.returncode == 0, result.stderr
    return copy


def run_k8s_script(
    project: Path, *arguments: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python deploy/kubernetes/k8s.py ...` in the project, with PATH set to `path` if given."""
    environment = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run(
        [sys.executable, str(K8S_SCRIPT), *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )


def helm(helm_binary: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def helm_template(helm_binary: str, project: Path, *values: str) -> list[dict[str, Any]]:
    """Every object `helm template` renders from the project's chart, `--set` each of values."""
    sets = [argument for value in values for argument in ("--set", value)]
    result = helm(
        helm_binary, "template", RELEASE, str(CHART), "--namespace", RELEASE, *sets, cwd=project
    )
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in objects if item["kind"] == kind]


def owned_by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` that belongs to `name`, `backend` or `worker` (its label
    app.kubernetes.io/name, as the compose service is named)."""
    (item,) = [
        item
        for item in of_kind(objects, kind)
        if item["metadata"].get("labels", {}).get("app.kubernetes.io/name") == name
    ]
    return item


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every object that makes pods."""
    for item in objects:
        if item["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{item['kind']}/{item['metadata']['name']}", item["spec"]["template"]["spec"]


def restricted_problems(name: str, pod: dict[str, Any]) -> list[str]:
    """What the "restricted" Pod Security Standard refuses in a pod spec (its rules, as
    kubernetes.io/docs/concepts/security/pod-security-standards lists them)."""
    problems = []
    pod_context = pod.get("securityContext", {})
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        problems.append(f"{name}: shares a host namespace")
    for volume in pod.get("volumes", []):
        allowed = {"name", "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"}
        allowed |= {"persistentVolumeClaim", "projected", "secret"}
        if set(volume) - allowed:
            problems.append(f"{name}: volume {volume['name']} is of a refused type")
    if pod_context.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{name}: the pod has no RuntimeDefault seccomp profile")
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name} container {container['name']}"
        context = container.get("securityContext", {})
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as user 0")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{where}: does not drop ALL capabilities")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{where}: uses a host port")
        # Not the profile's rules, this project's: nothing written outside its volumes, and
        # resources bounded.
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: the root filesystem is writable")
        resources = container.get("resources", {})
        if not {"cpu", "memory"} <= set(resources.get("requests", {})):
            problems.append(f"{where}: requests no cpu and memory")
        if "memory" not in resources.get("limits", {}):
            problems.append(f"{where}: has no memory limit")
    return problems


SECRET_WORDS = re.compile(r"password|token|secret", re.IGNORECASE)
# Keys that name where a secret is, never the secret itself.
SECRET_REFERENCE = re.compile(r"(Key|Name|existingSecret|configSecret|keys)$")


def secret_values(node: Any, where: str) -> list[str]:
    """Every secret written out in `node` (parsed YAML): a string under a key that names a
    password, token or secret, and an environment variable so named with a plain value."""
    found = []
    if isinstance(node, dict):
        if SECRET_WORDS.search(str(node.get("name", ""))) and "value" in node:
            found.append(f"{where}: {node['name']} has a plain value")
        for key, value in node.items():
            if SECRET_REFERENCE.search(str(key)):
                continue
            if isinstance(value, str) and SECRET_WORDS.search(str(key)):
                found.append(f"{where}: {key} = {value!r}")
            found += secret_values(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += secret_values(item, f"{where}[{index}]")
    return found
