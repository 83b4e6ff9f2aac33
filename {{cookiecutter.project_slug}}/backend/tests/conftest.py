{%- set postgres = cookiecutter.database == "postgres" -%}
{%- set worker = cookiecutter.worker == "taskiq" -%}
{% if postgres or worker -%}
import asyncio
{% endif -%}
import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
{%- if postgres %}
from pathlib import Path
{%- endif %}
from typing import Any
{%- if worker %}
from uuid import uuid4
{%- endif %}

import pytest
{%- if postgres %}
from alembic import command
from alembic.config import Config
{%- endif %}
from fastapi import FastAPI
from fastapi.testclient import TestClient
{%- if cookiecutter.include_observability == "yes" %}
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
{%- endif %}
{%- if worker %}
from redis.asyncio import Redis
{%- endif %}
{%- if postgres %}
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
{%- endif %}

from app import health
{% if postgres -%}
from app.db.engine import Database, database_url
{% endif -%}
from app.logging import JsonFormatter
from app.main import create_app
{% if cookiecutter.include_observability == "yes" -%}
from app.observability import Telemetry, create_telemetry
{% endif -%}
from app.settings import Settings
{%- if postgres or worker %}
from tests.test_server import free_port
{%- endif %}

LogLines = Callable[[], list[dict[str, Any]]]
{%- if postgres %}

BACKEND_DIR = Path(__file__).resolve().parent.parent
# The readiness checks that create_app registers itself, all passing.
SERVICE_CHECKS = {"database": "pass"}


async def _execute(settings: Settings, statement: str) -> Any:
    # AUTOCOMMIT: CREATE DATABASE cannot run inside a transaction.
    engine = create_async_engine(database_url(settings), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def test_database() -> Iterator[str]:
    """POSTGRES_DB with `_test` appended on the server of POSTGRES_*, made if missing and
    migrated to the newest revision; the variable names it for the whole session, so that
    the app, Alembic and a served uvicorn all use it, never the development data."""
    settings = Settings()
    name = f"{settings.postgres_db}_test"
    try:
        exists = asyncio.run(
            _execute(settings, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        )
    except Exception as error:
        pytest.fail(
            f"no PostgreSQL answers at {settings.postgres_host}:{settings.postgres_port} "
            f"as {settings.postgres_user} ({type(error).__name__}): `make test` starts the "
            "compose database (needs Docker); or set POSTGRES_HOST, POSTGRES_PORT, "
            "POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB for a server of yours",
            pytrace=False,
        )
    if not exists:
        asyncio.run(_execute(settings, f'CREATE DATABASE "{name}"'))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSTGRES_DB", name)
        command.upgrade(Config(str(BACKEND_DIR / "alembic.ini")), "head")
        yield name


@pytest.fixture
def empty_database(test_database: str) -> None:
    """No items, and ids from 1 again."""
    asyncio.run(_execute(Settings(), "TRUNCATE items RESTART IDENTITY"))
{%- else %}

# The readiness checks that create_app registers itself.
SERVICE_CHECKS: dict[str, str] = {}
{%- endif %}

{%- if worker %}


async def _ping_redis(settings: Settings) -> None:
    redis = Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password.get_secret_value() or None,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )
    async with redis:
        await redis.ping()


@pytest.fixture(scope="session")
def redis_server() -> None:
    """The Redis of REDIS_*, answering; the tests' streams and keys are their own."""
    settings = Settings()
    try:
        asyncio.run(_ping_redis(settings))
    except Exception as error:
        pytest.fail(
            f"no Redis answers at {settings.redis_host}:{settings.redis_port} "
            f"({type(error).__name__}): `make test` starts the compose redis (needs Docker); "
            "or set REDIS_HOST, REDIS_PORT and REDIS_PASSWORD for a server of yours",
            pytrace=False,
        )
{%- endif %}


@pytest.fixture
{%- if postgres and worker %}
def settings(empty_database: None, redis_server: None) -> Settings:
{%- elif postgres %}
def settings(empty_database: None) -> Settings:
{%- elif worker %}
def settings(redis_server: None) -> Settings:
{%- else %}
def settings() -> Settings:
{%- endif %}
    return Settings(
        service_name="test-service",
        service_version="1.2.3",
        environment="test",
        log_level="DEBUG",
{%- if cookiecutter.include_observability == "yes" %}
        otel_exporter_otlp_endpoint=None,
{%- endif %}
{%- if worker %}
        # A queue of each test's own, and retries without a pause.
        job_queue=f"test-{uuid4().hex}",
        job_retry_backoff_seconds=0,
        worker_name="test-worker",
{%- endif %}
    )

{%- if postgres or worker %}


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on: connections to it are refused at once."""
    return free_port()
{%- endif %}


@pytest.fixture
def readiness() -> health.ReadinessChecks:
    """The application's readiness checks, where a test adds its own."""
    return health.ReadinessChecks()
{%- if postgres %}


@pytest.fixture
{%- if cookiecutter.include_observability == "yes" %}
def database(settings: Settings, telemetry: Telemetry) -> Database:
    """The application's database (disposed with the application)."""
    return Database(settings, checkout_waits=telemetry.database_metrics)
{%- else %}
def database(settings: Settings) -> Database:
    """The application's database (disposed with the application)."""
    return Database(settings)
{%- endif %}
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}


@pytest.fixture
def telemetry(settings: Settings) -> Telemetry:
    """The application's metrics registry and tracer provider."""
    return create_telemetry(settings)
{%- endif %}


@pytest.fixture
def app(
    settings: Settings,
    readiness: health.ReadinessChecks,
{%- if postgres %}
    database: Database,
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}
    telemetry: Telemetry,
{%- endif %}
) -> FastAPI:
    return create_app(
        settings,
        readiness=readiness,
{%- if postgres %}
        database=database,
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}
        telemetry=telemetry,
{%- endif %}
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client
{%- if cookiecutter.include_observability == "yes" %}


@pytest.fixture
def spans(telemetry: Telemetry) -> InMemorySpanExporter:
    """Every span the app finishes, kept in memory."""
    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
{%- endif %}


def capture_json_logs() -> LogLines:
    """Read what the application's JSON log handler writes, instead of stdout."""
    (handler,) = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler)
        and isinstance(handler.formatter, JsonFormatter)
    ]
    stream = io.StringIO()
    handler.setStream(stream)

    def read() -> list[dict[str, Any]]:
        """The lines written since the last call; each must be a JSON object."""
        with handler.lock or contextlib.nullcontext():
            text = stream.getvalue()
            stream.seek(0)
            stream.truncate()
        return [json.loads(line) for line in text.splitlines()]

    return read


@pytest.fixture
def log_lines(app: FastAPI) -> LogLines:
    return capture_json_logs()


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "app.access"]


class HeaderRecorder(BaseHTTPRequestHandler):
    """A service the backend calls: keeps the headers of every GET, answers 204."""

    received: list[dict[str, str]] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self.received.append({name.lower(): value for name, value in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def downstream() -> Iterator[str]:
    """The URL of a real local HTTP server recording what it receives (HeaderRecorder)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), HeaderRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    HeaderRecorder.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
