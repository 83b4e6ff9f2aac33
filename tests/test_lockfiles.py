"""The rendered backend's uv.lock: one kept per dependency set, placed by the post-generation
hook, and matching the rendered pyproject.toml for every combination of the choice options."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    CHOICE_COMBINATIONS,
    COOKIECUTTER_JSON,
    DATABASE_AND_OBSERVABILITY,
    TEMPLATE_DIR,
    UV,
    WITH_WORKER,
    combination_id,
)
from test_hooks import VALID, post_gen

LOCKS_DIR = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / post_gen.LOCKFILES_DIR


def test_the_template_keeps_one_lockfile_per_dependency_set_and_no_other() -> None:
    expected = {
        post_gen.lockfile_name(dict(zip(post_gen.LOCK_OPTIONS, values, strict=True)))
        for values in itertools.product(
            *(COOKIECUTTER_JSON[option] for option in post_gen.LOCK_OPTIONS)
        )
    }
    assert {path.name for path in LOCKS_DIR.iterdir()} == expected


def test_lockfile_names_follow_the_answers_that_choose_the_set() -> None:
    answers = {**VALID, "database": "none", "include_observability": "no", "worker": "taskiq"}
    assert (
        post_gen.lockfile_name(answers)
        == "database-none_include_observability-no_worker-taskiq.lock"
    )


def test_place_lockfile_moves_the_chosen_one_and_drops_the_rest(tmp_path: Path) -> None:
    locks = tmp_path / post_gen.LOCKFILES_DIR
    locks.mkdir(parents=True)
    for value in ("yes", "no"):
        (locks / f"database-postgres_include_observability-{value}_worker-none.lock").write_text(
            value
        )
    placed = post_gen.place_lockfile(tmp_path, {**VALID, "include_observability": "no"})
    assert placed == tmp_path / "backend/uv.lock"
    assert placed.read_text() == "no"
    assert not locks.exists()


def test_rendered_project_has_its_lock_and_no_others(project: Path) -> None:
    assert (project / "backend/uv.lock").is_file()
    assert not (project / post_gen.LOCKFILES_DIR).exists()


def test_requires_python_is_the_oldest_python_choice_so_one_lock_serves_them_all(
    project: Path,
) -> None:
    pyproject = tomllib.loads((project / "backend/pyproject.toml").read_text())
    oldest = min(COOKIECUTTER_JSON["python_version"], key=lambda v: tuple(map(int, v.split("."))))
    assert pyproject["project"]["requires-python"] == f">={oldest}"
    lock = tomllib.loads((project / "backend/uv.lock").read_text())
    assert lock["requires-python"] == f">={oldest}"


def test_the_lock_names_the_backend_distribution(project: Path) -> None:
    pyproject = tomllib.loads((project / "backend/pyproject.toml").read_text())
    lock = tomllib.loads((project / "backend/uv.lock").read_text())
    editable = [package for package in lock["package"] if package["source"] == {"editable": "."}]
    assert [package["name"] for package in editable] == [pyproject["project"]["name"]]


def uv_lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    """`uv lock --check`, offline: a lock that matches its pyproject needs no index."""
    return subprocess.run(
        [str(UV), "lock", "--check", "--offline"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Every combination of choices, not only the options the hook names: an option that changes
# the dependencies without being one of LOCK_OPTIONS makes one of these fail.
@pytest.mark.parametrize("answers", CHOICE_COMBINATIONS, ids=combination_id)
def test_uv_lock_check_passes_for_every_combination_of_options(
    render_once: Callable[..., Path], answers: dict[str, str]
) -> None:
    result = uv_lock_check(render_once(**answers) / "backend")
    assert result.returncode == 0, f"backend/uv.lock is stale for {answers}:\n{result.stderr}"


def test_uv_lock_check_fails_for_a_dependency_the_lock_does_not_have(
    render_once: Callable[..., Path], tmp_path: Path
) -> None:
    """The check above can fail: the same lock with one more requirement is refused."""
    backend = render_once() / "backend"
    for name in ("pyproject.toml", "uv.lock"):
        (tmp_path / name).write_bytes((backend / name).read_bytes())
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        re.sub(r"dependencies = \[\n", 'dependencies = [\n    "rich",\n', text, count=1)
    )
    assert uv_lock_check(tmp_path).returncode != 0


def dockerfile_sync_command(dockerfile: Path) -> list[str]:
    """The `uv sync` of the Dockerfile's build stage, as its RUN line gives it."""
    text = dockerfile.read_text().replace("\\\n", " ")
    (run,) = [line for line in text.splitlines() if line.startswith("RUN ") and "uv sync" in line]
    return run[run.index("uv sync") :].split()


@pytest.mark.slow
@pytest.mark.parametrize("answers", [*DATABASE_AND_OBSERVABILITY, *WITH_WORKER], ids=combination_id)
def test_the_images_uv_sync_installs_from_the_lock_alone(
    render_once: Callable[..., Path], answers: dict[str, str], tmp_path: Path
) -> None:
    """The Dockerfile's own `uv sync --locked` (no Docker here): with only pyproject.toml and
    uv.lock, as its bind mounts give them, it installs the runtime packages and no dev tool."""
    backend = render_once(**answers, python_version="3.11") / "backend"
    build = tmp_path / "build"
    build.mkdir()
    for name in ("pyproject.toml", "uv.lock"):
        (build / name).write_bytes((backend / name).read_bytes())
    command = dockerfile_sync_command(backend / "Dockerfile")
    assert command[:3] == ["uv", "sync", "--locked"], command
    venv = tmp_path / "venv"
    environment = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": sys.executable}
    result = subprocess.run(
        [str(UV), *command[1:]],
        cwd=build,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    installed = {
        path.name.split("-")[0].lower()
        for path in venv.glob("lib/python*/site-packages/*.dist-info")
    }
    assert {"fastapi", "uvicorn"} <= installed
    assert not installed & {"pytest", "mypy", "ruff"}, "dev tools in the image"
    assert ("sqlalchemy" in installed) is (answers["database"] == "postgres")
    assert ("opentelemetry_sdk" in installed) is (answers["include_observability"] == "yes")
    assert ("taskiq" in installed) is (answers.get("worker") == "taskiq")
