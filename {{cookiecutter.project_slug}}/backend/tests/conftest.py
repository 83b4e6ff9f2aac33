import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.logging import JsonFormatter
from app.main import create_app
from app.settings import Settings

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def settings() -> Settings:
    return Settings(
        service_name="test-service",
        service_version="1.2.3",
        environment="test",
        log_level="DEBUG",
{%- if cookiecutter.include_observability == "yes" %}
        otel_exporter_otlp_endpoint=None,
{%- endif %}
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


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
