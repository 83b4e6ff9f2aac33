"""The application served by uvicorn for real, as in the container."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BACKEND_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
{%- if cookiecutter.database == "postgres" %}


@pytest.fixture
def server(empty_database: None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
{%- else %}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
{%- endif %}
    port = free_port()
    # uvicorn's own access log is left on here: the application must switch it off itself.
    process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        cwd=BACKEND_DIR,
        env={
            "PATH": os.environ.get("PATH", ""),
            "SERVICE_NAME": "served",
            "LOG_LEVEL": "info",
{%- if cookiecutter.database == "postgres" %}
            # The session's test database: POSTGRES_DB names it.
            **{name: value for name, value in os.environ.items() if name.startswith("POSTGRES_")},
{%- endif %}
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/health/live", timeout=1)  # noqa: S310
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"uvicorn did not start:\n{process.communicate()[0]}")
            time.sleep(0.1)
    yield base_url, process
    process.kill()
    process.wait()


def stop_and_read_lines(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    process.terminate()
    output, _ = process.communicate(timeout=10)
    return [json.loads(line) for line in output.splitlines()]


def test_every_line_is_json_with_exactly_one_access_line_per_request(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    base_url, process = server
    for path in ("/api/v1/items", "/api/v1/items/1", "/nowhere"):
        with contextlib.suppress(OSError):  # 404s are part of the traffic
            urllib.request.urlopen(f"{base_url}{path}", timeout=5)  # noqa: S310

    lines = stop_and_read_lines(process)

    access = [line for line in lines if line["logger"] == "app.access"]
    # The readiness probe of the fixture is the first request.
    assert [(line["path"], line["status"]) for line in access] == [
        ("/health/live", 200),
        ("/api/v1/items", 200),
        ("/api/v1/items/1", 404),
        ("/nowhere", 404),
    ]
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {line["service"] for line in lines} == {"served"}
    assert "Application startup complete." in [line["message"] for line in lines]
    assert not [line for line in lines if "color_message" in line]
    assert access[1]["client_ip"] == "127.0.0.1"


@pytest.mark.parametrize("module", ["app.main"{% if cookiecutter.worker == "taskiq" %}, "app.worker"{% endif %}])
def test_the_served_module_imports_alone_and_freezes_what_lives_as_long_as_it(module: str) -> None:
    """uvicorn imports the module into a fresh interpreter: what the tests import first must
    not hide an import cycle there. What exists once it is imported (modules, the
    application) is frozen, so full garbage collections under load no longer walk it."""
    result = subprocess.run(  # noqa: S603 (this interpreter, a module name of the test's)
        [sys.executable, "-c", f"import gc, {module}; print(gc.get_freeze_count())"],
        cwd=BACKEND_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 0
