"""The Kubernetes deployment (kubernetes=yes): the service's chart rendered by the real Helm
and validated against the Kubernetes and CRD schemas, the values of the official charts
cross-checked with the chart, compose and each other, and k8s.py's plan of commands.

No cluster runs here (no container runtime): `make k8s-up` is proven only in the rendered
project's own CI, which these tests check statically.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from alloy_syntax import ALLOY_COMPONENTS, Block, Reference, component, parse
from conftest import (
    COOKIECUTTER_JSON,
    PINNED_BUILD_HINT,
    TEMPLATE_DIR,
    combination_id,
    require_tool,
    resolved_compose,
)
from kubernetes_checks import (
    CHART,
    DEPLOY,
    K8S_SCRIPT,
    KUBERNETES_VARIANTS,
    PROBES,
    RELEASE,
    applied_objects,
    copy_with_synced_chart,
    helm,
    helm_template,
    kind_node_image,
    load_all,
    of_kind,
    owned_by,
    pod_specs,
    restricted_problems,
    run_k8s_script,
    secret_values,
    tool_versions,
    upstream_charts,
)
from stack_checks import load, unfilled_ci_variables

Render = Callable[..., Path]
KUBERNETES_WORDS = re.compile(r"kubernetes|k8s|helm|kubectl|cloudnative|cnpg", re.IGNORECASE)
JS_DIR = TEMPLATE_DIR / "tests" / "js"
# The API groups of the operators' custom resources: validated against their CRD schemas.
CUSTOM_RESOURCE_GROUPS = ("monitoring.coreos.com/", "postgresql.cnpg.io/")
HELM_HINT = "go install helm.sh/helm/v4/cmd/helm@<version in docs/versions.md>; see .ci/run"


@pytest.fixture(scope="module", params=KUBERNETES_VARIANTS, ids=combination_id)
def k8s_answers(request: pytest.FixtureRequest) -> dict[str, str]:
    return dict(request.param)


@pytest.fixture(scope="module")
def k8s_project(render_once: Render, k8s_answers: dict[str, str]) -> Path:
    return render_once(**k8s_answers)


@pytest.fixture(scope="module")
def synced_project(k8s_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_with_synced_chart(k8s_project, tmp_path_factory.mktemp("k8s") / "project")


def has_stack(project: Path) -> bool:
    return (project / "observability").is_dir()


def has_database(project: Path) -> bool:
    return (project / "backend/app/db").is_dir()


def has_worker(project: Path) -> bool:
    return (project / "backend/app/jobs").is_dir()


# --- The option ------------------------------------------------------------------------


def test_kubernetes_no_leaves_no_trace(render_once: Render) -> None:
    for answers in ({}, {"database": "none", "include_observability": "no"}):
        project = render_once(**answers)
        assert not (project / "deploy").exists()
        mentions = [
            f"{path.relative_to(project)}: {match.group(0)}"
            for path in sorted(project.rglob("*"))
            if path.is_file() and path.name not in (".cookiecutter.json", "uv.lock")
            for match in KUBERNETES_WORDS.finditer(
                f"{path.relative_to(project)}\n{path.read_text(errors='replace')}"
            )
        ]
        assert mentions == []


def test_the_chart_has_only_the_files_of_its_options(k8s_project: Path) -> None:
    templates = {path.name for path in (k8s_project / CHART / "templates").iterdir()}
    stack = {
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "grafana-dashboards.yaml",
        "grafana-datasources.yaml",
    }
    assert (stack <= templates) is has_stack(k8s_project)
    assert bool(stack & templates) is has_stack(k8s_project)
    assert ("migration-job.yaml" in templates) is has_database(k8s_project)
    assert (k8s_project / DEPLOY / "postgres").is_dir() is has_database(k8s_project)
    values = {path.name for path in (k8s_project / DEPLOY / "values").glob("*.yaml")}
    expected = {"kube-prometheus-stack.yaml", "loki.yaml", "tempo.yaml", "alloy.yaml"}
    assert (values >= expected) is has_stack(k8s_project)
    assert ("cloudnative-pg.yaml" in values) is has_database(k8s_project)


# --- One source of truth: what the chart packages is what compose mounts -----------------


def test_sync_copies_exactly_the_compose_files_and_drops_stale_ones(
    k8s_project: Path, tmp_path: Path
) -> None:
    if not has_stack(k8s_project):
        pytest.skip("without the stack the chart packages no file of the project")
    project = copy_with_synced_chart(k8s_project, tmp_path / "project")
    files = project / CHART / "files"
    compose_dashboards = project / "observability/grafana/dashboards"
    compose_rules = project / "observability/prometheus/rules"
    assert {p.name: p.read_bytes() for p in (files / "dashboards").iterdir()} == {
        p.name: p.read_bytes() for p in compose_dashboards.glob("*.json")
    }
    assert {p.name: p.read_bytes() for p in (files / "rules").iterdir()} == {
        p.name: p.read_bytes() for p in compose_rules.glob("*.yml")
    }
    datasources = project / "observability/grafana/provisioning/datasources/datasources.yml"
    assert (files / "datasources.yml").read_bytes() == datasources.read_bytes()

    # An edit and a removal in observability/ reach the chart at the next sync.
    (compose_dashboards / "trace-explorer.json").unlink()
    (compose_rules / "backend-alerts.yml").write_text("groups: []\n")
    copy_with_synced_chart(project, tmp_path / "again")
    again = tmp_path / "again" / CHART / "files"
    assert not (again / "dashboards/trace-explorer.json").exists()
    assert (again / "rules/backend-alerts.yml").read_text() == "groups: []\n"


def test_the_synced_copies_are_git_ignored(k8s_project: Path) -> None:
    ignored = (k8s_project / ".gitignore").read_text().splitlines()
    assert (f"{CHART}/files/" in ignored) is has_stack(k8s_project)


# --- k8s.py: the plan of `make k8s-up` ----------------------------------------------------


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with stand-ins for kind, helm, kubectl and docker, so that --dry-run passes
    the tool check; each fails if called, and a dry run calls none."""
    folder = tmp_path_factory.mktemp("stand-ins")
    for name in ("kind", "helm", "kubectl", "docker"):
        stand_in = folder / name
        stand_in.write_text("#!/bin/sh\necho 'a dry run called a tool' >&2\nexit 99\n")
        stand_in.chmod(0o755)
    return folder


def k8s_plan(project: Path, stand_ins: Path, *arguments: str) -> list[list[str]]:
    """The commands `k8s.py` would run, from its --dry-run."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{stand_ins}"
    result = run_k8s_script(project, *arguments, "--dry-run", path=path)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def test_up_installs_each_part_after_what_it_needs(synced_project: Path, stand_ins: Path) -> None:
    plan = k8s_plan(synced_project, stand_ins, "up")
    lines = [shlex.join(command) for command in plan]

    def first(pattern: str) -> int:
        (index,) = [i for i, line in enumerate(lines) if re.search(pattern, line)][:1] or [-1]
        assert index >= 0, f"no command matches {pattern!r}:\n" + "\n".join(lines)
        return index

    cluster = first(r"^kind create cluster --name my-service --image kindest/node:v[\d.]+@sha256:")
    load_image = first(r"^kind load docker-image my-service-backend:local-")
    service = first(rf"^helm .*upgrade --install {RELEASE} .*chart ")
    assert cluster < load_image < service
    assert re.search(r"--set=image.tag=local-[\w-]+ ", lines[service])
    assert "--wait" in plan[service]
    if has_stack(synced_project):
        secret = first(r"kubectl .*create secret generic grafana-admin -n monitoring ")
        assert "--from-literal=admin-password=***" in lines[secret]
        routing = first(r"kubectl .*create secret generic alertmanager-config -n monitoring ")
        # The configuration holds the webhook URL: never printed.
        assert "--from-literal=alertmanager.yaml=***" in lines[routing]
        stack = first(r"^helm .*upgrade --install kube-prometheus-stack ")
        # The ServiceMonitor and PrometheusRule need the operator's CRDs.
        assert secret < stack < service
        assert routing < stack
        for release in ("loki", "tempo", "alloy"):
            assert first(rf"^helm .*upgrade --install {release} ") < service
    if has_database(synced_project):
        operator = first(r"^helm .*upgrade --install cnpg cloudnative-pg ")
        cluster_applied = first(
            r"kubectl .*apply -n my-service --filename=\S+/postgres/cluster.yaml"
        )
        ready = first(r"kubectl .*wait .*--for=condition=Ready cluster.postgresql.cnpg.io/")
        assert operator < cluster_applied < ready < service
    if has_worker(synced_project):
        namespace = first(r"kubectl .*create namespace my-service ")
        secret = first(r"kubectl .*create secret generic redis -n my-service ")
        # The password, from .env, is never printed.
        assert "--from-literal=password=***" in lines[secret]
        redis = first(r"kubectl .*apply -n my-service --filename=\S+/redis/valkey.yaml")
        ready = first(r"kubectl .*rollout status statefulset/redis --timeout=\S+ -n my-service")
        assert namespace < secret < redis < ready < service
    for command in plan:
        if "--values" in command:
            assert Path(command[command.index("--values") + 1]).is_file()


def test_up_on_an_existing_cluster_uses_its_context_and_a_pushed_image(
    synced_project: Path, stand_ins: Path
) -> None:
    image = ["--image", "registry.test/b:1.2.3"]
    plan = k8s_plan(synced_project, stand_ins, "up", "--context", "prod", *image)
    assert not [command for command in plan if command[0] in ("kind", "docker")]
    for command in plan:
        assert command[:3] in (["kubectl", "--context", "prod"], ["helm", "--kube-context", "prod"])
    (service,) = [command for command in plan if RELEASE in command and "upgrade" in command]
    assert "--set=image.repository=registry.test/b" in service
    assert "--set=image.tag=1.2.3" in service


@pytest.mark.slow
def test_k8s_py_passes_strict_type_checking(k8s_project: Path) -> None:
    """The project's mypy reads only the backend: k8s.py, standard library only, is checked
    here, strictly, in each of its renders."""
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir=/dev/null", str(K8S_SCRIPT)]
    result = subprocess.run(
        command, cwd=k8s_project, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_tool_is_named_with_its_version_and_install_page(k8s_project: Path) -> None:
    result = run_k8s_script(k8s_project, "up", path=str(Path(sys.executable).parent))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["kind", "docker", "helm", "kubectl"]
    for line in lines:
        assert re.fullmatch(r"\S+ is not installed: .*https://\S+", line), line


# --- The service's chart under the real Helm ----------------------------------------------


@pytest.fixture(scope="module")
def helm_binary() -> str:
    return require_tool("helm", HELM_HINT)


@pytest.fixture(scope="module")
def manifests(helm_binary: str, synced_project: Path) -> list[dict[str, Any]]:
    return helm_template(helm_binary, synced_project)


@pytest.mark.slow
def test_helm_lint_strict_passes(helm_binary: str, synced_project: Path) -> None:
    result = helm(helm_binary, "lint", "--strict", str(CHART), cwd=synced_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.slow
def test_helm_3_lints_and_renders_the_same_objects(
    manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    """The chart installs with Helm 3 too (apiVersion v2, nothing of Helm 4's own)."""
    helm3 = require_tool("helm3", "Helm 3 as `helm3`; .ci/run builds it with go install")
    result = helm(helm3, "lint", "--strict", str(CHART), cwd=synced_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert helm_template(helm3, synced_project) == manifests


@pytest.mark.slow
def test_the_chart_renders_the_objects_of_its_options(
    manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    kinds = sorted({item["kind"] for item in manifests})
    expected = {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
    if has_stack(synced_project):
        expected |= {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    if has_database(synced_project):
        expected |= {"Job"}
    assert kinds == sorted(expected)
    owners = {
        (item["kind"], item["metadata"]["labels"]["app.kubernetes.io/name"]) for item in manifests
    }
    worker = {("Deployment", "worker"), ("PodDisruptionBudget", "worker")}
    if has_stack(synced_project):
        worker |= {("Service", "worker"), ("ServiceMonitor", "worker")}
    assert {owner for owner in owners if owner[1] == "worker"} == (
        worker if has_worker(synced_project) else set()
    )
    assert not of_kind(manifests, "Secret")
    assert secret_values(manifests, "helm template") == []


@pytest.mark.slow
def test_every_pod_passes_the_restricted_pod_security_standard(
    manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    pods = list(pod_specs(manifests + applied_objects(synced_project)))
    assert len(pods) == 1 + has_database(synced_project) + 2 * has_worker(synced_project)
    assert [problem for name, pod in pods for problem in restricted_problems(name, pod)] == []


def test_the_restricted_check_catches_each_rule() -> None:
    """Each rule of restricted_problems can fail."""
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    container: dict[str, Any] = {
        "name": "c",
        "securityContext": security,
        "resources": {"requests": {"cpu": "1", "memory": "1"}, "limits": {"memory": "1"}},
    }
    pod = {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    assert restricted_problems("ok", pod) == []
    mutants = [
        ("hostNetwork", True),
        ("volumes", [{"name": "h", "hostPath": {"path": "/"}}]),
        ("securityContext", {}),
    ]
    for key, value in mutants:
        assert restricted_problems("bad", {**pod, key: value}), key
    container_mutants: list[dict[str, Any]] = [
        {"privileged": True},
        {"allowPrivilegeEscalation": True},
        {"runAsNonRoot": False},
        {"runAsUser": 0},
        {"capabilities": {"drop": []}},
        {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}},
        {"readOnlyRootFilesystem": False},
    ]
    for change in container_mutants:
        bad = {**container, "securityContext": {**security, **change}}
        assert restricted_problems("bad", {**pod, "containers": [bad]}), change
    assert restricted_problems("bad", {**pod, "containers": [{**container, "resources": {}}]})


@pytest.mark.slow
def test_the_probes_follow_the_health_contract(
    manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    deployment = owned_by(manifests, "Deployment", "backend")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    paths = [container[probe]["httpGet"]["path"] for probe in PROBES]
    assert paths == ["/health/startup", "/health/live", "/health/ready"]
    assert {container[probe]["httpGet"]["port"] for probe in PROBES} == {"http"}
    # The image's own command listens where the chart sends the Service and the probes.
    (http,) = container["ports"]
    assert "args" not in container and "command" not in container
    dockerfile = (synced_project / "backend/Dockerfile").read_text()
    assert f'"--port", "{http["containerPort"]}"' in dockerfile
    strategy = deployment["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.slow
def test_latest_and_a_missing_tag_are_refused(helm_binary: str, synced_project: Path) -> None:
    for tag, message in (("latest", "never latest"), ("", "image.tag is required")):
        result = helm(
            helm_binary, "template", RELEASE, str(CHART), "--set", f"image.tag={tag}",
            cwd=synced_project,
        )  # fmt: skip
        assert result.returncode != 0
        assert message in result.stderr


@pytest.mark.slow
def test_one_secret_is_replaced_by_the_readme_s_command_and_the_others_kept(
    helm_binary: str, manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    """deploy/kubernetes/README.md points the chart at a Secret of the user's (an external
    database or queue) with one `--set`: that Secret's variables move to it, the rest stay."""
    sources = chart_values(synced_project)["envFromSecrets"]
    readme = (synced_project / DEPLOY / "README.md").read_text()
    for source in sources:
        replacement = f"envFromSecrets.{source}.secretName=my-{source}"
        assert f"--set {replacement.replace(f'my-{source}', '')}" in readme
        changed = helm_template(helm_binary, synced_project, replacement)
        for item in of_kind(manifests, "Deployment"):
            (before,) = item["spec"]["template"]["spec"]["containers"]
            (after,) = [
                other["spec"]["template"]["spec"]["containers"][0]
                for other in of_kind(changed, "Deployment")
                if other["metadata"]["name"] == item["metadata"]["name"]
            ]
            moved = set(sources[source]["keys"])
            expected = [
                {**variable, "valueFrom": {"secretKeyRef": {
                    **variable["valueFrom"]["secretKeyRef"], "name": f"my-{source}"}}}
                if variable["name"] in moved else variable
                for variable in before["env"]
            ]  # fmt: skip
            assert after["env"] == expected


@pytest.mark.slow
def test_autoscaling_replaces_the_fixed_replica_count(
    helm_binary: str, synced_project: Path
) -> None:
    objects = helm_template(helm_binary, synced_project, "autoscaling.enabled=true")
    (autoscaler,) = of_kind(objects, "HorizontalPodAutoscaler")
    deployment = owned_by(objects, "Deployment", "backend")
    assert "replicas" not in deployment["spec"]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert autoscaler["spec"]["minReplicas"] >= 2


# --- Schemas: Kubernetes' own, offline and strict, and the CRDs' -----------------------


def kubernetes_minor(project: Path) -> str:
    """The Kubernetes minor of the kind node image k8s.py pins: the version validated against."""
    match = re.fullmatch(
        r"kindest/node:v(\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}", kind_node_image(project)
    )
    assert match, "k8s.py pins no kindest/node image by version and digest"
    return match.group(1)


def custom_resource_problems(objects: list[dict[str, Any]]) -> list[list[str]]:
    """Each object's problems against its CRD schema (tests/js/validate-custom-resources.mjs)."""
    node = require_tool("node", "Node.js; .ci/run installs it with npm ci in tests/js")
    result = subprocess.run(
        [node, "validate-custom-resources.mjs"],
        cwd=JS_DIR,
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    problems: list[list[str]] = json.loads(result.stdout)
    return problems


def kubernetes_schema_problems(objects: list[dict[str, Any]], minor: str) -> list[str]:
    problems = []
    for item in objects:
        try:
            kubernetes_validate.validate(item, minor, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{item['kind']}/{item['metadata']['name']}: {error.message}")
    return problems


@pytest.mark.slow
def test_every_object_is_valid_for_the_pinned_kubernetes(
    manifests: list[dict[str, Any]], synced_project: Path, helm_binary: str
) -> None:
    minor = kubernetes_minor(synced_project)
    objects = manifests + helm_template(helm_binary, synced_project, "autoscaling.enabled=true")
    objects += applied_objects(synced_project)
    custom = [item for item in objects if item["apiVersion"].startswith(CUSTOM_RESOURCE_GROUPS)]
    core = [item for item in objects if item not in custom]
    assert ("StatefulSet" in {item["kind"] for item in core}) is has_worker(synced_project)
    assert kubernetes_schema_problems(core, minor) == []
    assert {item["kind"] for item in custom} <= {"ServiceMonitor", "PrometheusRule", "Cluster"}
    assert custom_resource_problems(custom) == [[] for _ in custom]


@pytest.mark.slow
def test_the_schema_checks_refuse_an_unknown_field_and_a_wrong_value(
    manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    deployment = json.loads(json.dumps(owned_by(manifests, "Deployment", "backend")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert kubernetes_schema_problems([deployment], kubernetes_minor(synced_project)) != []
    custom = [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
         "metadata": {"name": "m"}, "spec": {"selector": {}, "endpoints": [{"interval": "soon"}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
         "metadata": {"name": "m"}, "spec": {"selector": {}, "endpoint": [{"port": "http"}]}},
        {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
         "metadata": {"name": "c"}, "spec": {"instances": "two"}},
    ]  # fmt: skip
    assert all(custom_resource_problems(custom))


# --- The stack: what the cluster gets is what compose mounts ----------------------------

RULES = Path("observability/prometheus/rules")
DASHBOARDS = Path("observability/grafana/dashboards")
DATASOURCES = Path("observability/grafana/provisioning/datasources/datasources.yml")


def values_file(project: Path, name: str) -> Any:
    return load(project / DEPLOY / "values" / name)


def chart_values(project: Path) -> Any:
    return load(project / CHART / "values.yaml")


@pytest.fixture(scope="module")
def stack_manifests(manifests: list[dict[str, Any]], synced_project: Path) -> list[dict[str, Any]]:
    if not has_stack(synced_project):
        pytest.skip("include_observability=no: the chart ships no stack object")
    return manifests


@pytest.mark.slow
def test_the_prometheus_rules_are_the_compose_rule_files(
    stack_manifests: list[dict[str, Any]], synced_project: Path, tmp_path: Path
) -> None:
    rules = of_kind(stack_manifests, "PrometheusRule")
    files = sorted((synced_project / RULES).glob("*.yml"))
    assert [rule["metadata"]["name"] for rule in rules] == [
        f"{RELEASE}-backend-{path.stem}" for path in files
    ]
    assert [rule["spec"] for rule in rules] == [load(path) for path in files]
    # The groups as the operator hands them to Prometheus pass compose's own rule tests.
    promtool = require_tool("promtool", PINNED_BUILD_HINT)
    shutil.copytree(synced_project / RULES / "tests", tmp_path / "tests")
    for path, rule in zip(files, rules, strict=True):
        (tmp_path / path.name).write_text(yaml.safe_dump(rule["spec"]))
    tests = sorted(str(path.relative_to(tmp_path)) for path in (tmp_path / "tests").glob("*.yml"))
    result = subprocess.run(
        [promtool, "test", "rules", *tests], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_each_dashboard_configmap_is_its_compose_file_byte_for_byte(
    stack_manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    label = chart_values(synced_project)["grafana"]["dashboardLabel"]
    dashboards = [
        item
        for item in of_kind(stack_manifests, "ConfigMap")
        if label in item["metadata"]["labels"]
    ]
    assert {name: text for item in dashboards for name, text in item["data"].items()} == {
        path.name: path.read_text() for path in (synced_project / DASHBOARDS).glob("*.json")
    }


@pytest.mark.slow
def test_the_datasources_keep_their_uids_and_reach_the_cluster_services(
    stack_manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    values = chart_values(synced_project)["grafana"]
    (configmap,) = [
        item
        for item in of_kind(stack_manifests, "ConfigMap")
        if values["datasourceLabel"] in item["metadata"]["labels"]
    ]
    cluster = yaml.safe_load(configmap["data"]["datasources.yml"])["datasources"]
    compose = load(synced_project / DATASOURCES)["datasources"]
    urls = values["datasourceUrls"]
    assert [{**source, "url": urls[source["url"]]} for source in compose] == cluster
    assert {source["uid"] for source in cluster} == {"prometheus", "alertmanager", "loki", "tempo"}
    # The datasource's scrape interval is the ServiceMonitor's, as it is compose's.
    (prometheus,) = [source for source in cluster if source["uid"] == "prometheus"]
    for monitor in of_kind(stack_manifests, "ServiceMonitor"):
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["interval"] == prometheus["jsonData"]["timeInterval"]


def service_url(values: dict[str, Any], compose_url: str) -> str:
    url: str = values["grafana"]["datasourceUrls"][compose_url]
    return url


def test_the_stack_charts_agree_on_names_and_addresses(k8s_project: Path) -> None:
    """Every address one values file takes from another, and each image compose pins."""
    if not has_stack(k8s_project):
        pytest.skip("include_observability=no")
    chart = chart_values(k8s_project)
    stack = values_file(k8s_project, "kube-prometheus-stack.yaml")
    tempo = values_file(k8s_project, "tempo.yaml")
    prometheus_url = service_url(chart, "http://prometheus:9090")
    # kube-prometheus-stack names its services <release>-<component>; Grafana gets the
    # Alertmanager datasource from the chart's ConfigMap only.
    assert service_url(chart, "http://alertmanager:9093") == prometheus_url.replace(
        "-prometheus.", "-alertmanager."
    ).replace(":9090", ":9093")
    assert stack["grafana"]["sidecar"]["datasources"]["alertmanager"]["enabled"] is False
    loki_url = service_url(chart, "http://loki:3100")
    tempo_url = service_url(chart, "http://tempo:3200")
    # Prometheus selects the chart's ServiceMonitor and PrometheusRules.
    spec = stack["prometheus"]["prometheusSpec"]
    for selector in ("serviceMonitorSelector", "ruleSelector"):
        assert (
            spec[selector]["matchLabels"].items() <= chart["prometheus"]["selectorLabels"].items()
        )
    assert spec["serviceMonitorNamespaceSelector"] == spec["ruleNamespaceSelector"] == {}
    assert "exemplar-storage" in spec["enableFeatures"]
    assert spec["enableRemoteWriteReceiver"] is True
    assert spec["retention"] == "30d"
    # Grafana's sidecars load the chart's ConfigMaps, from the chart's namespace too.
    sidecar = stack["grafana"]["sidecar"]
    for kind, label in (("dashboards", "dashboardLabel"), ("datasources", "datasourceLabel")):
        assert (sidecar[kind]["label"], sidecar[kind]["labelValue"]) == (
            chart["grafana"][label],
            "1",
        )
        assert sidecar[kind]["searchNamespace"] == "ALL"
    assert sidecar["datasources"]["defaultDatasourceEnabled"] is False
    # Alertmanager takes compose's routing from the Secret k8s.py makes, whole.
    alertmanager = stack["alertmanager"]["alertmanagerSpec"]
    assert alertmanager["useExistingSecret"] is True
    script = (k8s_project / K8S_SCRIPT).read_text()
    assert f'ALERTMANAGER_CONFIG_SECRET = "{alertmanager["configSecret"]}"' in script
    # The chart's always-firing alerts need its own routing, which compose's replaces.
    assert stack["defaultRules"]["disabled"] == {"Watchdog": True, "InfoInhibitor": True}
    # Tempo writes span metrics into that Prometheus; the backend sends spans to Tempo;
    # Alloy pushes to Loki.
    assert tempo["tempo"]["metricsGenerator"]["remoteWriteUrl"] == f"{prometheus_url}/api/v1/write"
    assert tempo["tempo"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert chart["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == tempo_url.replace(":3200", ":4317")
    assert chart["env"]["OTEL_SERVICE_NAME"] == "backend"
    processors = tempo["tempo"]["overrides"]["defaults"]["metrics_generator"]["processors"]
    assert set(processors) == {"service-graphs", "span-metrics"}
    alloy = parse((k8s_project / DEPLOY / "alloy/config.alloy").read_text())
    (write,) = [block for block in alloy if block.name == "loki.write"]
    assert write.child("endpoint").attributes["url"] == f"{loki_url}/loki/api/v1/push"
    # One version of each image, in compose and in the cluster.
    images = {
        name: service["image"].rsplit(":", 1)[1]
        for name, service in load(k8s_project / "compose.yml")["services"].items()
        if "image" in service
    }
    assert spec["image"]["tag"] == images["prometheus"]
    assert stack["alertmanager"]["alertmanagerSpec"]["image"]["tag"] == images["alertmanager"]
    assert stack["grafana"]["image"]["tag"] == images["grafana"]
    assert values_file(k8s_project, "loki.yaml")["loki"]["image"]["tag"] == images["loki"]
    assert tempo["tempo"]["tag"] == images["tempo"]
    # Compose runs Alloy only with log_collector=alloy: its pin in the template's compose.yml.
    compose_template = (TEMPLATE_DIR / "{{cookiecutter.project_slug}}/compose.yml").read_text()
    (alloy_tag,) = re.findall(r"image: grafana/alloy:(\S+)", compose_template)
    assert values_file(k8s_project, "alloy.yaml")["image"]["tag"] == alloy_tag


# --- Alloy in the cluster: the same streams as compose's collector -----------------------

# Alloy's pipeline in the cluster, in order: each component reads the export of the one before.
K8S_ALLOY_WIRING = [
    ("discovery.relabel", "targets", "discovery.kubernetes", "targets"),
    ("local.file_match", "path_targets", "discovery.relabel", "output"),
    ("loki.source.file", "targets", "local.file_match", "targets"),
    ("loki.source.file", "forward_to", "loki.process", "receiver"),
    ("loki.process", "forward_to", "loki.write", "receiver"),
]


def block_shape(block: Block) -> Any:
    """A block without its line numbers: what two configs must share to behave alike."""
    return (block.name, block.label, block.attributes, [block_shape(b) for b in block.blocks])


def k8s_alloy_problems(config: str, compose_config: str, namespace: str) -> list[str]:
    blocks = parse(config)
    problems = [
        f"{block.name}: not an Alloy v1.21 component"
        for block in blocks
        if block.name not in ALLOY_COMPONENTS
    ]
    for reader, attribute, source, export in K8S_ALLOY_WIRING:
        value = component(blocks, reader).attributes.get(attribute)
        expected = Reference(f"{source}.{component(blocks, source).label}.{export}")
        if value not in (expected, [expected]):
            problems.append(f"{reader}.{attribute} = {value!r}, expected {expected.path}")
    rules = {
        rule.attributes.get("target_label"): rule.attributes
        for rule in component(blocks, "discovery.relabel").children("rule")
    }
    if rules.get("service", {}).get("source_labels") != [
        "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    ]:
        problems.append("the service label is not the pod's app.kubernetes.io/name")
    (keep,) = [rule for rule in rules.values() if rule.get("action") == "keep"]
    if set(keep["regex"].split("|")) != {namespace, "monitoring"}:
        problems.append(f"Alloy keeps the namespaces {keep['regex']!r}")
    process = component(blocks, "loki.process")
    if [block.name for block in process.blocks] != ["stage.cri", "stage.match"]:
        problems.append("loki.process does not unwrap the CRI lines before the backend's stage")
    compose_match = component(parse(compose_config), "loki.process").child("stage.match")
    if block_shape(process.child("stage.match")) != block_shape(compose_match):
        problems.append("the backend's stage differs from compose's collector")
    return problems


@pytest.fixture(scope="module")
def compose_alloy_config(render_once: Render) -> str:
    project = render_once(include_observability="yes", log_collector="alloy")
    return (project / "observability/alloy/config.alloy").read_text()


def test_alloy_in_the_cluster_makes_the_streams_compose_makes(
    k8s_project: Path, k8s_answers: dict[str, str], render_once: Render
) -> None:
    if not has_stack(k8s_project):
        pytest.skip("include_observability=no")
    # Compose's collector of the same services (the worker's too, with it).
    worker = k8s_answers.get("worker", COOKIECUTTER_JSON["worker"][0])
    compose = render_once(include_observability="yes", log_collector="alloy", worker=worker)
    compose_config = (compose / "observability/alloy/config.alloy").read_text()
    config = (k8s_project / DEPLOY / "alloy/config.alloy").read_text()
    assert k8s_alloy_problems(config, compose_config, RELEASE) == []


K8S_ALLOY_MUTANTS = [
    ("targets = discovery.kubernetes.pods.targets", "targets = []"),
    ("forward_to = [loki.process.pods.receiver]", "forward_to = [loki.write.loki.receiver]"),
    ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "__meta_kubernetes_pod_name"),
    ('regex         = "my-service|monitoring"', 'regex         = ".*"'),
    ("  stage.cri {}\n", ""),
    ('        request_id = "",\n', ""),
    ('format = "RFC3339Nano"', 'format = "Unix"'),
]


@pytest.mark.parametrize(("original", "mutant"), K8S_ALLOY_MUTANTS)
def test_a_change_to_the_cluster_alloy_config_is_caught(
    render_once: Render, compose_alloy_config: str, original: str, mutant: str
) -> None:
    config = (render_once(kubernetes="yes") / DEPLOY / "alloy/config.alloy").read_text()
    assert config.count(original) == 1, original
    assert k8s_alloy_problems(config.replace(original, mutant), compose_alloy_config, RELEASE)


# --- The worker and its Redis ------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_project(synced_project: Path) -> Path:
    if not has_worker(synced_project):
        pytest.skip("worker=none")
    return synced_project


def environment(container: dict[str, Any]) -> dict[str, Any]:
    """A container's variables: each plain value, or where in a Secret it is read from."""
    return {
        variable["name"]: variable.get("value", variable.get("valueFrom"))
        for variable in container["env"]
    }


@pytest.mark.slow
def test_the_worker_runs_compose_s_command_with_the_backend_s_image_and_settings(
    manifests: list[dict[str, Any]], worker_project: Path
) -> None:
    backend_template = owned_by(manifests, "Deployment", "backend")["spec"]["template"]
    deployment = owned_by(manifests, "Deployment", "worker")
    pod = deployment["spec"]["template"]["spec"]
    (backend,) = backend_template["spec"]["containers"]
    (worker,) = pod["containers"]
    compose = resolved_compose(worker_project)["services"]["worker"]
    assert worker["image"] == backend["image"]
    assert worker["command"] == compose["command"]
    (http,) = worker["ports"]
    assert compose["command"][-2:] == ["--port", str(http["containerPort"])]
    # The backend's settings, but for the worker's own name and its settings of compose.
    own = {"SERVICE_NAME": "worker", "WORKER_CONCURRENCY": "10", "WORKER_SHUTDOWN_SECONDS": "20"}
    if has_stack(worker_project):
        own["OTEL_SERVICE_NAME"] = "worker"
    assert environment(worker) == environment(backend) | own
    assert {name: compose["environment"][name] for name in own} == own
    for name in ("REDIS_TIMEOUT", "JOB_ATTEMPTS", "JOB_TIMEOUT_SECONDS", "JOB_RESULT_TTL_SECONDS"):
        assert environment(worker)[name] == compose["environment"][name], name
    # Running jobs finish before the kubelet's SIGKILL; until then, a rollout keeps readers.
    assert float(own["WORKER_SHUTDOWN_SECONDS"]) < pod["terminationGracePeriodSeconds"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] >= 2
    assert [worker[probe]["httpGet"]["path"] for probe in PROBES] == [
        "/health/startup",
        "/health/live",
        "/health/ready",
    ]
    assert pod["automountServiceAccountToken"] is False
    # No backend Service or disruption budget selects a worker, nor the reverse.
    worker_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = owned_by(manifests, "Service", "backend")
    assert not service["spec"]["selector"].items() <= worker_labels.items()
    budget = owned_by(manifests, "PodDisruptionBudget", "worker")
    assert budget["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    backend_labels = backend_template["metadata"]["labels"]
    assert not budget["spec"]["selector"]["matchLabels"].items() <= backend_labels.items()


@pytest.mark.slow
def test_prometheus_scrapes_the_worker_as_the_job_compose_names(
    manifests: list[dict[str, Any]], worker_project: Path
) -> None:
    if not has_stack(worker_project):
        pytest.skip("include_observability=no")
    monitor = owned_by(manifests, "ServiceMonitor", "worker")
    service = owned_by(manifests, "Service", "worker")
    pod_labels = owned_by(manifests, "Deployment", "worker")["spec"]["template"]["metadata"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"].items() <= pod_labels["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The job is the Service's label jobLabel names; compose's Prometheus names it the same.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    prometheus = load(worker_project / "observability/prometheus/prometheus.yml")
    (scrape,) = [job_ for job_ in prometheus["scrape_configs"] if job_["job_name"] == job]
    assert scrape["static_configs"][0]["targets"] == ["worker:8001"]


def test_redis_in_the_cluster_is_compose_s_and_the_chart_reaches_it(
    k8s_project: Path,
) -> None:
    if not has_worker(k8s_project):
        assert not (k8s_project / DEPLOY / "redis").exists()
        pytest.skip("worker=none")
    objects = load_all((k8s_project / DEPLOY / "redis/valkey.yaml").read_text())
    (service,) = of_kind(objects, "Service")
    (statefulset,) = of_kind(objects, "StatefulSet")
    pod = statefulset["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    compose = load(k8s_project / "compose.yml")["services"]["redis"]
    assert container["image"] == compose["image"]
    # Ready on compose's healthcheck; the server's password is the one the chart reads.
    assert compose["healthcheck"]["test"][0] == "CMD-SHELL"
    assert container["readinessProbe"]["exec"]["command"] == [
        "sh",
        "-c",
        compose["healthcheck"]["test"][1],
    ]
    auth = environment(container)["REDISCLI_AUTH"]["secretKeyRef"]
    assert container["args"][:2] == ["valkey-server", "--appendonly"]
    arguments = dict(zip(container["args"][1::2], container["args"][2::2], strict=True))
    assert arguments["--appendonly"] == "yes"
    assert arguments["--requirepass"] == "$(REDISCLI_AUTH)"
    assert arguments["--maxmemory-policy"] == "noeviction"
    chart = chart_values(k8s_project)
    redis_secret = chart["envFromSecrets"]["redis"]
    assert (redis_secret["secretName"], redis_secret["keys"]["REDIS_PASSWORD"]) == (
        auth["name"],
        auth["key"],
    )
    # The chart's REDIS_HOST is the Service, on the port the settings default to.
    assert (
        chart["env"]["REDIS_HOST"]
        == service["metadata"]["name"]
        == statefulset["spec"]["serviceName"]
    )
    assert [port["port"] for port in service["spec"]["ports"]] == [6379]
    settings = (k8s_project / "backend/app/settings.py").read_text()
    assert "redis_port: int = Field(default=6379," in settings
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (volume,) = statefulset["spec"]["volumeClaimTemplates"]
    (mount,) = container["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (volume["metadata"]["name"], "/data")
    # k8s.py writes the Secret, and applies this file, under these names.
    script = (k8s_project / K8S_SCRIPT).read_text()
    assert f'REDIS_NAME = "{auth["name"]}"' in script
    assert statefulset["metadata"]["name"] == auth["name"]


# --- The database: CloudNativePG, and migrations before a release serves ------------------


@pytest.mark.slow
def test_migrations_run_once_before_the_release_changes_anything(
    manifests: list[dict[str, Any]], synced_project: Path
) -> None:
    if not has_database(synced_project):
        assert not of_kind(manifests, "Job")
        return
    (job,) = of_kind(manifests, "Job")
    deployment = owned_by(manifests, "Deployment", "backend")
    service = owned_by(manifests, "Service", "backend")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (1, 1)
    pod = job["spec"]["template"]["spec"]
    (migrate,) = pod["containers"]
    (backend,) = deployment["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate["image"] == backend["image"]
    assert migrate["env"] == backend["env"]
    # A hook runs before the release's own ServiceAccount exists, and its pod is no backend.
    assert "serviceAccountName" not in pod
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= labels.items()


def test_the_database_secret_is_the_one_the_cluster_writes(k8s_project: Path) -> None:
    if not has_database(k8s_project):
        pytest.skip("database=none")
    (cluster,) = load_all((k8s_project / DEPLOY / "postgres/cluster.yaml").read_text())
    secret = chart_values(k8s_project)["envFromSecrets"]["database"]
    assert secret["secretName"] == f"{cluster['metadata']['name']}-app"
    assert secret["keys"] == {
        "POSTGRES_HOST": "host",
        "POSTGRES_PORT": "port",
        "POSTGRES_DB": "dbname",
        "POSTGRES_USER": "username",
        "POSTGRES_PASSWORD": "password",
    }
    compose = load(k8s_project / "compose.yml")
    compose_major = compose["services"]["postgres"]["image"].split(":")[1].split(".")[0]
    assert cluster["spec"]["imageName"].split(":")[1].split(".")[0] == compose_major
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("app", "app")  # compose's POSTGRES_DB/USER
    assert cluster["spec"]["instances"] >= 2


def test_no_secret_value_in_any_values_file(k8s_project: Path) -> None:
    files = [k8s_project / CHART / "values.yaml", *(k8s_project / DEPLOY).glob("*/*.yaml")]
    documents = [(path.name, document) for path in files for document in load_all(path.read_text())]
    assert [problem for name, item in documents for problem in secret_values(item, name)] == []


def test_the_secret_value_check_finds_one() -> None:
    assert secret_values({"env": {"POSTGRES_PASSWORD": "hunter2"}}, "values.yaml")
    assert secret_values({"grafana": {"adminPassword": "prom-operator"}}, "values.yaml")
    assert secret_values([{"name": "API_TOKEN", "value": "t0ken"}], "manifest")
    assert not secret_values({"admin": {"existingSecret": "a", "passwordKey": "b"}}, "v")


@pytest.mark.slow
def test_the_chart_without_its_synced_files_names_the_command(
    helm_binary: str, k8s_project: Path
) -> None:
    if not has_stack(k8s_project):
        pytest.skip("without the stack the chart packages no file of the project")
    result = helm(helm_binary, "template", RELEASE, str(CHART), cwd=k8s_project)
    assert result.returncode != 0
    assert "python deploy/kubernetes/k8s.py sync" in result.stderr


# --- The rendered CI: make k8s-up and k8s-check on the runner (never run here) ------------


def test_the_rendered_ci_deploys_to_kind_with_the_pinned_tools(k8s_project: Path) -> None:
    jobs = load(k8s_project / ".github/workflows/ci.yml")["jobs"]
    job = jobs["kubernetes"]
    assert job["needs"] == ["backend", *(["migrations"] if has_database(k8s_project) else [])]
    runs = [step.get("run", "") for step in job["steps"]]
    commands = [line.strip() for run in runs for line in run.splitlines()]
    order = [c for c in commands if c.startswith("make k8s-")]
    assert order == ["make k8s-lint", "make k8s-up", "make k8s-check", "make k8s-down"]
    (down,) = [step for step in job["steps"] if step.get("run") == "make k8s-down"]
    assert down["if"] == "always()"
    pinned = {name.split("_")[0].lower(): version for name, version in job["env"].items()}
    assert pinned == tool_versions(k8s_project)
    # The .env k8s.py reads its passwords from.
    assert unfilled_ci_variables(k8s_project) == []


def test_the_make_targets_call_k8s_py(k8s_project: Path) -> None:
    makefile = (k8s_project / "Makefile").read_text()
    for command in ("up", "check", "down"):
        assert re.search(
            rf"^k8s-{command}: .*\n\t\$\(PYTHON\) {K8S_SCRIPT} {command}$", makefile, re.M
        )
    sync = rf"\t\$\(PYTHON\) {K8S_SCRIPT} sync\n" if has_stack(k8s_project) else ""
    assert re.search(rf"^k8s-lint: .*\n{sync}\thelm lint --strict", makefile, re.M)


@pytest.mark.slow
def test_the_longest_slug_gives_names_kubernetes_accepts(
    helm_binary: str, render_once: Render, tmp_path: Path
) -> None:
    """A 53-character slug (the most the hook accepts with kubernetes=yes) names the release,
    the namespace and the database cluster, whose Services add a suffix of their own; the
    worker's objects add theirs."""
    slug = "a" * 26 + "-" + "b" * 26
    project = copy_with_synced_chart(
        render_once(kubernetes="yes", worker="taskiq", project_slug=slug), tmp_path / "project"
    )
    sets = ["--namespace", slug]
    result = helm(helm_binary, "template", slug, str(CHART), *sets, cwd=project)
    assert result.returncode == 0, result.stderr
    dns_labels = {"Deployment", "Service", "Job", "ServiceAccount", "PodDisruptionBudget"}
    names = [
        (item["kind"], item["metadata"]["name"])
        for item in load_all(result.stdout)
        if item["kind"] in dns_labels
    ]
    assert len(names) == len(set(names))
    assert {kind for kind, name in names if name.endswith("-worker")} >= {"Deployment", "Service"}
    for _, name in names:
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name)
    (cluster,) = load_all((project / DEPLOY / "postgres/cluster.yaml").read_text())
    assert len(f"{cluster['metadata']['name']}-rw") <= 63  # CloudNativePG's read-write Service


# --- The official charts' values: only keys looked up for the pinned version ------------

UPSTREAM_KEYS = load(TEMPLATE_DIR / "tests/kubernetes_upstream_keys.yaml")


def key_paths(node: Any, prefix: str = "") -> list[str]:
    """The dotted paths of a values file's leaves (a dot inside a key is escaped)."""
    if not isinstance(node, dict) or not node:
        return [prefix]
    return [
        path
        for key, value in node.items()
        for path in key_paths(
            value, f"{prefix}{'.' if prefix else ''}{key.replace('.', chr(92) + '.')}"
        )
    ]


def unlisted_keys(paths: list[str], listed: list[str]) -> list[str]:
    return [
        path
        for path in paths
        if path not in listed
        and not any(path.startswith(entry[:-1]) for entry in listed if entry.endswith(".*"))
    ]


def test_the_values_files_set_only_keys_looked_up_for_the_pinned_charts(
    k8s_project: Path,
) -> None:
    charts = upstream_charts(k8s_project)
    assert len(charts) == 4 * has_stack(k8s_project) + has_database(k8s_project)
    for chart in charts:
        pinned = f"{chart['chart']} {chart['version']}"
        assert pinned in UPSTREAM_KEYS, f"{pinned}: its keys were not looked up"
        values = values_file(k8s_project, chart["values"])
        assert unlisted_keys(key_paths(values), UPSTREAM_KEYS[pinned]["keys"]) == [], pinned


def test_the_key_check_finds_an_unlisted_key() -> None:
    listed = ["a.b", "c.*", "d\\.e.f"]
    assert unlisted_keys(key_paths({"a": {"b": 1}, "c": {"x": {"y": 2}}}), listed) == []
    assert unlisted_keys(key_paths({"d.e": {"f": 1}}), listed) == []
    assert unlisted_keys(key_paths({"a": {"bb": 1}, "d": {"e": 1}}), listed) == ["a.bb", "d.e"]
