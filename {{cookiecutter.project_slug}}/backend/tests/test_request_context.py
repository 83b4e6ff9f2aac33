import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import LogLines, access_lines

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def test_ids_are_generated_and_echoed(client: TestClient) -> None:
    response = client.get("/health/live")

    request_id = response.headers["x-request-id"]
    correlation_id = response.headers["x-correlation-id"]
    assert GENERATED_ID.fullmatch(request_id)
    assert GENERATED_ID.fullmatch(correlation_id)
    assert request_id != correlation_id
    assert client.get("/health/live").headers["x-request-id"] != request_id


def test_well_formed_ids_are_kept(client: TestClient) -> None:
    response = client.get(
        "/health/live",
        headers={"X-Request-ID": "req-1.a:b_C", "X-Correlation-ID": "flow-42"},
    )

    assert response.headers["x-request-id"] == "req-1.a:b_C"
    assert response.headers["x-correlation-id"] == "flow-42"


@pytest.mark.parametrize(
    "bad_id",
    [b"a" * 129, b"has space", b"<script>", b"semi;colon", "caf\u00e9".encode()],
    ids=["too-long", "space", "markup", "semicolon", "non-ascii"],
)
def test_malformed_ids_are_replaced(client: TestClient, bad_id: bytes) -> None:
    response = client.get(
        "/health/live",
        headers=[(b"X-Request-ID", bad_id), (b"X-Correlation-ID", bad_id)],
    )

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert GENERATED_ID.fullmatch(response.headers["x-correlation-id"])


def test_ids_are_echoed_on_errors(client: TestClient) -> None:
    response = client.get("/no/such/path", headers={"X-Request-ID": "lost-1"})

    assert response.status_code == 404
    assert response.headers["x-request-id"] == "lost-1"


def test_every_log_line_of_a_request_carries_its_ids(
    app: FastAPI, client: TestClient, log_lines: LogLines
) -> None:
    @app.get("/test/logs")
    async def write_logs() -> dict[str, str]:
        logging.getLogger("app.test").info("first")
        logging.getLogger("app.test").warning("second")
        return {}

    log_lines()
    response = client.get(
        "/test/logs", headers={"X-Request-ID": "req-7", "X-Correlation-ID": "corr-7"}
    )

    lines = [line for line in log_lines() if line["logger"].startswith("app.")]
    assert response.status_code == 200
    assert [line["message"] for line in lines] == ["first", "second", "request completed"]
    assert {(line["request_id"], line["correlation_id"]) for line in lines} == {("req-7", "corr-7")}


def test_lines_outside_requests_have_no_ids(app: FastAPI, log_lines: LogLines) -> None:
    log_lines()
    logging.getLogger("app.test").info("outside")

    (line,) = log_lines()
    assert "request_id" not in line
    assert "correlation_id" not in line


def test_one_access_line_per_request(client: TestClient, log_lines: LogLines) -> None:
    log_lines()
    for _ in range(3):
        client.get("/health/live")

    assert len(access_lines(log_lines())) == 3
