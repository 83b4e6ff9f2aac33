"""Second tier: each rendered variant installed into its own virtual environment through
its own Makefile, then its test suite, linters and type checker run and must pass."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_tool

pytestmark = pytest.mark.slow

# The interpreter of this machine and of CI; the rendered Dockerfile uses the same version.
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
INSTALL_TIMEOUT = 600
CHECK_TIMEOUT = 300


def make(project: Path, *targets: str, timeout: int) -> subprocess.CompletedProcess[str]:
    make_tool = require_tool("make", "apt-get install make")
    result = subprocess.run(
        [make_tool, "--no-print-directory", f"PYTHON={sys.executable}", *targets],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"make {' '.join(targets)} failed in {project.name}\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module", params=["yes", "no"], ids=["observability-yes", "observability-no"])
def installed_project(request: pytest.FixtureRequest, render_once: Callable[..., Path]) -> Path:
    """A rendered variant (python_version of this machine) after `make install`.

    Rendered apart from the session's shared trees, since installing writes into it."""
    assert PYTHON_VERSION in ("3.11", "3.12", "3.13", "3.14")
    project = render_once(
        include_observability=request.param,
        python_version=PYTHON_VERSION,
        project_name=f"Installed {request.param}",
    )
    make(project, "install", timeout=INSTALL_TIMEOUT)
    return project


@pytest.mark.parametrize("target", ["test", "lint", "typecheck"])
def test_rendered_project_passes_its_own_checks(installed_project: Path, target: str) -> None:
    result = make(installed_project, target, timeout=CHECK_TIMEOUT)
    if target == "test":
        assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout
    if target == "typecheck":
        assert "Success: no issues found" in result.stdout, result.stdout


def test_installed_stack_packages_follow_the_variant(installed_project: Path) -> None:
    packages = subprocess.run(
        [installed_project / "backend/.venv/bin/python", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.lower()
    stack_packages = [
        line for line in packages.splitlines() if line.startswith(("opentelemetry", "prometheus"))
    ]
    answers = (installed_project / ".cookiecutter.json").read_text()
    if '"include_observability": "no"' in answers:
        assert stack_packages == []
    else:
        assert any(name.startswith("opentelemetry-sdk") for name in stack_packages)
        assert any(name.startswith("prometheus-client") for name in stack_packages)
