import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import LogLines, access_lines, capture_json_logs

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def only_access_line(log_lines: LogLines) -> dict[str, Any]:
    (line,) = access_lines(log_lines())
    return line


def test_access_line_fields(client: TestClient, log_lines: LogLines) -> None:
    item_id = client.post("/api/v1/items", json={"name": "pen", "price": 1}).json()["id"]
    log_lines()

    response = client.get(f"/api/v1/items/{item_id}")

    line = only_access_line(log_lines)
    assert TIMESTAMP.fullmatch(line["timestamp"])
    assert line["duration_ms"] >= 0
    exact_fields = {key: value for key, value in line.items() if key != "timestamp"}
    del exact_fields["duration_ms"]
    assert exact_fields == {
        "level": "info",
        "message": "request completed",
        "logger": "app.access",
        "service": "test-service",
        "environment": "test",
        "source": "api",
        "request_id": response.headers["x-request-id"],
        "correlation_id": response.headers["x-correlation-id"],
        "method": "GET",
        "route": "/api/v1/items/{item_id}",
        "path": f"/api/v1/items/{item_id}",
        "status": 200,
        "client_ip": "testclient",
        "outcome": "success",
{%- if cookiecutter.include_observability == "yes" %}
        "trace_id": line["trace_id"],
        "span_id": line["span_id"],
{%- endif %}
    }


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/api/v1/items/404", "/api/v1/items/{item_id}", 404),
        ("/api/v1/items/x", "/api/v1/items/{item_id}", 422),
        ("/random/path/123", "<unmatched>", 404),
    ],
)
def test_access_line_names_the_route_template(
    client: TestClient, log_lines: LogLines, path: str, route: str, status: int
) -> None:
    log_lines()
    client.get(path)

    line = only_access_line(log_lines)
    assert (line["route"], line["path"], line["status"], line["outcome"]) == (
        route,
        path,
        status,
        "success",
    )


def test_a_rejected_request_logs_its_route_and_failed_fields_but_no_value(
    client: TestClient, log_lines: LogLines
) -> None:
    sent = "hunter2-not-a-price"
    response = client.post("/api/v1/items", json={"name": "pen", "price": sent})

    assert response.status_code == 422
    lines = log_lines()
    (rejected,) = [line for line in lines if line["message"] == "request rejected"]
    assert rejected["route"] == "/api/v1/items"
    assert rejected["invalid_fields"] == ["body.price"]
    assert rejected["request_id"] == response.headers["x-request-id"]
    (access,) = access_lines(lines)
    assert (access["status"], access["outcome"]) == (422, "success")  # the client erred
    assert sent not in str(lines)


def test_levels_are_lowercase_and_extra_fields_are_kept(
    client: TestClient, log_lines: LogLines
) -> None:
    log_lines()
    logging.getLogger("app.test").warning("careful", extra={"order_id": 42})
    logging.getLogger("app.test").critical("down")

    warning, critical = log_lines()
    assert (warning["level"], warning["order_id"]) == ("warning", 42)
    assert critical["level"] == "critical"


def test_exceptions_are_logged_as_an_error_object(client: TestClient, log_lines: LogLines) -> None:
    log_lines()
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("app.test").exception("lookup failed")

    (line,) = log_lines()
    assert line["level"] == "error"
    assert line["error"]["type"] == "KeyError"
    assert line["error"]["message"] == "'missing'"
    assert line["error"]["stack"].startswith("Traceback (most recent call last):")


def test_log_level_comes_from_settings() -> None:
    app = create_app(Settings(log_level="warning"))
    log_lines = capture_json_logs()
    with TestClient(app) as client:
        client.get("/health/live")
        logging.getLogger("app.test").warning("kept")

    assert [line["message"] for line in log_lines()] == ["kept"]


def test_uvicorn_logs_go_through_the_json_handler(client: TestClient, log_lines: LogLines) -> None:
    log_lines()
    logging.getLogger("uvicorn.error").info("Started server process")

    (line,) = log_lines()
    assert (line["logger"], line["message"]) == ("uvicorn.error", "Started server process")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "orders")
    monkeypatch.setenv("service_version", "2.0.0")
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("LOG_LEVEL", "debug")

    settings = Settings()

    assert (settings.service_name, settings.service_version) == ("orders", "2.0.0")
    assert (settings.environment, settings.log_level) == ("production", "DEBUG")


def test_an_unknown_log_level_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")

    with pytest.raises(ValueError, match="log_level"):
        Settings()
