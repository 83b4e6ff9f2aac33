"""Run the project on Kubernetes: a local kind cluster, the official charts, the service's chart.

    python deploy/kubernetes/k8s.py up       # cluster, charts, service; waits until all is ready
    python deploy/kubernetes/k8s.py check    # the service's probes{% if cookiecutter.worker == "taskiq" %} and the worker's{% endif %}{% if cookiecutter.include_observability == "yes" %}, the stack check through Grafana{% endif %}
    python deploy/kubernetes/k8s.py down     # delete the kind cluster
{%- if cookiecutter.include_observability == "yes" %}
    python deploy/kubernetes/k8s.py sync     # copy the dashboards and rules into the chart
{%- endif %}
    python deploy/kubernetes/k8s.py up --dry-run         # print the commands, run none
    python deploy/kubernetes/k8s.py up --context NAME --image REPOSITORY:TAG
                                             # an existing cluster: no kind, no image build

`make k8s-up`, `make k8s-check` and `make k8s-down` call it. Standard library only, and no
POSIX shell: it runs the same on Windows. deploy/kubernetes/README.md explains each step.
"""

from __future__ import annotations

import argparse
import contextlib
{%- if cookiecutter.include_observability == "yes" %}
import json
import os
{%- endif %}
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
PROJECT_DIR = DEPLOY_DIR.parent.parent
CHART_DIR = DEPLOY_DIR / "chart"
VALUES_DIR = DEPLOY_DIR / "values"

PROJECT = "{{ cookiecutter.project_slug }}"
# The service's release and namespace are the project's; the official charts each get theirs.
NAMESPACE = PROJECT
IMAGE_REPOSITORY = f"{PROJECT}-backend"

# Pinned with their release evidence in the template's docs/versions.md.
KIND_NODE_IMAGE = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
TOOLS = {
    "kind": "v0.33.0, https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "v4.3.2, https://helm.sh/docs/intro/install/",
    "kubectl": "v1.37.2, https://kubernetes.io/docs/tasks/tools/",
    "docker": "any current version, https://docs.docker.com/get-docker/",
}


@dataclass(frozen=True)
class UpstreamChart:
    """An official chart, installed as its own release before the service's."""

    release: str
    chart: str
    repository: str
    version: str
    namespace: str
    values: str
    extra_args: tuple[str, ...] = field(default=())


UPSTREAM_CHARTS: tuple[UpstreamChart, ...] = (
{%- if cookiecutter.database == "postgres" or cookiecutter.include_observability == "yes" %}
{%- if cookiecutter.include_observability == "yes" %}
    UpstreamChart(
        "kube-prometheus-stack",
        "kube-prometheus-stack",
        "https://prometheus-community.github.io/helm-charts",
        "91.5.0",
        "monitoring",
        "kube-prometheus-stack.yaml",
    ),
    UpstreamChart(
        "loki",
        "loki",
        "https://grafana-community.github.io/helm-charts",
        "12.0.1",
        "monitoring",
        "loki.yaml",
    ),
    UpstreamChart(
        "tempo",
        "tempo",
        "https://grafana-community.github.io/helm-charts",
        "3.0.0",
        "monitoring",
        "tempo.yaml",
    ),
    # Its pipeline is a file of its own, deploy/kubernetes/alloy/config.alloy.
    UpstreamChart(
        "alloy",
        "alloy",
        "https://grafana.github.io/helm-charts",
        "1.12.1",
        "monitoring",
        "alloy.yaml",
        ("--set-file", f"alloy.configMap.content={DEPLOY_DIR / 'alloy/config.alloy'}"),
    ),
{%- endif %}
{%- if cookiecutter.database == "postgres" %}
    # The operator behind the PostgreSQL cluster of postgres/cluster.yaml.
    UpstreamChart(
        "cnpg",
        "cloudnative-pg",
        "https://cloudnative-pg.github.io/charts",
        "0.29.0",
        "cnpg-system",
        "cloudnative-pg.yaml",
    ),
{%- endif %}
{% endif -%}
)
{%- if cookiecutter.database == "postgres" %}

# The CloudNativePG cluster: outside the service's release, so that uninstalling or rolling
# back the service never touches the data, and ready before the first migration runs.
POSTGRES_CLUSTER = DEPLOY_DIR / "postgres" / "cluster.yaml"
POSTGRES_CLUSTER_NAME = f"{PROJECT}-db"
{%- endif %}
{%- if cookiecutter.worker == "taskiq" %}

# Redis for the job queue: outside the service's release, so that uninstalling or rolling
# back the service never loses a queued job. Its password is REDIS_PASSWORD of .env, as in
# compose, in the Secret both the server and the chart's envFromSecrets read.
REDIS = DEPLOY_DIR / "redis" / "valkey.yaml"
REDIS_NAME = "redis"
# The worker's Deployment (chart/templates/_worker.tpl) and the port of its probes.
WORKER_DEPLOYMENT = f"{PROJECT}-worker"
WORKER_PORT = 8001
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}

# Grafana's admin account, from .env like compose's, into the Secret the Grafana of
# kube-prometheus-stack reads (values/kube-prometheus-stack.yaml: grafana.admin).
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_SERVICE = "service/kube-prometheus-stack-grafana"

# Alertmanager's routing, compose's file, into the Secret the Alertmanager of
# kube-prometheus-stack takes its whole configuration from (values/kube-prometheus-stack.yaml:
# alertmanager.alertmanagerSpec.configSecret). As compose's start.sh does it: the webhook's
# URL from .env's ALERT_WEBHOOK_URL, or, empty, no webhook and nothing sent.
ALERTMANAGER_CONFIG = PROJECT_DIR / "observability/alertmanager/alertmanager.yml"
ALERTMANAGER_CONFIG_SECRET = "alertmanager-config"
WEBHOOK_URL_FILE = "url_file: webhook-url"

# What the chart packages from the project: (in the chart, in the project, file pattern).
# The copies are git-ignored and made again before every use: edit the project's files.
SYNCED = (
    ("files/dashboards", "observability/grafana/dashboards", "*.json"),
    ("files/rules", "observability/prometheus/rules", "*.yml"),
    ("files", "observability/grafana/provisioning/datasources", "datasources.yml"),
)
{%- endif %}

# Helm waits for every object of a release to be ready, or fails the step.
UPGRADE = ("upgrade", "--install")
WAIT = ("--wait", "--timeout", "10m")
HEALTH_PATHS = ("/health/startup", "/health/live", "/health/ready")


class Runner:
    """Runs commands, or only prints them (--dry-run); secrets are never printed."""

    def __init__(self, dry_run: bool, context: str | None) -> None:
        self.dry_run = dry_run
        self.context = context

    def kubectl(self, *args: str) -> list[str]:
        context = ["--context", self.context] if self.context else []
        return ["kubectl", *context, *args]

    def helm(self, *args: str) -> list[str]:
        context = ["--kube-context", self.context] if self.context else []
        return ["helm", *context, *args]

    def run(
        self, command: list[str], shown: list[str] | None = None, stdin: str = ""
    ) -> str:
        """The command's output; a failing command stops everything, naming itself."""
        print("+ " + shlex.join(shown or command), flush=True)
        if self.dry_run:
            return ""
        output = subprocess.PIPE
        result = subprocess.run(
            command, input=stdin, text=True, stdout=output, cwd=PROJECT_DIR, check=False
        )
        if result.returncode != 0:
            sys.exit(f"failed ({result.returncode}): {shlex.join(shown or command)}")
        return result.stdout
{%- if cookiecutter.include_observability == "yes" or cookiecutter.database == "postgres" or cookiecutter.worker == "taskiq" %}

    def apply(self, *create: str, shown: list[str] | None = None) -> None:
        """`kubectl create ... --dry-run` piped into `kubectl apply`: create or update."""
        dry_run = ["--dry-run=client", "--output=yaml"]
        shown = [*self.kubectl(*shown), *dry_run] if shown else None
        manifest = self.run([*self.kubectl(*create), *dry_run], shown)
        self.run(self.kubectl("apply", "--filename=-"), stdin=manifest)
{%- endif %}


def require_tools(names: list[str]) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    for name in missing:
        print(f"{name} is not installed: {TOOLS[name]}", file=sys.stderr)
    if missing:
        sys.exit(1)
{%- if cookiecutter.include_observability == "yes" %}


def sync() -> list[Path]:
    """Copy what SYNCED names into the chart, dropping stale copies; returns the copies."""
    copies = []
    for target, source, pattern in SYNCED:
        target_dir = CHART_DIR / target
        for stale in target_dir.glob(pattern):
            stale.unlink()
        target_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted((PROJECT_DIR / source).glob(pattern)):
            copy = target_dir / path.name
            copy.write_bytes(path.read_bytes())
            copies.append(copy)
    print(f"synced {len(copies)} files into {CHART_DIR.relative_to(PROJECT_DIR)}")
    return copies
{%- endif %}
{%- if cookiecutter.include_observability == "yes" or cookiecutter.worker == "taskiq" %}


def dotenv() -> dict[str, str]:
    env_file = PROJECT_DIR / ".env"
    if not env_file.exists():
        sys.exit(".env is missing: copy .env.example to .env and fill it in")
    return dict(
        line.split("=", 1)
        for line in env_file.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )


def apply_secret(
    run: Runner, name: str, namespace: str, values: dict[str, str]
) -> None:
    """The Secret `name` holding `values` (key: value), created or updated; the values are
    never printed."""
    secret = ["create", "secret", "generic", name, "-n", namespace]
    literals = [f"--from-literal={key}={value}" for key, value in values.items()]
    masked = [f"--from-literal={key}=***" for key in values]
    run.apply(*secret, *literals, shown=[*secret, *masked])
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}


def apply_grafana_admin(run: Runner) -> None:
    """The Secret of Grafana's admin account, from .env."""
    settings = dotenv()
    values = {
        "admin-user": settings["GRAFANA_ADMIN_USER"],
        "admin-password": settings["GRAFANA_ADMIN_PASSWORD"],
    }
    apply_secret(run, GRAFANA_ADMIN_SECRET, "monitoring", values)
{%- endif %}


{%- if cookiecutter.include_observability == "yes" %}


def alertmanager_config(webhook_url: str) -> str:
    """Compose's Alertmanager configuration for the cluster: the URL itself where compose
    reads it from a file; without one, each webhook (`webhook_configs:` and its one entry)
    left out."""
    lines = ALERTMANAGER_CONFIG.read_text(encoding="utf-8").splitlines(keepends=True)
    if webhook_url:
        url = f"url: {json.dumps(webhook_url)}"
        return "".join(line.replace(WEBHOOK_URL_FILE, url) for line in lines)
    kept: list[str] = []
    for line in lines:
        if kept and kept[-1].strip() == "webhook_configs:":
            kept.pop()
        else:
            kept.append(line)
    return "".join(kept)


def apply_alertmanager_config(run: Runner) -> None:
    """The Secret of Alertmanager's configuration; it holds the webhook URL."""
    config = alertmanager_config(dotenv().get("ALERT_WEBHOOK_URL", ""))
    values = {"alertmanager.yaml": config}
    apply_secret(run, ALERTMANAGER_CONFIG_SECRET, "monitoring", values)
{%- endif %}
{%- if cookiecutter.worker == "taskiq" %}


def apply_redis(run: Runner) -> None:
    """The Secret of Redis's password, then Redis, then a wait until it answers."""
    password = dotenv().get("REDIS_PASSWORD", "")
    if not password:
        sys.exit("REDIS_PASSWORD is empty in .env: set one, as compose asks")
    apply_secret(run, REDIS_NAME, NAMESPACE, {"password": password})
    run.run(run.kubectl("apply", "-n", NAMESPACE, f"--filename={REDIS}"))
    rollout = ["rollout", "status", f"statefulset/{REDIS_NAME}", "--timeout=5m"]
    run.run(run.kubectl(*rollout, "-n", NAMESPACE))
{%- endif %}


def build_image(run: Runner) -> str:
    """Build the backend's image into the kind cluster. The tag names the build: a new
    build rolls out, an unchanged one does not."""
    built = f"{IMAGE_REPOSITORY}:build"
    run.run(["docker", "build", "--tag", built, "backend"])
    image_id = run.run(["docker", "image", "inspect", "--format={% raw %}{{.Id}}{% endraw %}", built])
    build_id = image_id.strip().removeprefix("sha256:")[:12] or "dry-run"
    image = f"{IMAGE_REPOSITORY}:local-{build_id}"
    run.run(["docker", "tag", built, image])
    run.run(["kind", "load", "docker-image", image, "--name", PROJECT])
    return image


def install_upstream(run: Runner, chart: UpstreamChart) -> None:
    source = [chart.chart, "--repo", chart.repository, "--version", chart.version]
    namespace = ["--namespace", chart.namespace, "--create-namespace"]
    values = ["--values", str(VALUES_DIR / chart.values), *chart.extra_args]
    run.run(run.helm(*UPGRADE, chart.release, *source, *namespace, *values, *WAIT))


def up(run: Runner, image: str | None) -> None:
    """Everything, each part after what it needs; every step is idempotent."""
    if image is None:
        require_tools(["kind", "docker", "helm", "kubectl"])
        if PROJECT not in run.run(["kind", "get", "clusters"]).split():
            cluster = ["--name", PROJECT, "--image", KIND_NODE_IMAGE, "--wait", "120s"]
            run.run(["kind", "create", "cluster", *cluster])
        run.context = f"kind-{PROJECT}"
        image = build_image(run)
    else:
        require_tools(["helm", "kubectl"])
    repository, tag = image.rsplit(":", 1)
{%- if cookiecutter.include_observability == "yes" %}
    run.apply("create", "namespace", "monitoring")
    apply_grafana_admin(run)
    apply_alertmanager_config(run)
{%- endif %}
    for chart in UPSTREAM_CHARTS:
        install_upstream(run, chart)
{%- if cookiecutter.database == "postgres" or cookiecutter.worker == "taskiq" %}
    run.apply("create", "namespace", NAMESPACE)
{%- endif %}
{%- if cookiecutter.worker == "taskiq" %}
    apply_redis(run)
{%- endif %}
{%- if cookiecutter.database == "postgres" %}
    run.run(run.kubectl("apply", "-n", NAMESPACE, f"--filename={POSTGRES_CLUSTER}"))
    postgres = f"cluster.postgresql.cnpg.io/{POSTGRES_CLUSTER_NAME}"
    ready = ["--for=condition=Ready", postgres, "--timeout=10m"]
    run.run(run.kubectl("wait", "-n", NAMESPACE, *ready))
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}
    sync()
{%- endif %}
    image_values = [f"--set=image.repository={repository}", f"--set=image.tag={tag}"]
    namespace = ["--namespace", NAMESPACE, "--create-namespace"]
    release = [PROJECT, str(CHART_DIR), *namespace, *image_values]
    run.run(run.helm(*UPGRADE, *release, *WAIT))
    print(f"ready: python deploy/kubernetes/k8s.py check (context {run.context})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def port_forward(run: Runner, namespace: str, target: str, port: int) -> Iterator[str]:
    """A local URL to a Service or a pod of a Deployment (`service/NAME`, `deployment/NAME`),
    through `kubectl port-forward`, while the block runs."""
    local = free_port()
    forward = [f"--namespace={namespace}", target, f"{local}:{port}"]
    command = run.kubectl("port-forward", *forward)
    print("+ " + shlex.join(command), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", local), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    sys.exit(f"kubectl port-forward to {target} failed ({local})")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{local}"
    finally:
        process.terminate()


def check_probes(url: str, name: str) -> None:
    for path in HEALTH_PATHS:
        with urllib.request.urlopen(url + path, timeout=10) as response:
            print(f"ok: {name} {path} answers {response.status}")


def check(run: Runner) -> None:
    """The service's probes through its Service{% if cookiecutter.worker == "taskiq" %}, a worker's{% endif %}{% if cookiecutter.include_observability == "yes" %}, then stack_check.py through Grafana{% endif %}."""
    require_tools(["kubectl"])
    run.context = run.context or f"kind-{PROJECT}"
{%- if cookiecutter.worker == "taskiq" %}
    deployment = f"deployment/{WORKER_DEPLOYMENT}"
    with port_forward(run, NAMESPACE, deployment, WORKER_PORT) as worker:
        check_probes(worker, "worker")
{%- endif %}
    with port_forward(run, NAMESPACE, f"service/{PROJECT}-backend", 80) as backend:
        check_probes(backend, "backend")
{%- if cookiecutter.include_observability == "yes" %}
        with port_forward(run, "monitoring", GRAFANA_SERVICE, 80) as grafana:
            urls = {"GRAFANA_URL": grafana, "BACKEND_URL": backend}
            stack_check = PROJECT_DIR / "observability" / "stack_check.py"
            command = [sys.executable, str(stack_check)]
            result = subprocess.run(command, env={**os.environ, **urls}, check=False)
            if result.returncode != 0:
                sys.exit(result.returncode)
{%- endif %}


def down(run: Runner) -> None:
    require_tools(["kind"])
    run.run(["kind", "delete", "cluster", "--name", PROJECT])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = ["up", "check", "down"{% if cookiecutter.include_observability == "yes" %}, "sync"{% endif %}]
    parser.add_argument("command", choices=commands)
    parser.add_argument("--dry-run", action="store_true", help="print, run nothing")
    parser.add_argument("--context", help="the kubectl context of an existing cluster")
    parser.add_argument("--image", help="with --context: the backend's REPOSITORY:TAG")
    arguments = parser.parse_args()
    only_one = (arguments.context is None) != (arguments.image is None)
    if arguments.command == "up" and only_one:
        parser.error("up: --context and --image go together (a pushed image)")
    run = Runner(arguments.dry_run, arguments.context)
    if arguments.command == "up":
        up(run, arguments.image)
    elif arguments.command == "check":
        check(run)
{%- if cookiecutter.include_observability == "yes" %}
    elif arguments.command == "sync":
        sync()
{%- endif %}
    else:
        down(run)


if __name__ == "__main__":
    main()
