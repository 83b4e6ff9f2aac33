"""Fast checks of rendered output: every option value, no leftover Jinja, parseable
config files, the recorded answers, .env, and nothing of the stack in the "no" variant."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import COOKIECUTTER_JSON, TEMPLATE_DIR, env_keys
from cookiecutter.main import cookiecutter

Render = Callable[..., Path]

# Each value of each option, rendered at least once: python_version and
# include_observability list every choice; the free-text answers take non-default
# values, all in one render (CUSTOM_ANSWERS) to keep the fast tier fast.
CUSTOM_ANSWERS = {
    "project_name": "Billing API",
    "project_slug": "payments2-core",
    "description": "Takes payments.",
    "author_name": "Grace Hopper",
    "author_email": "grace@navy.example",
    "backend_port": "8081",
    "grafana_port": "3300",
}
OPTION_VALUES = [
    *(("python_version", version) for version in COOKIECUTTER_JSON["python_version"]),
    *(("include_observability", value) for value in COOKIECUTTER_JSON["include_observability"]),
    *(("database", value) for value in COOKIECUTTER_JSON["database"]),
    *(("log_collector", value) for value in COOKIECUTTER_JSON["log_collector"]),
    *(("kubernetes", value) for value in COOKIECUTTER_JSON["kubernetes"]),
    *CUSTOM_ANSWERS.items(),
]
OPTION_IDS = [f"{name}={value}" for name, value in OPTION_VALUES]


def answers_rendering(name: str, value: str) -> dict[str, str]:
    """Overrides that render `name=value`, sharing renders with other tests where they can
    (the "yes" variant of `project_yes`, the python 3.11 render of the live tier)."""
    if name in CUSTOM_ANSWERS:
        return {"include_observability": "yes", **CUSTOM_ANSWERS}
    default = COOKIECUTTER_JSON[name][0]
    return {"include_observability": "yes", **({} if value == default else {name: value})}


UNRENDERED_JINJA = re.compile(r"\{\{\s*cookiecutter\.|\{%|\{#")
STACK_WORDS = re.compile(
    r"(?<![a-z])(prometheus|grafana|loki|tempo(?!ra)|promtail|alloy|opentelemetry|otel"
    r"|observability|metrics|tracing)",
    re.IGNORECASE,
)
ANSWERS_FILE = ".cookiecutter.json"


def text_files(project: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(project.rglob("*")):
        if path.is_file():
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def copied_without_render(project: Path, path: Path) -> bool:
    relative = str(path.relative_to(project))
    return any(fnmatch(relative, pattern) for pattern in COOKIECUTTER_JSON["_copy_without_render"])


def test_every_option_value_used_here_exists_in_cookiecutter_json() -> None:
    for name, value in OPTION_VALUES:
        choices = COOKIECUTTER_JSON[name]
        if isinstance(choices, list):
            assert value in choices


@pytest.mark.parametrize(("name", "value"), OPTION_VALUES, ids=OPTION_IDS)
def test_each_option_value_reaches_the_rendered_project(
    render_once: Render, name: str, value: str
) -> None:
    overrides = answers_rendering(name, value)
    project = render_once(**overrides)
    answers = json.loads((project / ANSWERS_FILE).read_text())["cookiecutter"]
    assert answers[name] == value
    assert project.name == overrides.get("project_slug", "my-service")
    workflow = (project / ".github/workflows/ci.yml").read_text()
    readme = (project / "README.md").read_text()
    if name == "python_version":
        assert f'python-version: "{value}"' in workflow
    elif name == "include_observability":
        assert (project / "observability").is_dir() is (value == "yes")
    elif name == "database":
        assert (project / "backend/app/db").is_dir() is (value == "postgres")
        assert ("\n  postgres:\n" in (project / "compose.yml").read_text()) is (value == "postgres")
    elif name == "log_collector":
        services = yaml.safe_load((project / "compose.yml").read_text())["services"]
        assert set(COOKIECUTTER_JSON["log_collector"]) & set(services) == {value}
        assert (project / "observability" / value).is_dir()
    elif name == "kubernetes":
        assert (project / "deploy/kubernetes/chart/Chart.yaml").is_file() is (value == "yes")
        assert ("k8s-up:" in (project / "Makefile").read_text()) is (value == "yes")
        assert ("## Deploy to Kubernetes" in readme) is (value == "yes")
    elif name == "project_name":
        assert readme.startswith(f"# {value}\n")
    elif name == "project_slug":
        assert f"name: {value}\n" in (project / "compose.yml").read_text()
        assert f"{value}-network" in readme
    elif name == "description":
        assert f"\n{value}\n" in readme
    elif name in ("author_name", "author_email"):
        assert value in (project / "backend/pyproject.toml").read_text()
    elif name == "backend_port":
        assert f"http://localhost:{value}/docs" in readme
        assert f'"{value}:{value}"' in (project / "compose.yml").read_text()
    elif name == "grafana_port":
        assert f"http://localhost:{value}" in readme


def test_quotes_and_backslashes_in_answers_survive_the_hooks(cookies: Any) -> None:
    description = 'Says """hi""" and \\ "bye" \'ok\''
    result = cookies.bake(extra_context={"description": description})
    assert result.exception is None
    assert result.exit_code == 0
    answers = json.loads((result.project_path / ANSWERS_FILE).read_text())["cookiecutter"]
    assert answers["description"] == description


@pytest.mark.parametrize("include_observability", ["yes", "no"])
def test_each_variant_bakes_cleanly_with_pytest_cookies(
    cookies: Any, include_observability: str
) -> None:
    result = cookies.bake(extra_context={"include_observability": include_observability})
    assert result.exception is None
    assert result.exit_code == 0
    assert result.project_path.name == result.context["project_slug"] == "my-service"
    assert (result.project_path / ".env").is_file()
    assert (result.project_path / "observability").exists() is (include_observability == "yes")


@pytest.fixture(scope="module", params=OPTION_VALUES, ids=OPTION_IDS)
def any_project(request: pytest.FixtureRequest, render_once: Render) -> Path:
    return render_once(**answers_rendering(*request.param))


def test_no_unrendered_jinja_anywhere(any_project: Path) -> None:
    leftovers = [
        f"{path.relative_to(any_project)}: {match.group(0)!r}"
        for path, text in text_files(any_project)
        if not copied_without_render(any_project, path)
        for match in [UNRENDERED_JINJA.search(text)]
        if match
    ]
    assert not leftovers


def test_the_no_variant_locks_only_the_stack_packages_fastapi_itself_requires(
    project_no: Path,
) -> None:
    """FastAPI requires opentelemetry-api for its own dormant telemetry; the lock records it as
    FastAPI's dependency, and no stack package beyond what FastAPI pulls in."""
    packages = {
        package["name"]: package
        for package in tomllib.loads((project_no / "backend/uv.lock").read_text())["package"]
    }
    stack = {name for name in packages if STACK_WORDS.search(name)}
    fastapi_requires = {dependency["name"] for dependency in packages["fastapi"]["dependencies"]}
    required_by_those = {
        dependency["name"]
        for name in stack & fastapi_requires
        for dependency in packages[name].get("dependencies", [])
    }
    assert stack <= fastapi_requires | required_by_those, stack - fastapi_requires


def test_every_yaml_toml_and_json_file_parses(project: Path) -> None:
    parsed = 0
    for path, text in text_files(project):
        if path.suffix in (".yml", ".yaml"):
            list(yaml.safe_load_all(text))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        else:
            continue
        parsed += 1
    assert parsed >= 4  # compose.yml, the workflow, the answers, backend/pyproject.toml


# Kubernetes' own API speaks of metrics: the autoscaler's `metrics:` field and the cluster's
# resource metrics API (metrics-server) it reads, none of them the stack's.
KUBERNETES_METRICS_API = re.compile(r"metrics-server|resource metrics API|^\s*metrics:$", re.M)


def stack_mentions(project: Path) -> list[str]:
    mentions = []
    for path, text in text_files(project):
        relative = path.relative_to(project)
        if path.name in (ANSWERS_FILE, "uv.lock"):
            continue
        if relative.parts[:2] == ("deploy", "kubernetes"):
            text = KUBERNETES_METRICS_API.sub("", text)
        mentions += [
            f"{relative}: {m.group(0)}" for m in STACK_WORDS.finditer(f"{relative}\n{text}")
        ]
    return mentions


@pytest.mark.parametrize("kubernetes", COOKIECUTTER_JSON["kubernetes"])
def test_nothing_of_the_stack_in_the_no_variant(render_once: Render, kubernetes: str) -> None:
    project_no = render_once(include_observability="no", kubernetes=kubernetes)
    assert stack_mentions(project_no) == []
    # The answers file keeps the template's variable names as keys, and the log collector's
    # answer, unused without the stack: a replay (a later update) needs every answer, or
    # cookiecutter prompts for it. No other value may mention the stack.
    answers = json.loads((project_no / ANSWERS_FILE).read_text())["cookiecutter"]
    assert answers["include_observability"] == "no"
    assert answers.pop("log_collector") in COOKIECUTTER_JSON["log_collector"]
    assert not [value for value in answers.values() if STACK_WORDS.search(str(value))]


def test_the_kubernetes_exception_of_the_stack_scan_is_narrow(
    render_once: Render, tmp_path: Path
) -> None:
    project = shutil.copytree(
        render_once(include_observability="no", kubernetes="yes"), tmp_path / "p"
    )
    values = project / "deploy/kubernetes/chart/values.yaml"
    values.write_text(values.read_text() + "# metrics for Prometheus\n")
    assert stack_mentions(project) == [
        "deploy/kubernetes/chart/values.yaml: metrics",
        "deploy/kubernetes/chart/values.yaml: Prometheus",
    ]


# What a database leaves in a project: its server, driver, ORM, migrations and settings.
DATABASE_WORDS = re.compile(r"postgres|psql|sqlalchemy|alembic|asyncpg|migrat|DATABASE_", re.I)


@pytest.mark.parametrize("kubernetes", COOKIECUTTER_JSON["kubernetes"])
@pytest.mark.parametrize("observability", COOKIECUTTER_JSON["include_observability"])
def test_nothing_of_a_database_with_database_none(
    render_once: Render, observability: str, kubernetes: str
) -> None:
    project = render_once(
        database="none", include_observability=observability, kubernetes=kubernetes
    )
    mentions = [
        f"{path.relative_to(project)}: {match.group(0)}"
        for path, text in text_files(project)
        if path.name != ANSWERS_FILE
        for match in DATABASE_WORDS.finditer(f"{path.relative_to(project)}\n{text}")
    ]
    assert not mentions
    answers = json.loads((project / ANSWERS_FILE).read_text())["cookiecutter"]
    assert answers["database"] == "none"


# What the worker leaves in a project: its queue's server, library, settings and modules.
WORKER_WORDS = re.compile(
    r"(?i:taskiq|redis|valkey)|JOB_[A-Z]|WORKER_[A-Z]|app[./]worker|app[./]jobs|api/v1/jobs"
)


@pytest.mark.parametrize("kubernetes", COOKIECUTTER_JSON["kubernetes"])
@pytest.mark.parametrize("database", COOKIECUTTER_JSON["database"])
@pytest.mark.parametrize("observability", COOKIECUTTER_JSON["include_observability"])
def test_nothing_of_the_worker_with_worker_none(
    render_once: Render, database: str, observability: str, kubernetes: str
) -> None:
    project = render_once(
        database=database, include_observability=observability, kubernetes=kubernetes
    )
    answers = json.loads((project / ANSWERS_FILE).read_text())["cookiecutter"]
    assert answers["worker"] == "none"
    mentions = [
        f"{path.relative_to(project)}: {match.group(0)}"
        for path, text in text_files(project)
        if path.name != ANSWERS_FILE
        for match in WORKER_WORDS.finditer(f"{path.relative_to(project)}\n{text}")
    ]
    assert not mentions


def test_the_worker_words_are_found_where_they_belong(render_once: Render) -> None:
    # Guards the scan above against a pattern that can never match.
    project = render_once(worker="taskiq")
    files = "".join(text for _, text in text_files(project))
    for word in ("taskiq", "redis", "valkey", "JOB_ATTEMPTS", "WORKER_CONCURRENCY", "app.worker"):
        assert WORKER_WORDS.search(word), word
        assert word in files, word


def test_generated_passwords_stay_in_env_and_out_of_the_answers(combination: Path) -> None:
    env = (combination / ".env").read_text()
    passwords = re.findall(r"^\w+_PASSWORD=(\S+)$", env, re.M)
    answers = (combination / ANSWERS_FILE).read_text()
    tracked = [text for path, text in text_files(combination) if path.name != ".env"]
    for password in passwords:
        assert password not in answers
        assert not [text for text in tracked if password in text]


def test_the_database_words_are_found_where_they_belong(project_yes: Path) -> None:
    # Guards the scan above against a pattern that can never match.
    files = "".join(text for _, text in text_files(project_yes))
    for word in ("postgres", "sqlalchemy", "alembic", "asyncpg", "migrations", "DATABASE_POOL"):
        assert DATABASE_WORDS.search(word), word
        assert word in files, word


def test_the_stack_words_are_found_where_they_belong(project_yes: Path) -> None:
    # Guards the scan above against a pattern that can never match.
    readme = (project_yes / "README.md").read_text()
    for word in ("Prometheus", "Grafana", "Loki", "Tempo", "Alloy", "OTEL_", "metrics"):
        assert STACK_WORDS.search(word), word
        assert word in readme, word
    assert STACK_WORDS.search("Promtail")


def test_answers_file_replays_to_the_same_project(project: Path, tmp_path: Path) -> None:
    again = Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            replay=str(project / ANSWERS_FILE),
            output_dir=str(tmp_path),
        )
    )
    first = {p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    # .env differs only by its freshly generated password
    assert [path for path in first if first[path] != second[path]] in ([], [Path(".env")])


CONTRACT_VARIABLES = ["SERVICE_NAME", "SERVICE_VERSION", "ENVIRONMENT", "LOG_LEVEL"]
DATABASE_VARIABLES = [
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "DATABASE_POOL_TIMEOUT",
    "DATABASE_CONNECT_TIMEOUT",
    "DATABASE_STATEMENT_TIMEOUT",
]
JOB_VARIABLES = [
    "JOB_ATTEMPTS",
    "JOB_RETRY_BACKOFF_SECONDS",
    "JOB_TIMEOUT_SECONDS",
    "JOB_RESULT_TTL_SECONDS",
]
STACK_VARIABLES = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
    "ALERT_WEBHOOK_URL",
    "GRAFANA_ADMIN_USER",
    "GRAFANA_ADMIN_PASSWORD",
]


def test_env_example_and_readme_document_every_variable(combination: Path) -> None:
    project = combination
    answers = json.loads((project / ANSWERS_FILE).read_text())["cookiecutter"]
    stack_on = answers["include_observability"] == "yes"
    database_on = answers["database"] == "postgres"
    worker_on = answers["worker"] == "taskiq"
    database_variables = [
        *DATABASE_VARIABLES,
        *(["DATABASE_SLOW_STATEMENT_SECONDS"] if stack_on else []),
    ]
    worker_variables = [
        "REDIS_PASSWORD",
        "REDIS_TIMEOUT",
        *JOB_VARIABLES,
        "WORKER_CONCURRENCY",
        "WORKER_SHUTDOWN_SECONDS",
    ]
    expected = [
        *CONTRACT_VARIABLES,
        *(database_variables if database_on else []),
        *(worker_variables if worker_on else []),
        *(STACK_VARIABLES if stack_on else []),
    ]
    assert env_keys((project / ".env.example").read_text()) == expected
    # compose sets POSTGRES_HOST, REDIS_HOST and OTEL_SERVICE_NAME itself, and the rest keep
    # their defaults: only the README documents them
    readme_worker_rows = [
        *("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_TIMEOUT", "JOB_QUEUE"),
        *JOB_VARIABLES,
        *("WORKER_CONCURRENCY", "WORKER_NAME", "WORKER_SHUTDOWN_SECONDS"),
    ]
    readme_rows = [
        *CONTRACT_VARIABLES,
        *(["POSTGRES_HOST", "POSTGRES_PORT", *database_variables] if database_on else []),
        *(readme_worker_rows if worker_on else []),
        *(["OTEL_SERVICE_NAME", *STACK_VARIABLES] if stack_on else []),
    ]
    readme = (project / "README.md").read_text()
    documented = re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE)
    assert documented == readme_rows


def test_env_file_is_written_with_a_password_per_feature_and_git_ignored(
    combination: Path,
) -> None:
    answers = json.loads((combination / ANSWERS_FILE).read_text())["cookiecutter"]
    example = (combination / ".env.example").read_text()
    env = (combination / ".env").read_text()
    assert env_keys(env) == env_keys(example)
    assert ".env" in (combination / ".gitignore").read_text().splitlines()
    generated = {"GRAFANA_ADMIN_PASSWORD": answers["include_observability"] == "yes"}
    generated["POSTGRES_PASSWORD"] = answers["database"] == "postgres"
    generated["REDIS_PASSWORD"] = answers["worker"] == "taskiq"
    for variable, feature_on in generated.items():
        assert (f"{variable}=\n" in example) is feature_on
        assert bool(re.search(rf"^{variable}=\S{{24,}}$", env, re.M)) is feature_on
    passwords_removed = re.sub(r"^(\w+_PASSWORD)=\S+$", r"\1=", env, flags=re.M)
    assert passwords_removed == example


BASE_TARGETS = [
    "help",
    "install",
    "lock",
    "dev",
    "test",
    "lint",
    "format",
    "typecheck",
    "up",
    "down",
    "logs",
]
DATABASE_TARGETS = ["db", "migrate", "migration-check", "revision"]
WORKER_TARGETS = ["worker", "redis"]
STACK_TARGETS = ["grafana", "stack-logs", "stack-reset", "stack-check"]


def test_makefile_help_lists_the_targets_of_the_variant(combination: Path) -> None:
    project = combination
    stack_on = (project / "observability").is_dir()
    database_on = (project / "backend/app/db").is_dir()
    worker_on = (project / "backend/app/jobs").is_dir()
    after_test = BASE_TARGETS.index("test") + 1
    expected = [
        *BASE_TARGETS[:after_test],
        *(DATABASE_TARGETS if database_on else []),
        *(WORKER_TARGETS if worker_on else []),
        *BASE_TARGETS[after_test:],
        *(STACK_TARGETS if stack_on else []),
    ]
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == expected


def test_files_the_makefile_runs_exist(project: Path) -> None:
    makefile = (project / "Makefile").read_text()
    scripts = re.findall(r"\$\(PYTHON\) ([\w/.-]+\.py)", makefile)
    for script in scripts:
        assert (project / script).is_file(), f"the Makefile runs {script}, which is not rendered"


def assert_read_only_and_pinned(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    uses = [
        step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step
    ]
    assert uses
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", action) for action in uses), uses


def test_template_workflow_is_read_only_with_pinned_actions() -> None:
    assert_read_only_and_pinned(
        yaml.safe_load((TEMPLATE_DIR / ".github/workflows/ci.yml").read_text())
    )


def test_workflow_and_pre_commit_pin_their_actions_and_permissions(combination: Path) -> None:
    project = combination
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    assert_read_only_and_pinned(workflow)
    expected = {"backend", "compose"}
    expected |= {"stack"} if (project / "observability").is_dir() else set()
    expected |= {"migrations"} if (project / "backend/app/db").is_dir() else set()
    assert set(workflow["jobs"]) == expected
    pre_commit = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    hooks = [hook["id"] for repo in pre_commit["repos"] for hook in repo["hooks"]]
    assert hooks == ["ruff-check", "ruff-format", "mypy"]


@pytest.mark.parametrize("collector", COOKIECUTTER_JSON["log_collector"])
def test_a_log_collector_render_has_no_file_or_service_of_the_other(
    render_once: Render, collector: str
) -> None:
    project = render_once(include_observability="yes", log_collector=collector)
    (other,) = set(COOKIECUTTER_JSON["log_collector"]) - {collector}
    assert [path for path in project.rglob(f"*{other}*")] == []
    compose = yaml.safe_load((project / "compose.yml").read_text())
    assert other not in compose["services"]
    assert not [volume for volume in compose["volumes"] if other in volume]
    jobs = yaml.safe_load((project / "observability/prometheus/prometheus.yml").read_text())
    assert other not in {job["job_name"] for job in jobs["scrape_configs"]}
