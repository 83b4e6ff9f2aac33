"""Finish a freshly rendered project: prune disabled features, place the backend's lockfile,
write .env, print next steps.

Cookiecutter runs this with the new project folder as the working directory. Like the
pre-generation hook it stays valid Python before rendering (the answers arrive as one
JSON string literal) and does no network, git or installs.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

RENDERED_ANSWERS = r"""{{ cookiecutter | jsonify }}"""

# The answer that switches each optional feature on.
FEATURES: dict[str, str] = {
    "include_observability": "yes",
    "database": "postgres",
    "kubernetes": "yes",
    "worker": "taskiq",
}

# The one list of what only one answer keeps: every path here is rendered, and removed unless
# its option has the value it is listed under. tests/test_hooks.py checks it against the
# rendered trees of every value.
KEPT_ONLY_WHEN: dict[tuple[str, str], tuple[str, ...]] = {
    ("include_observability", "yes"): (
        "observability",
        "backend/app/observability",
        "backend/app/trace_context.py",
        "backend/tests/test_metrics.py",
        "backend/tests/test_tracing.py",
        "backend/tests/test_database_observability.py",
        "backend/app/observability/jobs.py",
        "backend/app/observability/job_metrics.py",
        "backend/app/observability/job_tracing.py",
        "backend/tests/test_job_telemetry.py",
        "observability/prometheus/rules/worker-alerts.yml",
        "observability/prometheus/rules/tests/worker-alerts.test.yml",
        "observability/grafana/dashboards/worker.json",
        "deploy/kubernetes/alloy",
        "deploy/kubernetes/chart/templates/grafana-dashboards.yaml",
        "deploy/kubernetes/chart/templates/grafana-datasources.yaml",
        "deploy/kubernetes/chart/templates/prometheusrule.yaml",
        "deploy/kubernetes/chart/templates/servicemonitor.yaml",
        "deploy/kubernetes/values/alloy.yaml",
        "deploy/kubernetes/values/kube-prometheus-stack.yaml",
        "deploy/kubernetes/values/loki.yaml",
        "deploy/kubernetes/values/tempo.yaml",
        "deploy/kubernetes/chart/templates/worker-service.yaml",
        "deploy/kubernetes/chart/templates/worker-servicemonitor.yaml",
    ),
    # With the stack on, the database's telemetry goes too.
    ("database", "postgres"): (
        "backend/app/db",
        "backend/alembic.ini",
        "backend/migrations",
        "backend/tests/test_database.py",
        "backend/app/observability/database.py",
        "backend/app/observability/database_metrics.py",
        "backend/app/observability/database_tracing.py",
        "backend/tests/test_database_observability.py",
        "observability/grafana/dashboards/database.json",
        "observability/prometheus/rules/database-alerts.yml",
        "observability/prometheus/rules/tests/database-alerts.test.yml",
        "deploy/kubernetes/chart/templates/migration-job.yaml",
        "deploy/kubernetes/postgres",
        "deploy/kubernetes/values/cloudnative-pg.yaml",
    ),
    ("worker", "taskiq"): (
        "backend/app/jobs",
        "backend/app/worker.py",
        "backend/app/api/v1/item_imports.py",
        "backend/app/api/v1/jobs.py",
        "backend/tests/test_jobs.py",
        "backend/app/observability/jobs.py",
        "backend/app/observability/job_metrics.py",
        "backend/app/observability/job_tracing.py",
        "backend/tests/test_job_telemetry.py",
        "observability/prometheus/rules/worker-alerts.yml",
        "observability/prometheus/rules/tests/worker-alerts.test.yml",
        "observability/grafana/dashboards/worker.json",
        "deploy/kubernetes/redis",
        "deploy/kubernetes/chart/templates/_worker.tpl",
        "deploy/kubernetes/chart/templates/worker-deployment.yaml",
        "deploy/kubernetes/chart/templates/worker-pdb.yaml",
        "deploy/kubernetes/chart/templates/worker-service.yaml",
        "deploy/kubernetes/chart/templates/worker-servicemonitor.yaml",
    ),
    ("log_collector", "promtail"): ("observability/promtail",),
    ("log_collector", "alloy"): ("observability/alloy",),
    ("kubernetes", "yes"): ("deploy",),
}

# Where the answers need different modules, the template renders one file per answer and
# keeps the answer's under the module's own name; tests/test_hooks.py checks it against the
# rendered trees of every value.
CHOSEN_FILES: dict[str, dict[tuple[str, str], str]] = {
    "backend/app/api/v1/items.py": {
        ("database", "postgres"): "backend/app/api/v1/items_postgres.py",
        ("database", "none"): "backend/app/api/v1/items_in_memory.py",
    },
    "backend/app/jobs/items.py": {
        ("database", "postgres"): "backend/app/jobs/items_postgres.py",
        ("database", "none"): "backend/app/jobs/items_in_memory.py",
    },
}

# The template keeps one uv lockfile per set of backend dependencies, named by the answers
# that choose the set (`make lock` writes them); the hook places the one that fits and
# never resolves one itself.
LOCK_OPTIONS: tuple[str, ...] = ("database", "include_observability", "worker")
LOCKFILES_DIR = "backend/locks"
LOCKFILE = "backend/uv.lock"

ENV_EXAMPLE = ".env.example"
ENV_FILE = ".env"
# The password each feature needs: .env.example leaves it empty, .env gets a fresh one.
GENERATED_PASSWORDS: dict[str, str] = {
    "include_observability": "GRAFANA_ADMIN_PASSWORD",
    "database": "POSTGRES_PASSWORD",
    "worker": "REDIS_PASSWORD",
}


def is_enabled(answers: Mapping[str, object], option: str) -> bool:
    return answers.get(option) == FEATURES[option]


def paths_to_prune(answers: Mapping[str, object]) -> list[str]:
    """Relative paths that the answers in `answers` must not leave behind."""
    return [
        path
        for (option, value), paths in KEPT_ONLY_WHEN.items()
        if answers.get(option) != value
        for path in paths
    ]


def prune(project_dir: Path, answers: Mapping[str, object]) -> list[Path]:
    """Remove what the answers do not need; returns the paths removed."""
    removed = []
    for relative in paths_to_prune(answers):
        path = project_dir / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def choose_files(project_dir: Path, answers: Mapping[str, object]) -> list[Path]:
    """Keep each module the answers choose under its own name, drop the others; returns the
    modules kept."""
    kept = []
    for target, sources in CHOSEN_FILES.items():
        if not (project_dir / target).parent.is_dir():
            continue  # pruned with the feature it belongs to
        for (option, value), source in sources.items():
            if answers.get(option) == value:
                kept.append((project_dir / source).replace(project_dir / target))
            else:
                (project_dir / source).unlink()
    return kept


def lockfile_name(answers: Mapping[str, object]) -> str:
    """The template's lockfile for the dependency set that `answers` choose."""
    return "_".join(f"{option}-{answers[option]}" for option in LOCK_OPTIONS) + ".lock"


def place_lockfile(project_dir: Path, answers: Mapping[str, object]) -> Path:
    """Move the chosen lockfile to backend/uv.lock and drop the others."""
    lockfile = project_dir / LOCKFILE
    (project_dir / LOCKFILES_DIR / lockfile_name(answers)).replace(lockfile)
    shutil.rmtree(project_dir / LOCKFILES_DIR)
    return lockfile


def env_file_text(
    example: str,
    answers: Mapping[str, object],
    new_password: Callable[[], str] = lambda: secrets.token_urlsafe(24),
) -> str:
    """The project's .env: the example, with a fresh password for each feature that is on."""
    text = example
    for option, variable in GENERATED_PASSWORDS.items():
        if is_enabled(answers, option):
            line = re.compile(rf"^{variable}=.*$", re.MULTILINE)
            text = line.sub(f"{variable}={new_password()}", text)
    return text


def write_env_file(project_dir: Path, answers: Mapping[str, object]) -> Path:
    env_file = project_dir / ENV_FILE
    example = (project_dir / ENV_EXAMPLE).read_text(encoding="utf-8")
    env_file.write_text(env_file_text(example, answers), encoding="utf-8")
    env_file.chmod(0o600)
    return env_file


def next_steps(answers: Mapping[str, object]) -> str:
    lines = [
        f"Created {answers['project_slug']}. Next steps:",
        "",
        f"  cd {answers['project_slug']}",
        f"  # {ENV_FILE} was written from {ENV_EXAMPLE} (git-ignored); review it",
        "  docker compose up -d",
        "",
        f"  API docs:  http://localhost:{answers['backend_port']}/docs",
    ]
    if is_enabled(answers, "include_observability"):
        lines += [
            f"  Grafana:   http://localhost:{answers['grafana_port']}"
            f"  (admin password: GRAFANA_ADMIN_PASSWORD in {ENV_FILE})",
        ]
    if is_enabled(answers, "kubernetes"):
        lines += [
            "",
            "  make k8s-up     # the same on a local kind cluster (deploy/kubernetes/README.md)",
        ]
    lines += ["", "  make help  # every development command"]
    return "\n".join(lines)


def main() -> None:
    answers = json.loads(RENDERED_ANSWERS)
    project_dir = Path.cwd()
    prune(project_dir, answers)
    choose_files(project_dir, answers)
    place_lockfile(project_dir, answers)
    write_env_file(project_dir, answers)
    print(next_steps(answers))


if __name__ == "__main__":
    main()
